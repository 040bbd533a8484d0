//! An Engine.IO echo server at `/engine.io/` for the official protocol test
//! suite (`docs/engine.io-protocol/v4-test-suite` in socketio/socket.io):
//! every message comes back unchanged. pingInterval 300 ms, pingTimeout
//! 200 ms, maxPayload 1e6, CORS `*`.
//!
//! ```sh
//! cargo run --release -p switchboard-engine --example engineio-test-server -- 3000
//! ```

use std::sync::Arc;
use std::time::Duration;

use switchboard_engine::server::{Cors, Engine, EngineConfig, EngineSocket, Handler, serve};
use switchboard_engine::{CloseReason, Inbound, Packet};

struct Echo;

impl Handler for Echo {
    type Data = ();

    fn data(&self, _req: &http::request::Parts) {}

    fn on_open(&self, _socket: &Arc<EngineSocket<()>>) {}

    fn on_message(&self, socket: &Arc<EngineSocket<()>>, message: Inbound) {
        socket.send(&match message {
            Inbound::Message(text) => Packet::Message(text),
            Inbound::Binary(bytes) => Packet::Binary(bytes),
        });
    }

    fn on_close(&self, _socket: &Arc<EngineSocket<()>>, _reason: CloseReason) {}
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let config = EngineConfig::default()
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(200))
        .max_payload(1_000_000)
        .cors(Cors::Any);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("engineio-test-server on http://127.0.0.1:{port}/engine.io/");
    serve(Engine::new(Echo, config), listener).await
}
