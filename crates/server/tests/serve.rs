//! End-to-end tests of `Server::serve`: the server runs in-process on
//! `127.0.0.1:0` and is driven over real sockets, the native protocol with
//! the wire crate's sans-IO client [`Connection`] (so close codes are seen),
//! HTTP with reqwest or raw TCP, Socket.IO with hand-made Engine.IO polling.
//!
//! Every wait is bounded ([`WAIT`] unless said otherwise).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use switchboard_hub::{DiskStore, LogLimits};
use switchboard_server::limits::RateConfig;
use switchboard_server::rooms::{Permissions, Rule, Who};
use switchboard_server::{Auth, Server, ServerConfig};
use switchboard_wire::handshake::HandshakeError;
use switchboard_wire::handshake::client::{ClientHandshake, ClientOptions};
use switchboard_wire::{Config, Connection, Event, Message, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const API_KEY: &str = "test-admin-key";
const JWT_SECRET: &str = "test-jwt-secret";
const WEBHOOK_SECRET: &str = "test-webhook-secret";
/// Bound of every wait for something that should happen promptly.
const WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------- helpers

/// `f`, or a panic naming `what` after [`WAIT`].
async fn within<F: Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out after {WAIT:?} waiting for {what}"))
}

/// Polls `check` until it gives a value (every 20 ms, at most [`WAIT`]).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

fn http() -> reqwest::Client {
    // reqwest is built without a default crypto provider (as the server's
    // backend client); a second install is refused harmlessly.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("reqwest client")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// An HS256 token signed with [`JWT_SECRET`].
fn token(claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .expect("encode JWT")
}

/// A port nothing listens on.
async fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

/// A server serving on an ephemeral port; stopped (its accept task aborted)
/// when dropped.
struct TestServer {
    addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
    http: reqwest::Client,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server with the defaults changed by `configure`, in memory.
async fn start(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let mut config = ServerConfig::new(API_KEY.into());
    configure(&mut config);
    serve(Server::new(config)).await
}

/// Serves `server` on `127.0.0.1:0`; the returned handle holds no clone of
/// it (only the accept task does).
async fn serve(server: Server) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(server.serve(listener));
    TestServer {
        addr,
        task,
        http: http(),
    }
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An admin API request: status and JSON body.
    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, self.url(path))
            .bearer_auth(API_KEY);
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.expect("admin request");
        let status = res.status().as_u16();
        let bytes = res.bytes().await.expect("admin body");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "admin {path} answered {status} with non-JSON {:?}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    /// Publishes through the admin API; the offset.
    async fn publish(&self, room: &str, event: &str, data: Value) -> u64 {
        let body = json!({"room": room, "event": event, "data": data});
        let (status, answer) = self
            .admin(reqwest::Method::POST, "/api/v1/publish", Some(body))
            .await;
        assert_eq!(status, 200, "admin publish: {answer}");
        answer["offset"].as_u64().expect("offset in publish answer")
    }

    /// The `/metrics` text.
    async fn metrics(&self) -> String {
        let res = self.http.get(self.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    /// A native connection to `/ws?QUERY` that got its welcome.
    async fn client(&self, query: &str) -> Ws {
        let mut ws = self.ws(query).await.expect("upgrade to /ws");
        let welcome = ws.push("welcome").await;
        ws.welcome = welcome;
        ws
    }

    /// A native connection to `/ws?QUERY` (no welcome awaited), or the
    /// refusal's HTTP status.
    async fn ws(&self, query: &str) -> Result<Ws, u16> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        Ws::handshake(tcp, self.addr, query).await
    }
}

/// How a read of a native connection ended or what it gave.
#[derive(Debug)]
#[allow(
    dead_code,
    reason = "the fields are read through Debug, in assertion messages"
)]
enum Frame {
    Text(String),
    Binary(Bytes),
    /// A close frame, with its code.
    Closed(Option<u16>),
    /// The stream ended (EOF, reset) without a close frame.
    Dropped(String),
}

/// A native-protocol client: the wire crate's [`Connection`] over a TCP
/// stream. Pings are answered; replies are matched by id, pushes read
/// meanwhile are kept in `backlog`.
struct Ws {
    tcp: TcpStream,
    conn: Connection,
    backlog: VecDeque<Value>,
    next_id: u64,
    welcome: Value,
}

impl Ws {
    /// The client handshake on `tcp`; the HTTP status when it is refused.
    async fn handshake(mut tcp: TcpStream, addr: SocketAddr, query: &str) -> Result<Self, u16> {
        let path = if query.is_empty() {
            "/ws".to_owned()
        } else {
            format!("/ws?{query}")
        };
        let (request, pending) =
            ClientHandshake::new(&addr.to_string(), &path, &ClientOptions::default());
        tcp.write_all(&request).await.unwrap();
        let mut buf = BytesMut::with_capacity(1024);
        within("the handshake response", async {
            loop {
                let n = tcp.read_buf(&mut buf).await.expect("read handshake");
                assert!(n > 0, "connection closed during the handshake");
                match pending.parse_response(&buf, &Default::default()) {
                    Ok(None) => continue,
                    Ok(Some((negotiated, len))) => {
                        let config = Config::default().deflate(None);
                        let mut conn = Connection::new(Role::Client, config, negotiated.deflate);
                        conn.feed(&buf[len..]);
                        return Ok(Self {
                            tcp,
                            conn,
                            backlog: VecDeque::new(),
                            next_id: 0,
                            welcome: Value::Null,
                        });
                    }
                    Err(HandshakeError::BadStatus(status)) => return Err(status),
                    Err(e) => panic!("handshake failed: {e}"),
                }
            }
        })
        .await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        while self.conn.has_output() {
            let n = self.tcp.write(self.conn.output_chunk()).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.conn.consume_output(n);
        }
        Ok(())
    }

    async fn send_text(&mut self, text: impl Into<String>) {
        self.conn
            .send(Message::text(text))
            .expect("send on an open connection");
        self.flush().await.expect("write to the server");
    }

