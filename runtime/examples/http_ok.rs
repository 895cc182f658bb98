//! A local HTTP server for start-up measurements (`scripts/bench-start.sh`): answers
//! every GET with `{"ok": true}` on 127.0.0.1, prints its base URL on the first line of
//! stdout, and stops after `SECONDS` (default 600) or when its standard input closes.
//!
//! Run: `cargo run --release -p flow-runtime --example http_ok [SECONDS]`.

use std::io::Read;
use std::time::Duration;

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        use axum::routing::get;
        let app = axum::Router::new().route(
            "/{*rest}",
            get(|| async { axum::Json(serde_json::json!({ "ok": true })) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port on 127.0.0.1");
        let addr = listener.local_addr().expect("the bound address");
        println!("http://{addr}");
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        });
        tokio::select! {
            r = axum::serve(listener, app) => { let _ = r; }
            _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            _ = stdin_closed => {}
        }
    });
}
