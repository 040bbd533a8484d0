//! The server the interop tests (`tests/interop`) drive with the official
//! `socket.io-client`: every feature a client can observe, behind events.
//! pingInterval 300 ms, pingTimeout 200 ms, maxHttpBufferSize 10,000 bytes,
//! connect timeout 1 s, connection state recovery on.
//!
//! ```sh
//! cargo run --release -p switchboard-socketio --example interop-server -- 3000
//! ```

use std::time::Duration;

use serde_json::{Value, json};
use switchboard_engine::server::Cors;
use switchboard_socketio::server::{
    Args, ConnectError, Event, NamespaceBuilder, RecoveryConfig, Socket, SocketIo,
};

fn ack(ev: Event, args: impl Into<Args>) {
    if let Some(ack) = ev.ack {
        ack.send(args);
    }
}

fn echo(socket: &Socket, ev: Event) {
    match ev.ack {
        Some(ack) => ack.send(ev.args),
        None => {
            let _ = socket.emit("echo-back", ev.args);
        }
    }
}

fn root() -> NamespaceBuilder {
    NamespaceBuilder::new()
        .on("echo", echo)
        .on("join", |socket, ev| {
            if let Some(room) = ev.args.str(0) {
                socket.join(room);
            }
            ack(ev, json!("joined"));
        })
        .on("leave", |socket, ev| {
            if let Some(room) = ev.args.str(0) {
                socket.leave(room);
            }
            ack(ev, json!("left"));
        })
        .on("broadcast", |socket, ev| {
            let (Some(room), Some(event)) = (ev.args.str(0), ev.args.str(1)) else {
                return;
            };
            socket.namespace().to(room).emit(event, ev.args.slice(2..3));
            ack(ev, json!(true));
        })
        .on("broadcast-rooms", |socket, ev| {
            // (to: [room], except: [room], event, data): several rooms at once.
            let names = |i: usize| -> Vec<String> {
                ev.args
                    .get(i)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            };
            let (to, except) = (names(0), names(1));
            let Some(event) = ev.args.str(2) else {
                return;
            };
            let mut b = socket.namespace().all();
            for room in &to {
                b = b.to(room);
            }
            for room in &except {
                b = b.except(room);
            }
            let n = b.emit(event, ev.args.slice(3..4));
            ack(ev, json!(n));
        })
        .on("broadcast-others", |socket, ev| {
            let (Some(room), Some(event)) = (ev.args.str(0), ev.args.str(1)) else {
                return;
            };
            socket.to(room).emit(event, ev.args.slice(2..3));
            ack(ev, json!(true));
        })
        .on("ask", |socket, ev| {
            let event = ev.args.str(0).unwrap_or("question").to_owned();
            let timeout = Duration::from_millis(ev.args.get(1).and_then(Value::as_u64).unwrap_or(1000));
            let reply = socket.emit_with_ack(&event, json!("question"), timeout);
            tokio::spawn(async move {
                let answer = match reply.await {
                    Ok(args) => json!({"ok": true, "reply": args.values}),
                    Err(_) => json!({"ok": false, "error": "timeout"}),
                };
                ack(ev, answer);
            });
        })
        .on("ask-room", |socket, ev| {
            let Some(room) = ev.args.str(0) else { return };
            let timeout = Duration::from_millis(ev.args.get(1).and_then(Value::as_u64).unwrap_or(1000));
            let replies = socket.namespace().to(room).timeout(timeout).emit_with_ack("question", ());
            tokio::spawn(async move {
                // Like the reference server: each client's first ack argument.
                let first = |acks: Vec<Args>| {
                    acks.into_iter()
                        .map(|a| a.values.into_iter().next().unwrap_or(Value::Null))
                        .collect::<Vec<_>>()
                };
                let answer = match replies.await {
                    Ok(all) => json!({"ok": true, "replies": first(all)}),
                    Err(partial) => {
                        json!({"ok": false, "error": "timeout", "replies": first(partial.responses)})
                    }
                };
                ack(ev, answer);
            });
        })
        .on("binary", |socket, ev| {
            let mut args = Args::default();
            let b = args.push_binary(vec![1u8, 2, 3]);
            let c = args.push_binary(vec![4u8]);
            let d = args.push_binary(vec![5u8, 6]);
            args.values.push(json!({"a": {"b": b}, "list": [c, "x", d]}));
            let _ = socket.emit("binary-push", args.clone());
            ack(ev, args);
        })
        .on("rooms", |socket, ev| {
            let mut rooms = socket.rooms();
            rooms.sort();
            ack(ev, json!(rooms));
        })
    // Unknown events are not acknowledged: the client's timeout fires.
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
        .max_payload(10_000)
        .connect_timeout(Duration::from_millis(1000))
        .cors(Cors::Any)
        .recovery(RecoveryConfig::default().max_disconnection_duration(Duration::from_secs(30)))
        .ns("/", root())
        .ns(
            "/private",
            NamespaceBuilder::new()
                .middleware(|req| {
                    if req.auth().get("token").and_then(Value::as_str) == Some("secret") {
                        Ok(())
                    } else {
                        Err(ConnectError::new("unauthorized")
                            .with_data(json!({"code": 401, "reason": "bad token"})))
                    }
                })
                .on_connect(|socket| {
                    let _ = socket.emit("welcome", json!("private"));
                }),
        )
        .dynamic_ns(
            |name| {
                name.strip_prefix("/dyn-").is_some_and(|rest| {
                    !rest.is_empty()
                        && rest
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                })
            },
            NamespaceBuilder::new()
                .on_connect(|socket| {
                    let _ = socket.emit("hello", json!(socket.ns()));
                })
                .on("echo", echo),
        )
        .build();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("interop-server on http://127.0.0.1:{port}/socket.io/");
    io.serve(listener).await
}