    async fn send(&mut self, v: &Value) {
        self.send_text(v.to_string()).await;
    }

    /// The next frame, unbounded (callers bound it).
    async fn frame(&mut self) -> Frame {
        let mut buf = vec![0u8; 16 << 10];
        loop {
            match self.conn.next_event() {
                Ok(Some(Event::Message(Message::Text(t)))) => {
                    return Frame::Text(t.as_str().to_owned());
                }
                Ok(Some(Event::Message(Message::Binary(b)))) => return Frame::Binary(b),
                Ok(Some(Event::Close(f))) => {
                    let _ = self.flush().await;
                    return Frame::Closed(f.map(|f| f.code.0));
                }
                Ok(Some(Event::Ping(_) | Event::Pong(_))) => {
                    // The pong is queued: send it.
                    let _ = self.flush().await;
                    continue;
                }
                Ok(None) => {}
                Err(e) => return Frame::Dropped(format!("protocol error: {e}")),
            }
            match self.tcp.read(&mut buf).await {
                Ok(0) => return Frame::Dropped("EOF".into()),
                Ok(n) => self.conn.feed(&buf[..n]),
                Err(e) => return Frame::Dropped(e.to_string()),
            }
        }
    }

    /// The next JSON frame, unbounded.
    async fn read_json(&mut self) -> Value {
        match self.frame().await {
            Frame::Text(t) => serde_json::from_str(&t)
                .unwrap_or_else(|e| panic!("a text frame that is not JSON: {t:?}: {e}")),
            other => panic!("expected a JSON text frame, got {other:?}"),
        }
    }

    /// Sends `req` with a fresh numeric id; the reply with that id.
    async fn request(&mut self, mut req: Value) -> Value {
        self.next_id += 1;
        let id = json!(self.next_id);
        req["id"] = id.clone();
        self.send(&req).await;
        self.reply(&id).await
    }

    /// The reply carrying `id` (replies have no `op`); frames read meanwhile
    /// go to the backlog.
    async fn reply(&mut self, id: &Value) -> Value {
        if let Some(i) = self
            .backlog
            .iter()
            .position(|v| v.get("op").is_none() && v.get("id") == Some(id))
        {
            return self.backlog.remove(i).unwrap();
        }
        within(&format!("the reply to request {id}"), async {
            loop {
                let v = self.read_json().await;
                if v.get("op").is_none() && v.get("id") == Some(id) {
                    return v;
                }
                self.backlog.push_back(v);
            }
        })
        .await
    }

    /// The next reply without an id (to a request that could not be read).
    async fn reply_without_id(&mut self) -> Value {
        within("a reply without id", async {
            loop {
                let v = self.read_json().await;
                if v.get("op").is_none() && v.get("id").is_none() {
                    return v;
                }
                self.backlog.push_back(v);
            }
        })
        .await
    }

    /// The next push with `op` (the backlog first); other frames go to the
    /// backlog.
    async fn push(&mut self, op: &str) -> Value {
        if let Some(i) = self.backlog.iter().position(|v| v["op"] == op) {
            return self.backlog.remove(i).unwrap();
        }
        within(&format!("a {op:?} push"), async {
            loop {
                let v = self.read_json().await;
                if v["op"] == op {
                    return v;
                }
                self.backlog.push_back(v);
            }
        })
        .await
    }

    /// Sends the text `ping`; waits for the text `pong`.
    async fn ping_pong(&mut self) {
        self.send_text("ping").await;
        within("pong", async {
            loop {
                match self.frame().await {
                    Frame::Text(t) if t == "pong" => return,
                    Frame::Text(t) => self.backlog.push_back(
                        serde_json::from_str(&t).unwrap_or_else(|_| panic!("unexpected {t:?}")),
                    ),
                    other => panic!("expected pong, got {other:?}"),
                }
            }
        })
        .await;
    }

    /// Reads until the connection ends (within `limit`): the ending
    /// ([`Frame::Closed`] or [`Frame::Dropped`]) and the number of messages
    /// read before it.
    async fn ending(&mut self, limit: Duration) -> (Frame, usize) {
        let mut messages = 0;
        let end = tokio::time::timeout(limit, async {
            loop {
                match self.frame().await {
                    Frame::Text(_) | Frame::Binary(_) => messages += 1,
                    end => return end,
                }
            }
        })
        .await;
        let end = end.unwrap_or_else(|_| panic!("the connection did not end within {limit:?}"));
        (end, messages)
    }
}

/// The value of the sample `series` (name with labels) in a metrics text.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no sample {series} in:\n{text}"))
}

