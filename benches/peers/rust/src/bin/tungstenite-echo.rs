//! tokio-tungstenite echo server: default WebSocketConfig, multi-thread runtime,
//! every path accepted, every text/binary message echoed back unchanged.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // accept_async accepts any request path.
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(msg) = ws.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(_) => return,
        };
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                if ws.send(msg).await.is_err() {
                    return;
                }
            }
            // Pings are answered and close frames replied to by tungstenite
            // itself (queued, flushed on the next write/read).
            Message::Close(_) => {
                let _ = ws.flush().await;
            }
            _ => {}
        }
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> std::io::Result<()> {
    let addr = switchboard_bench_peers::listen_addr();
    let listener = TcpListener::bind(addr).await?;
    eprintln!("tungstenite-echo listening on {}", listener.local_addr()?);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(serve(stream));
    }
}
