//! socketioxide echo server (the Socket.IO peer of `switchboard bench
//! sio-echo`): on the main namespace, an `echo` event is acknowledged
//! with its data (the bench always asks for an ack).
//! hyper 1 http1 with upgrades, multi-thread runtime, default socketioxide
//! settings (polling and WebSocket, pingInterval 25 s, pingTimeout 20 s).

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};
use tokio::net::TcpListener;

async fn on_connect(socket: SocketRef) {
    socket.on(
        "echo",
        async |Data::<serde_json::Value>(data), ack: AckSender| {
            let _ = ack.send(&data);
        },
    );
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = switchboard_bench_peers::listen_addr();
    let (svc, io) = SocketIo::new_svc();
    io.ns("/", on_connect);
    let listener = TcpListener::bind(addr).await?;
    eprintln!("socketioxide-echo listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}
