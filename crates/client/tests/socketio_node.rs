//! The Socket.IO client against Node's official `socket.io` server (npm,
//! pinned in tests/interop/package.json; `npm ci` there first):
//! events and acks both ways, binary attachments, rooms joined by server
//! handlers, reconnection with connection state recovery, the long-polling
//! fallback when the WebSocket is refused, refusals and server disconnects.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;
use switchboard_client::backoff::BackoffConfig;
use switchboard_client::socketio::{Args, Event, SioClient, SioConfig, State};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, timeout};

struct Node(Child, u16);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn node(mode: &str) -> Node {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/interop/lib/sio-peer-server.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .arg(port.to_string())
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node (>= 20) with tests/interop/node_modules (npm ci)");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        format!("listening {port}"),
        "the peer did not start"
    );
    Node(child, port)
}

fn config(port: u16) -> SioConfig {
    SioConfig::new([format!("http://127.0.0.1:{port}")]).backoff(BackoffConfig {
        initial: Duration::from_millis(100),
        max: Duration::from_millis(500),
        ..BackoffConfig::default()
    })
}

async fn next(
    events: &mut UnboundedReceiver<Event>,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    loop {
        let e = timeout(deadline - Instant::now(), events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; seen {seen:#?}"))
            .expect("client stopped");
        if pred(&e) {
            return e;
        }
        seen.push(e);
    }
}

fn named<'a>(name: &'a str) -> impl FnMut(&Event) -> bool + 'a {
    move |e| matches!(e, Event::Event { name: n, .. } if n == name)
}

fn open(e: &Event) -> Option<(&'static str, bool)> {
    match e {
        Event::State(State::Open {
            transport,
            recovered,
            ..
        }) => Some((transport, *recovered)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_acks_binary_and_rooms_over_websocket() {
    let peer = node("websocket");
    let (client, mut events) = SioClient::connect(config(peer.1));
    let e = next(&mut events, |e| open(e).is_some()).await;
    assert_eq!(open(&e), Some(("websocket", false)));
    next(&mut events, named("welcome")).await;

    // Client → server with an ack.
    let answer = client
        .emit_with_ack(
            "echo",
            Args::json(vec![json!(1), json!("two"), json!({"three": 3})]),
        )
        .await
        .unwrap();
    assert_eq!(answer.values, [json!(1), json!("two"), json!({"three": 3})]);

    // Server → client with an ack (the server asks while handling `ask`).
    let asked = client.emit_with_ack("ask", Args::json(vec![json!("6 x 7?")]));
    let Event::Event { args, ack, .. } = next(&mut events, named("question")).await else {
        unreachable!()
    };
    assert_eq!(args.values[0], json!("6 x 7?"));
    client.ack(
        ack.expect("the server waits for an ack"),
        Args::json(vec![json!(42)]),
    );
    assert_eq!(asked.await.unwrap().values, [json!(42)]);

    // Binary both ways.
    let answer = client
        .emit_with_ack("bin", Args::default().with_binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    assert_eq!(answer.binary.len(), 1);
    assert_eq!(&answer.binary[0][..], [1, 2, 3, 0xff]);
    assert_eq!(answer.values, [json!({"_placeholder": true, "num": 0})]);

    // A room the server's handler joined.
    client
        .emit("shout", Args::json(vec![json!("hello room")]))
        .unwrap();
    let Event::Event { args, .. } = next(&mut events, named("news")).await else {
        unreachable!()
    };
    assert_eq!(args.values[0], json!("hello room"));
    client.close();
    next(&mut events, |e| {
        matches!(e, Event::State(State::Closed { .. }))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_transport_reconnects_and_recovers_the_session() {
    let peer = node("websocket");
    let (client, mut events) = SioClient::connect(config(peer.1));
    next(&mut events, |e| open(e).is_some()).await;
    next(&mut events, named("welcome")).await;
    client.emit("drop", Args::default()).unwrap();
    next(&mut events, |e| {
        matches!(e, Event::State(State::Reconnecting { .. }))
    })
    .await;
    let e = next(&mut events, |e| open(e).is_some()).await;
    assert_eq!(
        open(&e),
        Some(("websocket", true)),
        "connection state recovery"
    );
    // Still in the room the server joined before the drop.
    client
        .emit("shout", Args::json(vec![json!("again")]))
        .unwrap();
    let Event::Event { args, .. } = next(&mut events, named("news")).await else {
        unreachable!()
    };
    assert_eq!(args.values[0], json!("again"));
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_when_the_websocket_is_refused() {
    let peer = node("polling");
    let (client, mut events) = SioClient::connect(config(peer.1));
    let e = next(&mut events, |e| open(e).is_some()).await;
    assert_eq!(open(&e), Some(("polling", false)));
    next(&mut events, named("welcome")).await;
    let answer = client
        .emit_with_ack("echo", Args::json(vec![json!("over polling")]))
        .await
        .unwrap();
    assert_eq!(answer.values, [json!("over polling")]);
    let answer = client
        .emit_with_ack("bin", Args::default().with_binary(vec![7u8]))
        .await
        .unwrap();
    assert_eq!(&answer.binary[0][..], [7, 0xff]);
    // Heartbeats keep it up past several ping intervals (300 ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client
        .emit("shout", Args::json(vec![json!("still here")]))
        .unwrap();
    let Event::Event { args, .. } = next(&mut events, named("news")).await else {
        unreachable!()
    };
    assert_eq!(args.values[0], json!("still here"));
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_server_disconnects_stop_the_client() {
    let peer = node("websocket");
    let (_refused, mut events) = SioClient::connect(config(peer.1).auth(json!({"token": "bad"})));
    let Event::ConnectError { error } =
        next(&mut events, |e| matches!(e, Event::ConnectError { .. })).await
    else {
        unreachable!()
    };
    assert_eq!(error["message"], json!("unauthorized"));
    next(&mut events, |e| {
        matches!(e, Event::State(State::Closed { .. }))
    })
    .await;

    let (client, mut events) = SioClient::connect(config(peer.1));
    next(&mut events, named("welcome")).await;
    client.emit("bye", Args::default()).unwrap();
    let Event::State(State::Closed { reason }) = next(&mut events, |e| {
        matches!(e, Event::State(State::Closed { .. }))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(reason, "disconnected by the server");
}
