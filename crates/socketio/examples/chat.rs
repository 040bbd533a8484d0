//! A chat server built on the Socket.IO layer, mounted in an application's
//! own hyper server next to its other routes.
//!
//! ```sh
//! cargo run --release -p switchboard-socketio --example chat -- 127.0.0.1:3000
//! ```
//!
//! Any official Socket.IO client connects to `http://127.0.0.1:3000` with
//! `auth: {name: "ada"}` and then:
//! - `join(room, ack)`: enters a room; everyone there gets `joined({name})`;
//!   the ack carries who is in the room;
//! - `say({room, text}, ack)`: everyone in the room (sender included) gets
//!   `said({name, text, at})`; the ack says `{ok: true}`;
//! - `typing(room)`: the others get a volatile `typing({name})`.
//!
//! Connection state recovery is on: a client whose network drops for less
//! than two minutes gets every `said` it missed, in order, on reconnect.

use std::convert::Infallible;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};
use switchboard_socketio::server::{
    ConnectError, NamespaceBuilder, RecoveryConfig, Socket, SocketIo,
};

/// The user's display name, set by the middleware.
#[derive(Clone)]
struct Name(String);

fn name(socket: &Socket) -> String {
    socket
        .data::<Name>()
        .map(|n| n.0.clone())
        .unwrap_or_default()
}

fn chat() -> NamespaceBuilder {
    NamespaceBuilder::new()
        .middleware(|req| match req.auth().get("name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n.len() <= 32 => {
                req.set_data(Name(n.to_owned()));
                Ok(())
            }
            _ => Err(ConnectError::new("a name is required")
                .with_data(json!({"hint": "connect with auth: {name}"}))),
        })
        .on("join", |socket, ev| {
            let Some(room) = ev.args.str(0).map(str::to_owned) else {
                return;
            };
            socket.join(&room);
            socket
                .to(&room)
                .emit("joined", json!({"name": name(socket)}));
            let members: Vec<String> = socket
                .namespace()
                .to(&room)
                .sockets()
                .iter()
                .map(name)
                .collect();
            if let Some(ack) = ev.ack {
                ack.send(json!({"room": room, "members": members}));
            }
        })
        .on("say", |socket, ev| {
            let msg = ev.args.get(0).cloned().unwrap_or(Value::Null);
            let (Some(room), Some(text)) = (
                msg.get("room").and_then(Value::as_str),
                msg.get("text").and_then(Value::as_str),
            ) else {
                if let Some(ack) = ev.ack {
                    ack.send(json!({"ok": false, "error": "say({room, text})"}));
                }
                return;
            };
            let at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            socket.namespace().to(room).emit(
                "said",
                json!({"name": name(socket), "text": text, "at": at}),
            );
            if let Some(ack) = ev.ack {
                ack.send(json!({"ok": true}));
            }
        })
        .on("typing", |socket, ev| {
            if let Some(room) = ev.args.str(0) {
                socket
                    .to(room)
                    .volatile()
                    .emit("typing", json!({"name": name(socket)}));
            }
        })
        .on_disconnect(|socket, reason| {
            eprintln!("{} left ({})", name(socket), reason.as_str());
        })
}

/// The application's own router: Socket.IO under `/socket.io/`, the rest is
/// the application's.
async fn route(io: SocketIo, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if io.matches(req.uri().path()) {
        return Ok(io.handle(req).await);
    }
    let (status, body) = match req.uri().path() {
        "/health" => (StatusCode::OK, "ok\n"),
        _ => (StatusCode::NOT_FOUND, "not found\n"),
    };
    let mut res = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *res.status_mut() = status;
    Ok(res)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".into());
    let io = SocketIo::builder()
        .recovery(RecoveryConfig::default().max_disconnection_duration(Duration::from_secs(120)))
        .ns("/", chat())
        .build();
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("chat on http://{addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        let io = io.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| route(io.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}
