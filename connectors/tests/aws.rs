//! The AWS integrations (`aws_s3`, `aws_sqs`, `aws_sns`, `aws_cloudwatch`) against moto's
//! server, every action, with real SigV4 signing. `scripts/test.sh` starts moto and sets
//! `FLOW_TEST_MOTO_URL`; without it these tests say so and pass.

mod common;

use common::*;
use flow_connectors::Connection;
use serde_json::json;

fn aws(name: &str, url: &str) -> Connection {
    Connection::new(name, "ops")
        .with_setting("region", "us-east-1")
        .with_secret("access_key_id", "AKIAFLOWTEST")
        .with_secret("secret_access_key", "flow-test-secret-key")
        .with_base_url(url)
}

#[tokio::test]
async fn s3_buckets_and_objects() {
    let Some(url) = service("FLOW_TEST_MOTO_URL", "s3_buckets_and_objects") else {
        return;
    };
    let p = stdlib("aws_s3");
    let (d, _) = driver(vec![aws("aws_s3", &url)]);
    let bucket = format!("flow-test-{}", fastrand::u32(..));
    let created = call(&d, &p, "aws_s3.create_bucket", json!({"bucket": bucket}))
        .await
        .unwrap();
    assert!(
        created.to_json()["location"]
            .as_str()
            .unwrap()
            .contains(&bucket)
    );
    let buckets = call(&d, &p, "aws_s3.list_buckets", json!({}))
        .await
        .unwrap()
        .to_json();
    assert!(
        buckets
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["Name"] == bucket.as_str()),
        "{buckets}"
    );
    let key = "reports/2024 Q1/ünïcode+plus.txt";
    let put = call(
        &d,
        &p,
        "aws_s3.put_object",
        json!({"bucket": bucket, "key": key, "text": "hello"}),
    )
    .await
    .unwrap();
    assert!(put.to_json()["etag"].is_string(), "{}", put.to_json());
    call(
        &d,
        &p,
        "aws_s3.put_json",
        json!({"bucket": bucket, "key": "data.json", "value": {"a": [1, 2]}}),
    )
    .await
    .unwrap();
    let got = call(
        &d,
        &p,
        "aws_s3.get_object",
        json!({"bucket": bucket, "key": key}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(got["body"], "hello", "{got}");
    assert!(
        got["content_type"]
            .as_str()
            .unwrap()
            .starts_with("text/plain"),
        "{got}"
    );
    let data = call(
        &d,
        &p,
        "aws_s3.get_object",
        json!({"bucket": bucket, "key": "data.json"}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(data["body"], json!({"a": [1, 2]}), "{data}");
    let head = call(
        &d,
        &p,
        "aws_s3.head_object",
        json!({"bucket": bucket, "key": key}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(head["content_length"], 5, "{head}");
    let listed = call(
        &d,
        &p,
        "aws_s3.list_objects",
        json!({"bucket": bucket, "prefix": "reports/"}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["Key"], key);
    let all = call(&d, &p, "aws_s3.list_objects", json!({"bucket": bucket}))
        .await
        .unwrap()
        .to_json();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    call(
        &d,
        &p,
        "aws_s3.delete_object",
        json!({"bucket": bucket, "key": key}),
    )
    .await
    .unwrap();
    let e = call(
        &d,
        &p,
        "aws_s3.get_object",
        json!({"bucket": bucket, "key": key}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status, Some(404), "{e}");
    assert!(e.message.contains("does not exist"), "{}", e.message);
}

#[tokio::test]
async fn sqs_queues_and_messages() {
    let Some(url) = service("FLOW_TEST_MOTO_URL", "sqs_queues_and_messages") else {
        return;
    };
    let p = stdlib("aws_sqs");
    let (d, _) = driver(vec![aws("aws_sqs", &url)]);
    let name = format!("flow-test-{}", fastrand::u32(..));
    let queue_url = call(
        &d,
        &p,
        "aws_sqs.create_queue",
        json!({"queue_name": name, "attributes": {"VisibilityTimeout": "45"}}),
    )
    .await
    .unwrap();
    let queue_url = queue_url.as_str().unwrap().to_owned();
    let found = call(&d, &p, "aws_sqs.get_queue_url", json!({"queue_name": name}))
        .await
        .unwrap();
    assert_eq!(found.as_str(), Some(queue_url.as_str()));
    let listed = call(
        &d,
        &p,
        "aws_sqs.list_queues",
        json!({"prefix": "flow-test-"}),
    )
    .await
    .unwrap()
    .to_json();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q == queue_url.as_str()),
        "{listed}"
    );
    let attrs = call(
        &d,
        &p,
        "aws_sqs.get_queue_attributes",
        json!({"queue_url": queue_url}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(attrs["VisibilityTimeout"], "45", "{attrs}");
    let sent = call(
        &d,
        &p,
        "aws_sqs.send_message",
        json!({"queue_url": queue_url, "message_body": "hi there"}),
    )
    .await
    .unwrap()
    .to_json();
    assert!(sent["MessageId"].is_string());
    let got = call(
        &d,
        &p,
        "aws_sqs.receive_messages",
        json!({"queue_url": queue_url, "max_messages": 1}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(got[0]["Body"], "hi there", "{got}");
    let receipt = got[0]["ReceiptHandle"].as_str().unwrap().to_owned();
    let deleted = call(
        &d,
        &p,
        "aws_sqs.delete_message",
        json!({"queue_url": queue_url, "receipt_handle": receipt}),
    )
    .await
    .unwrap();
    assert_eq!(deleted.to_json(), json!({"deleted": true}));
    let empty = call(
        &d,
        &p,
        "aws_sqs.receive_messages",
        json!({"queue_url": queue_url}),
    )
    .await
    .unwrap();
    assert_eq!(empty.to_json(), json!([]));
    let e = call(
        &d,
        &p,
        "aws_sqs.get_queue_url",
        json!({"queue_name": "flow-no-such-queue"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.status, Some(400), "{e}");
}

#[tokio::test]
async fn sns_topics_subscriptions_and_publishing() {
    let Some(url) = service(
        "FLOW_TEST_MOTO_URL",
        "sns_topics_subscriptions_and_publishing",
    ) else {
        return;
    };
    let p = stdlib("aws_sns");
    let (d, _) = driver(vec![aws("aws_sns", &url)]);
    let name = format!("flow-test-{}", fastrand::u32(..));
    let topic = call(&d, &p, "aws_sns.create_topic", json!({"name": name}))
        .await
        .unwrap()
        .to_json();
    let arn = topic["TopicArn"].as_str().unwrap().to_owned();
    assert!(arn.ends_with(&name));
    let topics = call(&d, &p, "aws_sns.list_topics", json!({}))
        .await
        .unwrap()
        .to_json();
    assert!(
        topics
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["TopicArn"] == arn.as_str()),
        "{topics}"
    );
    let sub = call(
        &d,
        &p,
        "aws_sns.subscribe",
        json!({"topic_arn": arn, "protocol": "email", "endpoint": "ops@example.com"}),
    )
    .await
    .unwrap();
    assert!(sub.to_json()["SubscriptionArn"].is_string());
    let subs = call(
        &d,
        &p,
        "aws_sns.list_subscriptions_by_topic",
        json!({"topic_arn": arn}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(subs.as_array().unwrap().len(), 1, "{subs}");
    let published = call(
        &d,
        &p,
        "aws_sns.publish",
        json!({"topic_arn": arn, "message": "deploy done", "subject": "CI"}),
    )
    .await
    .unwrap();
    assert!(published.to_json()["MessageId"].is_string());
    let sms = call(
        &d,
        &p,
        "aws_sns.publish_sms",
        json!({"phone_number": "+15555550100", "message": "page"}),
    )
    .await
    .unwrap();
    assert!(sms.to_json()["MessageId"].is_string());
}

#[tokio::test]
async fn cloudwatch_metrics_and_alarms() {
    let Some(url) = service("FLOW_TEST_MOTO_URL", "cloudwatch_metrics_and_alarms") else {
        return;
    };
    let p = stdlib("aws_cloudwatch");
    let (d, _) = driver(vec![aws("aws_cloudwatch", &url)]);
    let ns = format!("Flow/Test{}", fastrand::u32(..));
    let now = chrono::Utc::now();
    call(&d, &p, "aws_cloudwatch.put_metric_data", json!({"namespace": ns, "metric_name": "Latency", "value": 12.5, "unit": "Milliseconds", "dimensions": {"Service": "api"}}))
        .await
        .unwrap();
    let metrics = call(
        &d,
        &p,
        "aws_cloudwatch.list_metrics",
        json!({"namespace": ns}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(metrics[0]["MetricName"], "Latency", "{metrics}");
    let stats = call(
        &d,
        &p,
        "aws_cloudwatch.get_metric_statistics",
        json!({
            "namespace": ns, "metric_name": "Latency", "period": 60,
            "start_time": (now - chrono::Duration::minutes(10)).to_rfc3339(),
            "end_time": (now + chrono::Duration::minutes(10)).to_rfc3339(),
            "statistics": ["Average", "Maximum"], "dimensions": {"Service": "api"},
        }),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(stats.as_array().unwrap().len(), 1, "{stats}");
    assert_eq!(stats[0]["Maximum"], 12.5, "{stats}");
    let alarm = format!("{ns}-slow");
    call(&d, &p, "aws_cloudwatch.put_metric_alarm", json!({"alarm_name": alarm, "namespace": ns, "metric_name": "Latency", "threshold": 100.0, "comparison_operator": "GreaterThanThreshold"}))
        .await
        .unwrap();
    call(
        &d,
        &p,
        "aws_cloudwatch.set_alarm_state",
        json!({"alarm_name": alarm, "state_value": "ALARM", "state_reason": "test"}),
    )
    .await
    .unwrap();
    let alarms = call(
        &d,
        &p,
        "aws_cloudwatch.describe_alarms",
        json!({"name_prefix": ns}),
    )
    .await
    .unwrap()
    .to_json();
    assert_eq!(alarms[0]["AlarmName"], alarm.as_str(), "{alarms}");
    assert_eq!(alarms[0]["StateValue"], "ALARM", "{alarms}");
}

#[tokio::test]
async fn health_probes_reach_moto() {
    let Some(url) = service("FLOW_TEST_MOTO_URL", "health_probes_reach_moto") else {
        return;
    };
    for name in ["aws_s3", "aws_sqs", "aws_sns", "aws_cloudwatch"] {
        let p = stdlib(name);
        let (d, _) = driver(vec![]);
        d.probe(&p, 0, &aws(name, &url))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// moto started with `INITIAL_NO_AUTH_ACTION_COUNT` checks every request's SigV4
/// signature against an IAM access key it issued (`scripts/services/moto.sh` creates the
/// user and key): requests signed by the driver are accepted, and the same requests
/// signed with a wrong secret are refused.
#[tokio::test]
async fn moto_verifies_the_driver_s_signatures() {
    let Some(url) = service(
        "FLOW_TEST_MOTO_AUTH_URL",
        "moto_verifies_the_driver_s_signatures",
    ) else {
        return;
    };
    let key_id = std::env::var("FLOW_TEST_MOTO_AUTH_KEY_ID").unwrap();
    let secret = std::env::var("FLOW_TEST_MOTO_AUTH_SECRET").unwrap();
    let signed = |name: &str, secret: &str| {
        Connection::new(name, "ops")
            .with_setting("region", "us-east-1")
            .with_secret("access_key_id", &key_id)
            .with_secret("secret_access_key", secret)
            .with_base_url(&url)
    };
    let calls: [(&str, &str, serde_json::Value); 5] = [
        (
            "aws_s3",
            "aws_s3.create_bucket",
            json!({"bucket": format!("signed-{}", fastrand::u32(..))}),
        ),
        ("aws_s3", "aws_s3.list_buckets", json!({})),
        (
            "aws_sqs",
            "aws_sqs.create_queue",
            json!({"queue_name": format!("signed-{}", fastrand::u32(..))}),
        ),
        (
            "aws_sns",
            "aws_sns.create_topic",
            json!({"name": format!("signed-{}", fastrand::u32(..))}),
        ),
        ("aws_cloudwatch", "aws_cloudwatch.list_metrics", json!({})),
    ];
    for (module, action, args) in &calls {
        let p = stdlib(module);
        let (good, _) = driver(vec![signed(module, &secret)]);
        call(&good, &p, action, args.clone())
            .await
            .unwrap_or_else(|e| panic!("{action}: {e}"));
        let (bad, _) = driver(vec![signed(module, "not-the-secret")]);
        let e = call(&bad, &p, action, args.clone()).await.unwrap_err();
        assert_eq!(e.status, Some(403), "{action}: {e}");
        assert!(!e.message.contains("not-the-secret"));
    }
}
