//! The `stripe` integration against localstripe (customers, subscriptions, the health
//! probe) and, for what localstripe does not emulate (payment intents with
//! `automatic_payment_methods`, refunds, invoices with `collection_method`), a local
//! server answering with the example objects of Stripe's API reference. `scripts/test.sh`
//! starts localstripe and sets `FLOW_TEST_LOCALSTRIPE_URL`; without it those tests say so
//! and pass. Objects the integration has no action for (a card, a plan, a subscription)
//! are set up with plain form posts, as a dashboard would.

mod common;

use common::*;
use flow_connectors::Connection;
use serde_json::json;

const KEY: &str = "sk_test_flowcanary123";

fn stripe(url: &str) -> Connection {
    Connection::new("stripe", "billing")
        .with_secret("api_key", KEY)
        .with_base_url(&format!("{url}/v1"))
}

async fn post(url: &str, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1{path}"))
        .basic_auth(KEY, Some(""))
        .form(form)
        .send()
        .await
        .unwrap();
    resp.json().await.unwrap()
}

#[tokio::test]
async fn customers() {
    let Some(url) = service("FLOW_TEST_LOCALSTRIPE_URL", "customers") else {
        return;
    };
    let p = stdlib("stripe");
    let (d, _) = driver(vec![stripe(&url)]);
    let email = format!("ada{}@example.com", fastrand::u32(..));
    let c = call(
        &d,
        &p,
        "stripe.create_customer",
        json!({"email": email, "name": "Ada", "metadata": {"plan": "pro"}}),
    )
    .await
    .unwrap()
    .to_json();
    let id = c["id"].as_str().unwrap().to_owned();
    assert_eq!(c["metadata"], json!({"plan": "pro"}));
    let got = call(&d, &p, "stripe.get_customer", json!({"customer_id": id}))
        .await
        .unwrap()
        .to_json();
    assert_eq!(got["email"], email.as_str());
    let listed = call(&d, &p, "stripe.list_customers", json!({"email": email}))
        .await
        .unwrap()
        .to_json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let e = call(
        &d,
        &p,
        "stripe.get_customer",
        json!({"customer_id": "cus_missing"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status, Some(404), "{e}");
    assert!(!e.message.contains(KEY) && !e.details.to_string().contains(KEY));
}

#[tokio::test]
async fn subscriptions() {
    let Some(url) = service("FLOW_TEST_LOCALSTRIPE_URL", "subscriptions") else {
        return;
    };
    let p = stdlib("stripe");
    let (d, _) = driver(vec![stripe(&url)]);
    let c = call(
        &d,
        &p,
        "stripe.create_customer",
        json!({"email": "sub@example.com"}),
    )
    .await
    .unwrap()
    .to_json();
    let cid = c["id"].as_str().unwrap();
    let pm = post(
        &url,
        "/payment_methods",
        &[
            ("type", "card"),
            ("card[number]", "4242424242424242"),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2040"),
            ("card[cvc]", "123"),
        ],
    )
    .await;
    post(
        &url,
        &format!("/payment_methods/{}/attach", pm["id"].as_str().unwrap()),
        &[("customer", cid)],
    )
    .await;
    post(
        &url,
        &format!("/customers/{cid}"),
        &[(
            "invoice_settings[default_payment_method]",
            pm["id"].as_str().unwrap(),
        )],
    )
    .await;
    let product = post(&url, "/products", &[("name", "Pro")]).await;
    let plan = post(
        &url,
        "/plans",
        &[
            ("product", product["id"].as_str().unwrap()),
            ("amount", "900"),
            ("currency", "usd"),
            ("interval", "month"),
        ],
    )
    .await;
    let sub = post(
        &url,
        "/subscriptions",
        &[
            ("customer", cid),
            ("items[0][plan]", plan["id"].as_str().unwrap()),
        ],
    )
    .await;
    let sid = sub["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{sub}"))
        .to_owned();
    let later = call(
        &d,
        &p,
        "stripe.cancel_at_period_end",
        json!({"subscription_id": sid}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(later["cancel_at_period_end"], true, "{later}");
    let cancelled = call(
        &d,
        &p,
        "stripe.cancel_subscription",
        json!({"subscription_id": sid}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(cancelled["status"], "canceled", "{cancelled}");
}

#[tokio::test]
async fn health_probe_reaches_localstripe() {
    let Some(url) = service(
        "FLOW_TEST_LOCALSTRIPE_URL",
        "health_probe_reaches_localstripe",
    ) else {
        return;
    };
    let p = stdlib("stripe");
    let (d, _) = driver(vec![]);
    d.probe(&p, 0, &stripe(&url)).await.unwrap();
}

/// Example objects from Stripe's API reference, trimmed to the fields the types read.
fn reference_object(path: &str) -> serde_json::Value {
    match path {
        "/v1/payment_intents" | "/v1/payment_intents/pi_3MtwBwLkdIwHu7ix28a3tqPa" => json!({
            "id": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "object": "payment_intent", "amount": 2000,
            "currency": "usd", "status": "requires_payment_method", "customer": null,
            "description": null, "latest_charge": null, "created": 1680800504, "metadata": {}
        }),
        "/v1/refunds" => json!({
            "id": "re_1Nispe2eZvKYlo2Cd31jOCgZ", "object": "refund", "amount": 1000,
            "currency": "usd", "status": "succeeded", "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "created": 1692942318
        }),
        "/v1/invoiceitems" => json!({
            "id": "ii_1MtGUtLkdIwHu7ixBYwjAM00", "object": "invoiceitem", "amount": 1099,
            "currency": "usd", "customer": "cus_NeZwdNtLEOXuvB", "description": "T-shirt"
        }),
        _ => json!({
            "id": "in_1MtHbELkdIwHu7ixl4OzzPMv", "object": "invoice", "customer": "cus_NeZwdNtLEOXuvB",
            "status": if path.ends_with("/finalize") || path.ends_with("/send") { "open" } else { "draft" },
            "currency": "usd", "amount_due": 1099, "amount_paid": 0, "total": 1099,
            "hosted_invoice_url": null, "invoice_pdf": null, "created": 1680644467, "due_date": null, "number": null
        }),
    }
}

#[tokio::test]
async fn payment_intents_refunds_and_invoices_match_the_api_reference() {
    let (base, seen) = server(std::sync::Arc::new(|s: &Seen, _| {
        let path = s.uri.split('?').next().unwrap_or("");
        json_reply(200, reference_object(path))
    }))
    .await;
    let p = stdlib("stripe");
    let (d, _) = driver(vec![
        Connection::new("stripe", "billing")
            .with_secret("api_key", KEY)
            .with_base_url(&format!("{base}/v1")),
    ]);
    let mut c = ctx();
    c.idempotency_key = Some("order-7".into());
    let pi = call_with(
        &d,
        &p,
        "stripe.create_payment_intent",
        json!({"amount": 2000, "currency": "usd", "metadata": {"order": "7"}}),
        &c,
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(pi["status"], "requires_payment_method");
    call(
        &d,
        &p,
        "stripe.get_payment_intent",
        json!({"payment_intent_id": "pi_3MtwBwLkdIwHu7ix28a3tqPa"}),
    )
    .await
    .unwrap();
    let refund = call(
        &d,
        &p,
        "stripe.create_refund",
        json!({"payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa", "amount": 1000}),
    )
    .await
    .unwrap();
    assert_eq!(refund.to_json()["status"], "succeeded");
    call(
        &d,
        &p,
        "stripe.create_invoice_item",
        json!({"customer": "cus_NeZwdNtLEOXuvB", "amount": 1099, "currency": "usd"}),
    )
    .await
    .unwrap();
    let inv = call(
        &d,
        &p,
        "stripe.create_invoice",
        json!({"customer": "cus_NeZwdNtLEOXuvB"}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(inv["status"], "draft");
    let id = "in_1MtHbELkdIwHu7ixl4OzzPMv";
    assert_eq!(
        call(&d, &p, "stripe.finalize_invoice", json!({"invoice_id": id}))
            .await
            .unwrap()
            .to_json()["status"],
        "open"
    );
    assert_eq!(
        call(&d, &p, "stripe.send_invoice", json!({"invoice_id": id}))
            .await
            .unwrap()
            .to_json()["status"],
        "open"
    );
    let seen = seen.lock().unwrap();
    let first = &seen[0];
    assert_eq!(first.uri, "/v1/payment_intents");
    assert_eq!(
        first.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(first.header("idempotency-key"), Some("order-7"));
    assert_eq!(
        first.body,
        "amount=2000&automatic_payment_methods%5Benabled%5D=true&currency=usd&metadata%5Border%5D=7"
    );
    // Without a step key, each POST still gets one derived from the run and the step.
    assert_eq!(seen[2].header("idempotency-key"), Some("flow-run-1-step"));
    assert_eq!(seen[1].header("idempotency-key"), None, "GETs carry none");
    assert_eq!(
        seen[4].body,
        "collection_method=send_invoice&customer=cus_NeZwdNtLEOXuvB&days_until_due=30&pending_invoice_items_behavior=include"
    );
}
