//! The floor `scripts/bench-serve.sh` measures `flow serve` against: a bare axum handler
//! that verifies the same HMAC-SHA256 signature a Flow integration event checks and
//! commits the delivery's row to SQLite (WAL, `synchronous=FULL`, one transaction per
//! request) before answering `202`. Usage: `webhook_floor DB SECRET` (listens on
//! 127.0.0.1, port chosen by the system, printed as `listening on http://ADDR`).

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flow_connectors::sigv4::{hex, hmac};

struct Floor {
    db: Mutex<rusqlite::Connection>,
    secret: Vec<u8>,
}

async fn deliver(State(floor): State<Arc<Floor>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers
        .get("x-acme-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="));
    let expected = hex(&hmac(&floor.secret, &body));
    let valid = signature.is_some_and(|s| {
        s.len() == expected.len()
            && s.bytes()
                .zip(expected.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !valid {
        return StatusCode::UNAUTHORIZED;
    }
    let id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let floor = Arc::clone(&floor);
    let written = tokio::task::spawn_blocking(move || {
        let db = floor
            .db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        db.execute(
            "INSERT INTO deliveries (id, body) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
            rusqlite::params![id, body.to_vec()],
        )
    })
    .await;
    match written {
        Ok(Ok(_)) => StatusCode::ACCEPTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(secret)) = (args.next(), args.next()) else {
        eprintln!("usage: webhook_floor DB SECRET");
        std::process::exit(2);
    };
    let db = rusqlite::Connection::open(path).expect("open the database");
    db.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, body BLOB NOT NULL);",
    )
    .expect("prepare the database");
    let floor = Arc::new(Floor {
        db: Mutex::new(db),
        secret: secret.into_bytes(),
    });
    let app = Router::new()
        .route("/hooks/acme/events", post(deliver))
        .with_state(floor);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    eprintln!(
        "listening on http://{}",
        listener.local_addr().expect("address")
    );
    axum::serve(listener, app).await.expect("serve");
}
