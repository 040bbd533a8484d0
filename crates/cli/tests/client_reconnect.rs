//! The Rust client (`switchboard-client`) against the built server: a
//! SIGKILL mid-stream and a restart on the same `--data-dir` lose nothing and
//! duplicate nothing; a dead primary moves the client to its backup; a "do
//! not reconnect" kick stops it; token refreshes keep it connected.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_client::backoff::BackoffConfig;
use switchboard_client::native::{Client, ClientConfig, Event, State};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, timeout};

const KEY: &str = "client-test-key";

struct Server {
    child: Child,
    port: u16,
    args: Vec<String>,
}

impl Server {
    fn start(args: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let child = spawn(port, &args);
        let s = Self { child, port, args };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < until, "server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    /// The same port and arguments again.
    fn restart(&mut self) {
        self.kill();
        self.child = spawn(self.port, &self.args);
        self.wait_ready();
    }
}

fn spawn(port: u16, args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--api-key",
            KEY,
        ])
        .args(["--max-connections-per-ip", "0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A blocking admin request (in a blocking task); `None` when the server is
/// down.
async fn admin(port: u16, method: &'static str, path: String, body: Value) -> Option<Value> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let body = body.to_string();
        let req = format!(
            "{method} /api/v1/{path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        if !out.starts_with("HTTP/1.1 200") {
            return None;
        }
        serde_json::from_str(out.split("\r\n\r\n").nth(1)?).ok()
    })
    .await
    .ok()
    .flatten()
}

fn fast(urls: Vec<String>) -> ClientConfig {
    let mut c = ClientConfig::new(urls)
        .backoff(BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(500),
            ..BackoffConfig::default()
        })
        .heartbeat(Duration::from_millis(500), Duration::from_millis(500));
    c.failures_per_url = 1;
    c.connect_timeout = Duration::from_secs(2);
    c
}

/// Waits for an event `pred` accepts, collecting messages meanwhile.
async fn until(
    events: &mut UnboundedReceiver<Event>,
    seen: &mut Vec<Event>,
    limit: Duration,
    mut pred: impl FnMut(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + limit;
    loop {
        let e = timeout(deadline - Instant::now(), events.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out; seen: {seen:#?}"))
            .expect("client stopped");
        seen.push(e.clone());
        if pred(&e) {
            return e;
        }
    }
}

/// A token provider of HS256 tokens for `sub` that expire 3 s after they
/// are made, and how many it made.
fn short_tokens(
    secret: &'static str,
    sub: &'static str,
) -> (
    switchboard_client::native::TokenProvider,
    std::sync::Arc<std::sync::atomic::AtomicU32>,
) {
    let issued = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = issued.clone();
    let provider: switchboard_client::native::TokenProvider = std::sync::Arc::new(move || {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            let exp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 3;
            let claims = json!({"sub": sub, "exp": exp});
            let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
            jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).ok()
        })
    });
    (provider, issued)
}

