//! The server the official Socket.IO v5 protocol test suite expects
//! (`docs/socket.io-protocol/v5-test-suite` in socketio/socket.io):
//! namespaces `/` and `/custom` emit `auth` with the handshake's auth on
//! connect, `message` is answered with `message-back`, `message-with-ack` is
//! acked with its arguments; other namespaces are refused. pingInterval
//! 300 ms, pingTimeout 200 ms, maxPayload 1e6, CORS `*`, connect timeout 1 s.
//!
//! ```sh
//! cargo run --release -p switchboard-socketio --example socketio-test-server -- 3000
//! ```

use std::time::Duration;

use switchboard_engine::server::Cors;
use switchboard_socketio::server::{NamespaceBuilder, SocketIo};

fn namespace() -> NamespaceBuilder {
    NamespaceBuilder::new()
        .on_connect(|socket| {
            let _ = socket.emit("auth", socket.auth().clone());
        })
        .on("message", |socket, ev| {
            let _ = socket.emit("message-back", ev.args);
        })
        .on("message-with-ack", |_socket, ev| {
            if let Some(ack) = ev.ack {
                ack.send(ev.args);
            }
        })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let io = SocketIo::builder()
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(200))
        .max_payload(1_000_000)
        .connect_timeout(Duration::from_millis(1000))
        .cors(Cors::Any)
        .ns("/", namespace())
        .ns("/custom", namespace())
        .build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("socketio-test-server on http://127.0.0.1:{port}/socket.io/");
    io.serve(listener).await
}