/// Writes `request` on a fresh connection; everything the server sends
/// until it closes.
async fn raw_http(addr: SocketAddr, request: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut out = Vec::new();
    within("the server to close the connection", async {
        // A reset after the answer still leaves the answer read.
        let _ = tcp.read_to_end(&mut out).await;
    })
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 answer.
fn status_of(answer: &str) -> u16 {
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 answer: {answer:?}"))
}

fn offsets(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .expect("a message list")
        .iter()
        .map(|m| m["offset"].as_u64().expect("offset"))
        .collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_ops_end_to_end() {
    let srv = start(|_| {}).await;
    let mut a = srv.client("").await;
    let mut b = srv.client("").await;
    for w in [&a.welcome, &b.welcome] {
        assert!(w["socket"].as_str().is_some_and(|s| !s.is_empty()), "{w}");
        assert!(
            w["user"].as_str().is_some_and(|u| u.starts_with("anon-")),
            "{w}"
        );
        assert_eq!(w["ping_interval"], json!(25_000), "{w}");
    }
    let (user_a, user_b) = (
        a.welcome["user"].as_str().unwrap().to_owned(),
        b.welcome["user"].as_str().unwrap().to_owned(),
    );
    assert_ne!(user_a, user_b, "anonymous users get distinct ids");

    let joined = a
        .request(json!({"op": "join", "room": "lobby", "presence": true}))
        .await;
    assert_eq!(joined["ok"], json!(true), "{joined}");
    assert_eq!(joined["offset"], json!(0), "{joined}");
    assert_eq!(joined["recovered"], json!(false), "{joined}");
    let epoch = joined["epoch"].as_str().expect("epoch").to_owned();

    // A string id is echoed too.
    b.send(&json!({"id": "j1", "op": "join", "room": "lobby"}))
        .await;
    let r = b.reply(&json!("j1")).await;
    assert_eq!(r["ok"], json!(true), "{r}");
    assert_eq!(r["epoch"], json!(epoch), "{r}");

    let p = a.push("presence").await;
    assert_eq!(
        p,
        json!({"op": "presence", "room": "lobby", "user": user_b, "action": "join"})
    );

    let published = b
        .request(json!({"op": "publish", "room": "lobby", "event": "chat", "data": {"t": "hi"}}))
        .await;
    assert_eq!(published["ok"], json!(true), "{published}");
    assert_eq!(published["offset"], json!(1), "{published}");
    for (who, ws) in [("a", &mut a), ("b (the sender)", &mut b)] {
        let m = ws.push("message").await;
        assert_eq!(m["room"], json!("lobby"), "{who}: {m}");
        assert_eq!(m["epoch"], json!(epoch), "{who}: {m}");
        assert_eq!(m["offset"], json!(1), "{who}: {m}");
        assert_eq!(m["event"], json!("chat"), "{who}: {m}");
        assert_eq!(m["data"], json!({"t": "hi"}), "{who}: {m}");
        assert_eq!(m["from"], json!(user_b), "{who}: {m}");
        assert!(m["at"].as_str().is_some_and(|t| t.ends_with('Z')), "{m}");
    }

    let h = a.request(json!({"op": "history", "room": "lobby"})).await;
    assert_eq!(h["ok"], json!(true), "{h}");
    assert_eq!(h["epoch"], json!(epoch), "{h}");
    assert_eq!(offsets(&h["messages"]), vec![1], "{h}");
    assert_eq!(h["messages"][0]["data"], json!({"t": "hi"}), "{h}");
    assert_eq!(h["messages"][0]["from"], json!(user_b), "{h}");

    let pr = a.request(json!({"op": "presence", "room": "lobby"})).await;
    assert_eq!(pr["ok"], json!(true), "{pr}");
    let mut users: Vec<&str> = pr["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["user"].as_str().unwrap())
        .collect();
    users.sort_unstable();
    let mut expected = vec![user_a.as_str(), user_b.as_str()];
    expected.sort_unstable();
    assert_eq!(users, expected, "{pr}");

    let left = b.request(json!({"op": "leave", "room": "lobby"})).await;
    assert_eq!(left["ok"], json!(true), "{left}");
    let p = a.push("presence").await;
    assert_eq!(
        p,
        json!({"op": "presence", "room": "lobby", "user": user_b, "action": "leave"})
    );
    // Once left, b gets nothing: a's publish is fanned out before its reply,
    // and b's next reply would come after any message pushed to b.
    let r = a
        .request(json!({"op": "publish", "room": "lobby", "event": "chat", "data": 2}))
        .await;
    assert_eq!(r["offset"], json!(2), "{r}");
    b.ping_pong().await;
    let r = b.request(json!({"op": "presence", "room": "lobby"})).await;
    assert_eq!(r["members"].as_array().map(Vec::len), Some(1), "{r}");
    assert!(
        b.backlog.iter().all(|v| v["op"] != "message"),
        "b got a message after leaving: {:?}",
        b.backlog
    );

    // The text `ping` is answered with the text `pong`.
    a.ping_pong().await;

    // Unreadable requests: bad_request, the connection stays.
    a.send_text("{not json").await;
    let r = a.reply_without_id().await;
    assert_eq!(r["ok"], json!(false), "{r}");
    assert_eq!(r["error"]["code"], json!("bad_request"), "{r}");
    let r = a.request(json!({"op": "frobnicate"})).await;
    assert_eq!(r["error"]["code"], json!("unknown_op"), "{r}");
    let r = a.request(json!({"op": "join"})).await;
    assert_eq!(r["error"]["code"], json!("bad_request"), "{r}");
    let r = a
        .request(json!({"op": "publish", "room": "lobby", "event": "kick", "data": 1}))
        .await;
    assert_eq!(
        r["error"]["code"],
        json!("bad_request"),
        "reserved event: {r}"
    );
    let r = a
        .request(json!({"op": "join", "room": format!("user:{user_b}")}))
        .await;
    assert_eq!(r["error"]["code"], json!("forbidden"), "{r}");
    let r = a.request(json!({"op": "history", "room": "lobby"})).await;
    assert_eq!(offsets(&r["messages"]), vec![1, 2], "still served: {r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_store_recovers_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let open = || DiskStore::open(dir.path(), LogLimits::default());

    let store = open().expect("open the disk store");
    let srv = serve(Server::with_store(
        ServerConfig::new(API_KEY.into()),
        Arc::new(store),
    ))
    .await;
    for i in 1..=3u64 {
        assert_eq!(srv.publish("r", "n", json!(i)).await, i);
    }
    let (status, h) = srv
        .admin(reqwest::Method::GET, "/api/v1/history/r", None)
        .await;
    assert_eq!(status, 200, "{h}");
    let epoch = h["epoch"].as_str().expect("epoch").to_owned();
    assert_eq!(offsets(&h["messages"]), vec![1, 2, 3], "{h}");

    // Stop it: the accept task aborted, no handle left here. The database
    // file can be opened again once the old server let go of it.
    drop(srv);
    let mut last_error = String::new();
    let reopened = tokio::time::timeout(WAIT, async {
        loop {
            match open() {
                Ok(s) => return s,
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let store = reopened.unwrap_or_else(|_| {
        panic!(
            "the dropped server still holds the store after {WAIT:?} (a leaked Server / Hub?): {last_error}"
        )
    });

    let srv = serve(Server::with_store(
        ServerConfig::new(API_KEY.into()),
        Arc::new(store),
    ))
    .await;
    assert_eq!(
        srv.publish("r", "n", json!(4)).await,
        4,
        "offsets continue after a restart"
    );
    let mut ws = srv.client("").await;
    let r = ws
        .request(json!({"op": "join", "room": "r", "since": {"epoch": epoch, "offset": 1}}))
        .await;
    assert_eq!(r["ok"], json!(true), "{r}");
    assert_eq!(r["epoch"], json!(epoch), "the epoch survives: {r}");
    assert_eq!(r["offset"], json!(4), "{r}");
    assert_eq!(r["recovered"], json!(true), "{r}");
    assert_eq!(offsets(&r["missed"]), vec![2, 3, 4], "{r}");
    assert_eq!(r["missed"][0]["data"], json!(2), "{r}");
    let metrics = srv.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "switchboard_recoveries_total{protocol=\"native\",result=\"recovered\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_query_token_auth_op_timeout_and_refresh() {
    let srv = start(|c| c.auth = Auth::hs256(JWT_SECRET.as_bytes())).await;

    // ?token= accepted: the user is `sub`.
    let alice = token(json!({"sub": "alice", "exp": unix_now() + 3600}));
    let mut ws = srv.client(&format!("token={alice}")).await;
    assert_eq!(ws.welcome["user"], json!("alice"), "{}", ws.welcome);
    let r = ws.request(json!({"op": "join", "room": "a"})).await;
    assert_eq!(r["ok"], json!(true), "{r}");

    // A bad ?token= is refused before the upgrade.
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "mallory"}),
        &jsonwebtoken::EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    for bad in ["garbage", wrong_key.as_str()] {
        let refused = srv.ws(&format!("token={bad}")).await.err();
        assert_eq!(refused, Some(401), "token {bad:?}");
    }
    let expired = token(json!({"sub": "alice", "exp": unix_now() - 10}));
    assert_eq!(
        srv.ws(&format!("token={expired}")).await.err(),
        Some(401),
        "expired"
    );

    // No ?token=: upgraded, but nothing but `auth` (and `ping`) until then.
    let mut ws = srv.ws("").await.expect("upgrade without a token");
    let r = ws.request(json!({"op": "join", "room": "a"})).await;
    assert_eq!(r["ok"], json!(false), "{r}");
    assert_eq!(r["error"]["code"], json!("unauthorized"), "{r}");
    ws.ping_pong().await;
    let r = ws.request(json!({"op": "auth", "token": alice})).await;
    assert_eq!(r["ok"], json!(true), "{r}");
    assert_eq!(r["user"], json!("alice"), "{r}");
    let welcome = ws.push("welcome").await;
    assert_eq!(welcome["user"], json!("alice"), "{welcome}");
    let (auth_reply, auth_welcome) = (r, welcome);
    let r = ws.request(json!({"op": "join", "room": "a"})).await;
    assert_eq!(r["ok"], json!(true), "after auth: {r}");

    // A bad token in the auth op: unauthorized, then close 4401.
    let mut ws = srv.ws("").await.expect("upgrade without a token");
    let r = ws.request(json!({"op": "auth", "token": "garbage"})).await;
    assert_eq!(r["error"]["code"], json!("unauthorized"), "{r}");
    let (end, _) = ws.ending(WAIT).await;
    assert!(matches!(end, Frame::Closed(Some(4401))), "{end:?}");

    // Token about to expire (within 30 s): `refresh` pushed; a fresh token
    // for the same user keeps the connection past the old `exp`, while a
    // connection that does not refresh is kicked (4003).
    let exp = unix_now() + 4;
    let short = token(json!({"sub": "alice", "exp": exp}));
    let mut keeps = srv.client(&format!("token={short}")).await;
    let mut lapses = srv.client(&format!("token={short}")).await;
    assert_eq!(keeps.push("refresh").await, json!({"op": "refresh"}));
    assert_eq!(lapses.push("refresh").await, json!({"op": "refresh"}));
    let bob = token(json!({"sub": "bob", "exp": unix_now() + 3600}));
    let r = keeps.request(json!({"op": "refresh", "token": bob})).await;
    assert_eq!(
        r["error"]["code"],
        json!("unauthorized"),
        "another user's token: {r}"
    );
    let fresh_exp = unix_now() + 3600;
    let fresh = token(json!({"sub": "alice", "exp": fresh_exp}));
    let r = keeps
        .request(json!({"op": "refresh", "token": fresh}))
        .await;
    assert_eq!(r["ok"], json!(true), "{r}");
    assert_eq!(r["expires_at"], json!(fresh_exp), "{r}");

    let kick = lapses.push("kick").await;
    assert_eq!(kick["reason"], json!("token_expired"), "{kick}");
    assert_eq!(kick["reconnect"], json!(false), "{kick}");
    let (end, _) = lapses.ending(WAIT).await;
    assert!(matches!(end, Frame::Closed(Some(4003))), "{end:?}");
    assert!(unix_now() >= exp);
    // The same expiry pass saw `keeps`: anything it got is before this reply.
    let r = keeps.request(json!({"op": "history", "room": "a"})).await;
    assert_eq!(
        r["ok"],
        json!(true),
        "refreshed connection still served: {r}"
    );
    assert!(
        keeps.backlog.iter().all(|v| v["op"] != "kick"),
        "{:?}",
        keeps.backlog
    );
    keeps.ping_pong().await;

    // Checked last, so that the rest runs whatever this gives.
    assert_eq!(
        auth_reply.get("socket"),
        auth_welcome.get("socket"),
        "the auth reply names the socket (spec: {{id, ok, user, socket}}): {auth_reply} / {auth_welcome}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_auth_op_deadline_closes_4401() {
    let srv = start(|c| {
        c.auth = Auth::hs256(JWT_SECRET.as_bytes());
        c.auth_timeout = Duration::from_millis(300);
    })
    .await;
    let started = Instant::now();
    let mut ws = srv.ws("").await.expect("upgrade without a token");
    let (end, messages) = ws.ending(WAIT).await;
    assert!(matches!(end, Frame::Closed(Some(4401))), "{end:?}");
    assert_eq!(messages, 0, "no welcome before auth");
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the deadline: {:?}",
        started.elapsed()
    );
    let m = srv.metrics().await;
    assert!(metric(&m, "switchboard_limit_rejections_total{limit=\"auth\"}") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_permissions_rules_and_token_grants() {
    let rules = || Permissions::new(vec![Rule::new("public:*", Who::Anyone, Who::Users)]);
    let anon = start(|c| c.rooms = rules()).await;
    let mut ws = anon.client("").await;
    let r = ws.request(json!({"op": "join", "room": "public:x"})).await;
    assert_eq!(r["ok"], json!(true), "{r}");
    let r = ws
        .request(json!({"op": "publish", "room": "public:x", "event": "e", "data": 1}))
        .await;
    assert_eq!(
        r["error"]["code"],
        json!("forbidden"),
        "anonymous publish: {r}"
    );
    let r = ws.request(json!({"op": "join", "room": "other"})).await;
    assert_eq!(
        r["error"]["code"],
        json!("forbidden"),
        "no rule matches: {r}"
    );
    let r = ws.request(json!({"op": "history", "room": "other"})).await;
    assert_eq!(r["error"]["code"], json!("forbidden"), "{r}");
    // The own personal room is always allowed.
    let user = ws.welcome["user"].as_str().unwrap().to_owned();
    let r = ws
        .request(json!({"op": "join", "room": format!("user:{user}")}))
        .await;
    assert_eq!(r["ok"], json!(true), "{r}");

    let jwt = start(|c| {
        c.rooms = rules();
        c.auth = Auth::hs256(JWT_SECRET.as_bytes());
    })
    .await;
    let plain = token(json!({"sub": "dave"}));
    let mut ws = jwt.client(&format!("token={plain}")).await;
    let r = ws.request(json!({"op": "join", "room": "other"})).await;
    assert_eq!(r["error"]["code"], json!("forbidden"), "{r}");
    let r = ws
        .request(json!({"op": "publish", "room": "public:x", "event": "e", "data": 1}))
        .await;
    assert_eq!(r["ok"], json!(true), "a user may publish to public:*: {r}");

    let granted = token(json!({"sub": "carol", "rooms": ["other"]}));
    let mut ws = jwt.client(&format!("token={granted}")).await;
    let r = ws.request(json!({"op": "join", "room": "other"})).await;
    assert_eq!(r["ok"], json!(true), "the rooms claim grants it: {r}");
    let r = ws
        .request(json!({"op": "publish", "room": "other", "event": "e", "data": 1}))
        .await;
    assert_eq!(
        r["error"]["code"],
        json!("forbidden"),
        "joining is not publishing: {r}"
    );
}

/// One request the in-test backend received.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    signature: Option<String>,
    raw: Bytes,
    body: Value,
}

/// A small HTTP backend recording what it is sent.
struct Backend {
    addr: SocketAddr,
    hits: Arc<Mutex<Vec<Hit>>>,
    task: JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the backend answers.
fn backend_answer(path: &str, body: &Value) -> (u16, Value) {
    match path {
        "/connect" => match body["token"].as_str() {
            Some("bob") => (200, json!({"user": "bob", "rooms": ["auto"]})),
            Some("deny") => (403, json!({"reason": "go away"})),
            _ => (401, json!({})),
        },
        "/rpc" => match body["event"].as_str() {
            Some("echo") => (200, json!({"echoed": body["data"], "for": body["user"]})),
            _ => (422, json!({"why": "nope"})),
        },
        "/hook" => (200, json!({})),
        _ => (404, json!({})),
    }
}

async fn backend() -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
    let recorded = hits.clone();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let hits = recorded.clone();
            let service = hyper::service::service_fn(move |req: http::Request<_>| {
                let hits = hits.clone();
                async move {
                    let path = req.uri().path().to_owned();
                    let signature = req
                        .headers()
                        .get("x-switchboard-signature")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    let raw: Bytes = match BodyExt::collect(req.into_body()).await {
                        Ok(b) => b.to_bytes(),
                        Err(_) => Bytes::new(),
                    };
                    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                    let (status, answer) = backend_answer(&path, &body);
                    hits.lock().unwrap().push(Hit {
                        path,
                        signature,
                        raw,
                        body,
                    });
                    let res = http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(answer.to_string())))
                        .unwrap();
                    Ok::<_, Infallible>(res)
                }
            });
            conns.spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Backend { addr, hits, task }
}

impl Backend {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self, path: &str) -> Vec<Hit> {
        let hits = self.hits.lock().unwrap();
        hits.iter().filter(|h| h.path == path).cloned().collect()
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, computed here independently.
fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connect_rpc_and_webhooks() {
    let be = backend().await;
    let srv = start(|c| {
        c.backend.connect_url = Some(be.url("/connect"));
        c.backend.rpc_url = Some(be.url("/rpc"));
        c.backend.webhook_url = Some(be.url("/hook"));
        c.backend.secret = Some(WEBHOOK_SECRET.into());
    })
    .await;

    // The connect proxy names the user and auto-joins its rooms.
    let mut ws = srv.client("token=bob").await;
    assert_eq!(ws.welcome["user"], json!("bob"), "{}", ws.welcome);
    let socket = ws.welcome["socket"].as_str().unwrap().to_owned();
    let connect = be.hits("/connect");
    assert_eq!(connect.len(), 1, "{connect:?}");
    assert_eq!(connect[0].body["protocol"], json!("native"), "{connect:?}");
    assert_eq!(connect[0].body["token"], json!("bob"), "{connect:?}");
    assert!(
        connect[0].body["headers"]["host"].is_string(),
        "handshake headers, lowercase: {connect:?}"
    );
    assert!(
        connect[0].body["remote"]
            .as_str()
            .is_some_and(|r| r.starts_with("127.0.0.1:")),
        "{connect:?}"
    );
    let offset = srv.publish("auto", "news", json!({"n": 1})).await;
    let m = ws.push("message").await;
    assert_eq!(m["room"], json!("auto"), "{m}");
    assert_eq!(m["offset"], json!(offset), "{m}");
    assert_eq!(m["data"], json!({"n": 1}), "{m}");
    assert_eq!(
        m["from"],
        Value::Null,
        "admin publishes are from nobody: {m}"
    );

    // A refusal is 403 before the upgrade.
    assert_eq!(srv.ws("token=deny").await.err(), Some(403));

    // RPC: the backend's answer is the result; a 4xx is rpc_failed.
    let r = ws
        .request(json!({"op": "rpc", "event": "echo", "data": {"x": 1}}))
        .await;
    assert_eq!(r["ok"], json!(true), "{r}");
    assert_eq!(
        r["result"],
        json!({"echoed": {"x": 1}, "for": "bob"}),
        "{r}"
    );
    let rpc = be.hits("/rpc");
    assert_eq!(
        rpc[0].body,
        json!({"user": "bob", "socket": socket, "event": "echo", "data": {"x": 1}})
    );
    let r = ws
        .request(json!({"op": "rpc", "event": "explode", "data": null}))
        .await;
    assert_eq!(r["ok"], json!(false), "{r}");
    assert_eq!(r["error"]["code"], json!("rpc_failed"), "{r}");

    // Webhooks: online when bob's connection opened, offline once it closed.
    drop(ws);
    let hooks = eventually("the offline webhook", || {
        let hooks = be.hits("/hook");
        async move { (hooks.len() >= 2).then_some(hooks) }
    })
    .await;
    let events: Vec<(&str, &str)> = hooks
        .iter()
        .map(|h| {
            (
                h.body["type"].as_str().unwrap_or("?"),
                h.body["user"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(events, [("online", "bob"), ("offline", "bob")]);
    for h in &hooks {
        assert!(
            h.body["at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{h:?}"
        );
    }

    // Every backend request is signed.
    let all = be.hits.lock().unwrap().clone();
    assert!(all.len() >= 6, "{all:?}");
    for h in &all {
        assert_eq!(
            h.signature.as_deref(),
            Some(signature(WEBHOOK_SECRET, &h.raw).as_str()),
            "{} request signed",
            h.path
        );
    }

    // The backend unreachable: 503 before the upgrade.
    let down = closed_port().await;
    let srv2 = start(|c| c.backend.connect_url = Some(format!("http://{down}/connect"))).await;
    assert_eq!(srv2.ws("token=bob").await.err(), Some(503));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_and_header_limits() {
    let srv = start(|c| c.max_connections_per_ip = 2).await;
    let first = TcpStream::connect(srv.addr).await.unwrap();
    let _second = TcpStream::connect(srv.addr).await.unwrap();
    let answer = raw_http(
        srv.addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 429, "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{body:?}: {e}"));
    assert_eq!(
        body["error"]["code"],
        json!("too_many_connections"),
        "{body}"
    );

    // A freed slot is usable again.
    drop(first);
    let addr = srv.addr;
    eventually("a freed per-IP slot", move || async move {
        let a = raw_http(
            addr,
            b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        (status_of(&a) == 200).then_some(())
    })
    .await;

    // Upgraded WebSockets stay counted.
    let srv = start(|c| c.max_connections_per_ip = 2).await;
    let _a = srv.client("").await;
    let _b = srv.client("").await;
    let answer = raw_http(
        srv.addr,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status_of(&answer),
        429,
        "two open WebSockets fill the per-IP limit: {answer}"
    );

    let head = |headers: usize| {
        let mut r = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n");
        for i in 0..headers - 2 {
            r.push_str(&format!("x-h-{i}: v\r\n"));
        }
        r.push_str("\r\n");
        r
    };
    let srv = start(|_| {}).await;
    let ok = raw_http(srv.addr, head(100).as_bytes()).await;
    assert_eq!(status_of(&ok), 200, "100 headers are allowed: {ok}");
    let too_many = raw_http(srv.addr, head(101).as_bytes()).await;
    assert_eq!(status_of(&too_many), 431, "{too_many}");
    let mut big = String::from("GET /healthz HTTP/1.1\r\nhost: x\r\n");
    big.push_str(&format!("x-big: {}\r\n\r\n", "a".repeat(17 << 10)));
    let too_big = raw_http(srv.addr, big.as_bytes()).await;
    assert_eq!(status_of(&too_big), 431, "a 17 KiB head: {too_big}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_payload_rate_and_room_limits() {
    let srv = start(|c| {
        c.max_payload = 1024;
        c.rate = RateConfig {
            per_second: 1.0,
            burst: 2.0,
        };
        c.max_rooms = 1;
    })
    .await;

    // Rate: a burst of 2, then rate_limited; the connection stays.
    let mut ws = srv.client("").await;
    let r = ws.request(json!({"op": "join", "room": "a"})).await;
    assert_eq!(r["ok"], json!(true), "{r}");
    let r = ws.request(json!({"op": "join", "room": "b"})).await;
    assert_eq!(r["error"]["code"], json!("too_many_rooms"), "{r}");
    let r = ws.request(json!({"op": "join", "room": "c"})).await;
    assert_eq!(r["error"]["code"], json!("rate_limited"), "{r}");
    ws.ping_pong().await;
    // The bucket refills at 1/s: a later request gets through again.
    let r = within("the rate bucket to refill", async {
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let r = ws.request(json!({"op": "join", "room": "a"})).await;
            if r["ok"] == json!(true) {
                return r;
            }
            assert_eq!(r["error"]["code"], json!("rate_limited"), "{r}");
        }
    })
    .await;
    assert_eq!(r["offset"], json!(0), "rejoining a joined room: {r}");

    // A message just under max_payload is fine; one above closes with 1009.
    let mut ws = srv.client("").await;
    let small =
        json!({"op": "publish", "room": "a", "event": "e", "data": "x".repeat(900), "id": 1});
    assert!(small.to_string().len() < 1024);
    ws.send(&small).await;
    let r = ws.reply(&json!(1)).await;
    assert_eq!(r["ok"], json!(true), "{r}");
    ws.send(&json!({"op": "publish", "room": "a", "event": "e", "data": "x".repeat(2000)}))
        .await;
    let (end, _) = ws.ending(WAIT).await;
    assert!(matches!(end, Frame::Closed(Some(1009))), "{end:?}");
    drop(ws);
    // Counted once the server is done with the connection.
    let m = eventually("the payload rejection to be counted", || async {
        let m = srv.metrics().await;
        (metric(&m, "switchboard_limit_rejections_total{limit=\"payload\"}") >= 1.0).then_some(m)
    })
    .await;
    assert!(metric(&m, "switchboard_limit_rejections_total{limit=\"rate\"}") >= 1.0);
    assert!(metric(&m, "switchboard_limit_rejections_total{limit=\"rooms\"}") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_native_consumer_is_cut_off() {
    let srv = start(|c| c.send_queue = 65536).await;
    // A small receive buffer, so the kernel holds little for the client.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(srv.addr).await.unwrap();
    let mut slow = Ws::handshake(tcp, srv.addr, "").await.expect("upgrade");
    slow.push("welcome").await;
    let r = slow.request(json!({"op": "join", "room": "flood"})).await;
    assert_eq!(r["ok"], json!(true), "{r}");

    // 10 MB into its room while it reads nothing; every publish succeeds.
    let chunk = "x".repeat(100_000);
    const COUNT: usize = 100;
    let started = Instant::now();
    for i in 0..COUNT {
        let offset = srv.publish("flood", "blob", json!(chunk)).await;
        assert_eq!(offset, i as u64 + 1);
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the publisher was held up: {:?}",
        started.elapsed()
    );

    // It gets what was already on its way, then 4008 (or the connection is
    // dropped when even the close frame cannot get through in time).
    let (end, got) = slow.ending(Duration::from_secs(20)).await;
    assert!(
        matches!(end, Frame::Closed(Some(4008)) | Frame::Dropped(_)),
        "{end:?}"
    );
    assert!(got < COUNT, "all {got} messages arrived: not cut off");
    let m = srv.metrics().await;
    assert!(
        metric(
            &m,
            "switchboard_limit_rejections_total{limit=\"slow_consumer\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(metric(&m, "switchboard_queue_drops_total{protocol=\"native\"}") >= 1.0);
    // The server is fine.
    let mut ws = srv.client("").await;
    ws.ping_pong().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_native_traffic() {
    let srv = start(|_| {}).await;
    let before = srv.metrics().await;
    let mut ws = srv.client("").await;
    let r = ws.request(json!({"op": "join", "room": "m"})).await;
    assert_eq!(r["ok"], json!(true));
    for i in 0..2 {
        let r = ws
            .request(json!({"op": "publish", "room": "m", "event": "e", "data": i}))
            .await;
        assert_eq!(r["ok"], json!(true));
        ws.push("message").await;
    }
    ws.ping_pong().await;

    let res = srv.http.get(srv.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let after = res.text().await.unwrap();
    assert!(
        after.trim_end().ends_with("# EOF"),
        "OpenMetrics ends with # EOF"
    );
    let delta = |series: &str| metric(&after, series) - metric(&before, series);
    assert!(
        delta("switchboard_messages_received_total{protocol=\"native\"}") >= 4.0,
        "join, 2 publishes, ping:\n{after}"
    );
    // welcome, 3 replies, 2 messages, pong
    assert!(delta("switchboard_messages_sent_total{protocol=\"native\"}") >= 7.0);
    assert!(delta("switchboard_bytes_received_total{protocol=\"native\"}") > 0.0);
    assert_eq!(delta("switchboard_publishes_total"), 2.0, "{after}");
    assert!(delta("switchboard_deliveries_total") >= 2.0);
    assert_eq!(
        metric(
            &after,
            "switchboard_connections{protocol=\"native\",transport=\"websocket\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_native_client_is_dropped() {
    let srv = start(|c| {
        c.ping_interval = Duration::from_millis(200);
        c.ping_timeout = Duration::from_millis(200);
    })
    .await;
    // A client that answers pings (the helper does) stays meanwhile.
    let mut live = srv.client("").await;
    assert_eq!(live.welcome["ping_interval"], json!(200));

    let mut tcp = TcpStream::connect(srv.addr).await.unwrap();
    let request = format!(
        "GET /ws HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        srv.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let head_len = within("the 101 response", async {
        let mut chunk = [0u8; 4096];
        loop {
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                return i + 4;
            }
        }
    })
    .await;
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let upgraded = Instant::now();

    // Read (to see the pings and the end) but never write a byte.
    let mut parser = Connection::new(Role::Client, Config::default().deflate(None), None);
    parser.feed(&buf[head_len..]);
    let dead = async {
        let mut pings = 0;
        let mut chunk = [0u8; 4096];
        loop {
            while let Ok(Some(ev)) = parser.next_event() {
                if matches!(ev, Event::Ping(_)) {
                    pings += 1;
                }
            }
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return (pings, upgraded.elapsed()),
                Ok(n) => parser.feed(&chunk[..n]),
            }
        }
    };
    let keep_alive = async {
        loop {
            match live.frame().await {
                Frame::Text(_) | Frame::Binary(_) => {}
                end => return end,
            }
        }
    };
    let bound = Duration::from_secs(3);
    let (pings, elapsed) = tokio::time::timeout(bound, async {
        tokio::select! {
            dropped = dead => dropped,
            end = keep_alive => panic!("the client answering pings ended: {end:?}"),
        }
    })
    .await
    .unwrap_or_else(|_| panic!("a silent client was not dropped within {bound:?}"));
    assert!(pings >= 1, "the server pinged before dropping");
    assert!(
        elapsed >= Duration::from_millis(200),
        "dropped before interval + timeout: {elapsed:?}"
    );
    live.ping_pong().await;
    let m = srv.metrics().await;
    assert_eq!(
        metric(
            &m,
            "switchboard_heartbeat_timeouts_total{protocol=\"native\"}"
        ),
        1.0
    );
}

/// A Socket.IO client over hand-made Engine.IO v4 long-polling.
struct Polling {
    http: reqwest::Client,
    url: String,
    /// Packets received and not yet looked at.
    packets: VecDeque<String>,
}

impl Polling {
    async fn open(addr: SocketAddr) -> Self {
        let http = http();
        let base = format!("http://{addr}/socket.io/?EIO=4&transport=polling");
        let res = http.get(&base).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.text().await.unwrap();
        let open: Value = body
            .strip_prefix('0')
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_else(|| panic!("not an open packet: {body:?}"));
        let sid = open["sid"].as_str().expect("sid");
        Self {
            http,
            url: format!("{base}&sid={sid}"),
            packets: VecDeque::new(),
        }
    }

    async fn post(&self, packet: &str) {
        let res = self
            .http
            .post(&self.url)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(packet.to_owned())
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.text().await.unwrap();
        assert_eq!(status, 200, "POST {packet:?}: {body}");
        assert_eq!(body, "ok");
    }

    /// The first packet `pick` accepts (mapped), with GETs as needed;
    /// engine pings are answered, other packets kept.
    async fn until<T>(&mut self, what: &str, mut pick: impl FnMut(&str) -> Option<T>) -> T {
        within(what, async {
            loop {
                if let Some(i) = self.packets.iter().position(|p| pick(p).is_some()) {
                    let p = self.packets.remove(i).unwrap();
                    return pick(&p).unwrap();
                }
                let res = self.http.get(&self.url).send().await.unwrap();
                assert_eq!(res.status(), 200, "polling GET");
                let body = res.text().await.unwrap();
                for p in body.split('\x1e') {
                    if p == "2" {
                        self.post("3").await;
                    } else {
                        self.packets.push_back(p.to_owned());
                    }
                }
            }
        })
        .await
    }

    /// The ack `id` (`43<id>[...]`): its first argument.
    async fn ack(&mut self, id: u64) -> Value {
        let prefix = format!("43{id}");
        self.until(&format!("ack {id}"), |p| {
            let args: Value = serde_json::from_str(p.strip_prefix(&prefix)?).ok()?;
            Some(args[0].clone())
        })
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_socketio_share_rooms() {
    let srv = start(|_| {}).await;
    let mut sio = Polling::open(srv.addr).await;
    sio.post("40").await;
    let connected = sio
        .until("the CONNECT reply", |p| {
            serde_json::from_str::<Value>(p.strip_prefix("40")?).ok()
        })
        .await;
    assert!(connected["sid"].is_string(), "{connected}");

    sio.post(r#"421["join","r"]"#).await;
    let joined = sio.ack(1).await;
    assert_eq!(joined["ok"], json!(true), "{joined}");

    let mut ws = srv.client("").await;
    let r = ws.request(json!({"op": "join", "room": "r"})).await;
    assert_eq!(r["ok"], json!(true), "{r}");
    assert_eq!(r["epoch"], joined["epoch"], "one room, one log");
    let r = ws.request(json!({"op": "presence", "room": "r"})).await;
    assert_eq!(
        r["members"].as_array().map(Vec::len),
        Some(2),
        "presence counts both protocols: {r}"
    );

    // native → Socket.IO
    let r = ws
        .request(json!({"op": "publish", "room": "r", "event": "news", "data": {"n": 1}}))
        .await;
    assert_eq!(r["ok"], json!(true), "{r}");
    let native_user = ws.welcome["user"].clone();
    let args = sio
        .until("the published event", |p| {
            let args: Value = serde_json::from_str(p.strip_prefix("42")?).ok()?;
            (args[0] == "news").then_some(args)
        })
        .await;
    assert_eq!(args[1], json!({"n": 1}), "{args}");
    assert_eq!(args[2]["room"], json!("r"), "{args}");
    assert_eq!(args[2]["offset"], json!(1), "{args}");
    assert_eq!(args[2]["epoch"], joined["epoch"], "{args}");
    assert_eq!(args[2]["from"], native_user, "{args}");

    // Socket.IO → native
    sio.post(r#"422["publish","r","reply",{"n":2}]"#).await;
    let ack = sio.ack(2).await;
    assert_eq!(ack, json!({"ok": true, "offset": 2}));
    let own = ws.push("message").await;
    assert_eq!(own["offset"], json!(1), "its own publish first: {own}");
    let m = ws.push("message").await;
    assert_eq!(m["event"], json!("reply"), "{m}");
    assert_eq!(m["data"], json!({"n": 2}), "{m}");
    assert_eq!(m["offset"], json!(2), "{m}");
    assert_eq!(m["from"], json!(connected_user(&srv).await), "{m}");
}

/// The user of the one Socket.IO socket of `srv` (admin API).
async fn connected_user(srv: &TestServer) -> String {
    let (status, sockets) = srv
        .admin(reqwest::Method::GET, "/api/v1/sockets", None)
        .await;
    assert_eq!(status, 200, "{sockets}");
    sockets
        .as_array()
        .expect("socket list")
        .iter()
        .find(|s| s["protocol"] == "socketio")
        .and_then(|s| s["user"].as_str())
        .unwrap_or_else(|| panic!("no Socket.IO socket in {sockets}"))
        .to_owned()
}