fn is_open(e: &Event) -> bool {
    matches!(e, Event::State(State::Open { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_and_restart_on_the_data_dir_lose_and_repeat_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let mut server = Server::start(&["--data-dir", &data]);
    let (client, mut events) = Client::connect(fast(vec![server.ws()]));
    let mut seen = Vec::new();
    until(&mut events, &mut seen, Duration::from_secs(5), is_open).await;
    client.join("feed", false).await.unwrap();

    // The publisher retries each number until the server acknowledges it.
    const N: u64 = 60;
    let port = server.port;
    let (killed_tx, killed_rx) = tokio::sync::oneshot::channel::<()>();
    let mut killed_rx = Some(killed_rx);
    // A publish whose answer was lost to the kill may have been applied:
    // its retry is then a second message with the same number (at-least-once
    // on the publisher's side). Those numbers are noted.
    let publisher = tokio::spawn(async move {
        let mut killed_tx = Some(killed_tx);
        let mut unanswered = Vec::new();
        for n in 1..=N {
            if n == 20 {
                // Mid-stream: the test kills the server now.
                let _ = killed_tx.take().unwrap().send(());
            }
            loop {
                let body = json!({"room": "feed", "event": "n", "data": n});
                if admin(port, "POST", "publish".into(), body).await.is_some() {
                    break;
                }
                unanswered.push(n);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        unanswered
    });
    killed_rx.take().unwrap().await.unwrap();
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    let unanswered = publisher.await.unwrap();

    // (number, offset) of every message delivered.
    let mut got: Vec<(u64, u64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while got.last().map(|g| g.0) != Some(N) {
        let e = timeout(deadline - Instant::now(), events.recv())
            .await
            .unwrap_or_else(|_| panic!("got {got:?}"))
            .unwrap();
        if let Event::Message(m) = &e {
            got.push((m.data.as_u64().unwrap(), m.offset));
        }
        seen.push(e);
    }
    // A little longer: nothing more (no duplicate) arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(e) = events.try_recv() {
        if let Event::Message(m) = &e {
            got.push((m.data.as_u64().unwrap(), m.offset));
        }
    }
    // The client delivers each message of the log once, in order.
    assert!(
        got.windows(2).all(|w| w[0].1 < w[1].1),
        "offsets strictly increasing: {got:?}"
    );
    // Every number arrives, in order; one appears twice only when its
    // first publish went unanswered (applied, then retried).
    let mut numbers: Vec<u64> = got.iter().map(|g| g.0).collect();
    for pair in numbers.windows(2).filter(|w| w[0] == w[1]) {
        assert!(
            unanswered.contains(&pair[0]),
            "{} twice, yet every publish of it was answered: {got:?}",
            pair[0]
        );
    }
    numbers.dedup();
    assert_eq!(
        numbers,
        (1..=N).collect::<Vec<_>>(),
        "every message, in order"
    );
    assert!(
        seen.iter()
            .filter(|e| matches!(e, Event::State(State::Reconnecting { .. })))
            .count()
            >= 1,
        "the client reconnected"
    );
    assert!(
        !seen.iter().any(|e| matches!(e, Event::Gap { .. })),
        "no gap"
    );
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_moves_the_client_to_the_backup() {
    let mut primary = Server::start(&[]);
    let backup = Server::start(&[]);
    let (client, mut events) = Client::connect(fast(vec![primary.ws(), backup.ws()]));
    let mut seen = Vec::new();
    let open = until(&mut events, &mut seen, Duration::from_secs(5), is_open).await;
    assert!(matches!(open, Event::State(State::Open { url, .. }) if url == primary.ws()));
    client.join("room", false).await.unwrap();
    primary.kill();
    let open = until(&mut events, &mut seen, Duration::from_secs(10), is_open).await;
    assert!(
        matches!(&open, Event::State(State::Open { url, .. }) if *url == backup.ws()),
        "{open:?}"
    );
    // Rejoined there (the backup's log is another one: a gap), then a
    // publish on the backup reaches it.
    until(
        &mut events,
        &mut seen,
        Duration::from_secs(5),
        |e| matches!(e, Event::Gap { room } if room == "room"),
    )
    .await;
    let body = json!({"room": "room", "event": "e", "data": "on backup"});
    admin(backup.port, "POST", "publish".into(), body)
        .await
        .unwrap();
    let m = until(&mut events, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Event::Message(_))
    })
    .await;
    assert!(matches!(m, Event::Message(m) if m.data == json!("on backup")));
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_do_not_reconnect_kick_stops_the_client_for_good() {
    let server = Server::start(&[]);
    let (_client, mut events) = Client::connect(fast(vec![server.ws()]));
    let mut seen = Vec::new();
    let open = until(&mut events, &mut seen, Duration::from_secs(5), is_open).await;
    let Event::State(State::Open { socket, .. }) = open else {
        unreachable!()
    };
    let body = json!({"socket": socket, "reason": "banned", "reconnect": false});
    let answer = admin(server.port, "POST", "disconnect".into(), body)
        .await
        .unwrap();
    assert_eq!(answer["disconnected"], 1);
    until(&mut events, &mut seen, Duration::from_secs(5), |e| {
        matches!(e, Event::State(State::Closed { .. }))
    })
    .await;
    assert!(seen.contains(&Event::Kicked {
        reason: Some("banned".into()),
        reconnect: false
    }));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let sockets = admin(server.port, "GET", "sockets".into(), Value::Null)
        .await
        .unwrap();
    assert_eq!(sockets, json!([]), "it did not come back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_refreshes_keep_the_connection() {
    const SECRET: &str = "client-refresh-secret";
    let server = Server::start(&["--jwt-secret", SECRET]);
    let (provider, issued) = short_tokens(SECRET, "refresher");
    let (client, mut events) = Client::connect(fast(vec![server.ws()]).token_provider(provider));
    let mut seen = Vec::new();
    let open = until(&mut events, &mut seen, Duration::from_secs(5), is_open).await;
    client.join("r", false).await.unwrap();
    // Every token lives 3 s; after 6 s the client is still on its first
    // connection (the server asked for refreshes and got them).
    tokio::time::sleep(Duration::from_secs(6)).await;
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let reconnects = seen
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::State(State::Reconnecting { .. }) | Event::Kicked { .. }
            )
        })
        .count();
    assert_eq!(reconnects, 0, "{seen:#?}");
    assert!(
        issued.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "refreshed"
    );
    let Event::State(State::Open { user, .. }) = open else {
        unreachable!()
    };
    assert_eq!(user, "refresher");
    assert!(client.publish("r", "e", json!(1)).await.unwrap() >= 1);
    client.close();
}

/// The Socket.IO client against `switchboard serve`: the token provider
/// fills `auth.token`, answers `refresh`, and the connection outlives every
/// 3-second token; the relay's `join`/`publish` work through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_client_refreshes_tokens_and_uses_the_relay() {
    use switchboard_client::socketio::{
        Args, Event as SioEvent, SioClient, SioConfig, State as SioState,
    };
    const SECRET: &str = "sio-refresh-secret";
    let server = Server::start(&["--jwt-secret", SECRET]);
    let (provider, issued) = short_tokens(SECRET, "sio-user");
    let config =
        SioConfig::new([format!("http://127.0.0.1:{}", server.port)]).token_provider(provider);
    let (client, mut events) = SioClient::connect(config);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let e = timeout(deadline - Instant::now(), events.recv())
            .await
            .unwrap()
            .unwrap();
        if matches!(e, SioEvent::State(SioState::Open { .. })) {
            break;
        }
    }
    let joined = client
        .emit_with_ack("join", Args::json(vec![json!("sio-room")]))
        .await
        .unwrap();
    assert_eq!(joined.values[0]["ok"], true);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut states = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let SioEvent::State(s) = e {
            states.push(s);
        }
    }
    assert!(states.is_empty(), "no reconnect: {states:?}");
    assert!(
        issued.load(std::sync::atomic::Ordering::SeqCst) >= 3,
        "refreshed"
    );
    let published = client
        .emit_with_ack(
            "publish",
            Args::json(vec![json!("sio-room"), json!("chat"), json!({"hi": 1})]),
        )
        .await
        .unwrap();
    assert_eq!(published.values[0]["ok"], true);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let e = timeout(deadline - Instant::now(), events.recv())
            .await
            .unwrap()
            .unwrap();
        if let SioEvent::Event { name, args, .. } = e
            && name == "chat"
        {
            assert_eq!(args.values[0], json!({"hi": 1}));
            assert_eq!(args.values[1]["from"], "sio-user");
            break;
        }
    }
    client.close();
}

/// A drain (SIGTERM: kick going_away, close 1001) moves the client to the
/// next URL at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_moves_the_client_to_the_next_url_at_once() {
    let primary = Server::start(&["--drain-timeout", "2s"]);
    let backup = Server::start(&[]);
    let mut config = fast(vec![primary.ws(), backup.ws()]);
    // A long backoff: only an immediate reconnect passes this test.
    config.backoff = BackoffConfig {
        initial: Duration::from_secs(30),
        max: Duration::from_secs(30),
        ..BackoffConfig::default()
    };
    config.failures_per_url = 5;
    let (client, mut events) = Client::connect(config);
    let mut seen = Vec::new();
    until(&mut events, &mut seen, Duration::from_secs(5), is_open).await;
    let status = Command::new("kill")
        .args(["-TERM", &primary.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let open = until(&mut events, &mut seen, Duration::from_secs(10), is_open).await;
    assert!(
        matches!(&open, Event::State(State::Open { url, .. }) if *url == backup.ws()),
        "{open:?}"
    );
    client.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_upload_resumes_after_a_sigkill_and_restart_on_the_data_dir() {
    use switchboard_client::files::{FileTarget, Progress, Transfer};
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut server = Server::start(&["--data-dir", data_dir.to_str().unwrap()]);
    let src = dir.path().join("src.bin");
    let body: Vec<u8> = (0..600_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&src, &body).unwrap();
    let (sender, _events) = Client::connect(fast(vec![server.ws()]));

    // Killed once 200 of the 586 chunks are acknowledged.
    let (half_tx, half_rx) = tokio::sync::oneshot::channel::<()>();
    let half = std::sync::Mutex::new(Some(half_tx));
    let progress = std::sync::Arc::new(move |p: &Progress| {
        if p.chunks_done >= 200
            && let Some(tx) = half.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    });
    let options = Transfer {
        chunk_size: Some(1024),
        progress: Some(progress),
        ..Transfer::default()
    };
    let upload = {
        let sender = sender.clone();
        let src = src.clone();
        tokio::spawn(async move {
            sender
                .send_file(FileTarget::Room("drop".into()), &src, options)
                .await
        })
    };
    half_rx.await.unwrap();
    server.kill();
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.restart();
    let sent = timeout(Duration::from_secs(60), upload)
        .await
        .expect("the upload finished")
        .unwrap()
        .unwrap();
    assert_eq!(sent.chunks, 586);
    assert_eq!(sent.resumed_at.len(), 1, "{sent:?}");
    assert!(
        sent.resumed_at[0] >= 200,
        "resumed from the chunks held: {sent:?}"
    );
    assert_eq!(sent.resent_acknowledged, 0);

    // Another client downloads it from the restarted server.
    let (receiver, _events) = Client::connect(fast(vec![server.ws()]));
    let listed = receiver.files().await.unwrap();
    assert!(listed.is_empty(), "not in the room yet: {listed:?}");
    receiver.join("drop", false).await.unwrap();
    let listed = receiver.files().await.unwrap();
    assert_eq!(listed.len(), 1);
    let dest = dir.path().join("copy.bin");
    let got = receiver
        .receive_file(&sent.transfer, &dest, Transfer::default())
        .await
        .unwrap();
    assert_eq!(got.sha256, sent.sha256);
    assert_eq!(std::fs::read(&dest).unwrap(), body);
    sender.close();
    receiver.close();
}
