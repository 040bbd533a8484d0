//! Integration tests of the Engine.IO server over real sockets: HTTP
//! long-polling through hyper's client, WebSocket through switchboard-wire's
//! client. The cases mirror the official Engine.IO v4 protocol test suite
//! (`docs/engine.io-protocol/v4-test-suite` in socketio/socket.io).
//!
//! Each test starts its own echo server on 127.0.0.1:0. Tests that are not
//! about the heartbeat use a long ping interval so that no `2` packet can
//! slip into a payload on a slow machine; the heartbeat tests use the
//! suite's 300 ms / 200 ms. Nothing is asserted on elapsed time: waits are
//! on events (the handler reports every open and close) under a generous
//! upper bound that only turns a hang into a failure.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use switchboard_engine::server::{Cors, Engine, EngineConfig, EngineSocket, Handler, serve};
use switchboard_engine::{CloseReason, Inbound, Packet};
use switchboard_wire::io::{ConnectOptions, MaybeTlsStream, WebSocket, connect};
use switchboard_wire::{Error as WsError, Message};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Upper bound on any wait: a hang becomes a failure, never a pass.
const LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The server side: an echo handler that reports opens and closes.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Open(String),
    Close(String, CloseReason),
}

struct Echo {
    events: mpsc::UnboundedSender<Event>,
}

impl Handler for Echo {
    type Data = ();

    fn data(&self, _req: &http::request::Parts) {}

    fn on_open(&self, socket: &Arc<EngineSocket<()>>) {
        let _ = self.events.send(Event::Open(socket.id().to_owned()));
    }

    fn on_message(&self, socket: &Arc<EngineSocket<()>>, message: Inbound) {
        socket.send(&match message {
            Inbound::Message(text) => Packet::Message(text),
            Inbound::Binary(bytes) => Packet::Binary(bytes),
        });
    }

    fn on_close(&self, socket: &Arc<EngineSocket<()>>, reason: CloseReason) {
        let _ = self
            .events
            .send(Event::Close(socket.id().to_owned(), reason));
    }
}

struct Server {
    addr: SocketAddr,
    engine: Engine<Echo>,
    events: mpsc::UnboundedReceiver<Event>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    async fn start(config: EngineConfig) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let engine = Engine::new(Echo { events: tx }, config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(serve(engine.clone(), listener));
        Self {
            addr,
            engine,
            events,
            task,
        }
    }

    /// Waits for the close of session `sid` and returns its reason.
    async fn closed(&mut self, sid: &str) -> CloseReason {
        within(async {
            loop {
                match self.events.recv().await.expect("event channel open") {
                    Event::Close(s, reason) if s == sid => return reason,
                    _ => {}
                }
            }
        })
        .await
    }

    /// Waits until the session has a GET parked on it.
    ///
    /// The engine exposes no accessor for this, so the session's `Debug`
    /// output (the derived form of its state) is polled. This only orders
    /// the test's requests; nothing is asserted on it.
    async fn get_waiting(&self, sid: &str) {
        within(async {
            loop {
                let waiting = self
                    .engine
                    .session(sid)
                    .is_some_and(|s| format!("{s:?}").contains("get_waiting: true"));
                if waiting {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }

    fn polling(&self, sid: &str) -> String {
        format!("/engine.io/?EIO=4&transport=polling&sid={sid}")
    }

    fn ws_url(&self, sid: Option<&str>) -> String {
        match sid {
            Some(sid) => format!(
                "ws://{}/engine.io/?EIO=4&transport=websocket&sid={sid}",
                self.addr
            ),
            None => format!("ws://{}/engine.io/?EIO=4&transport=websocket", self.addr),
        }
    }

    /// A polling GET on its own task, to be awaited (or dropped) later.
    fn spawn_get(&self, sid: &str) -> JoinHandle<Reply> {
        let (addr, path) = (self.addr, self.polling(sid));
        tokio::spawn(async move {
            request(addr, Method::GET, &path, &[], Full::new(Bytes::new())).await
        })
    }

    async fn get(&self, path: &str) -> Reply {
        request(self.addr, Method::GET, path, &[], Full::new(Bytes::new())).await
    }

    async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        request(self.addr, Method::POST, path, &[], Full::new(body.into())).await
    }

    /// A polling handshake: the session id and the `open` packet's JSON.
    async fn handshake(&self) -> (String, Value) {
        let reply = self.get("/engine.io/?EIO=4&transport=polling").await;
        assert_eq!(reply.status, StatusCode::OK, "handshake: {}", reply.body);
        let open = reply
            .body
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("not an open packet: {:?}", reply.body));
        let open: Value = serde_json::from_str(open).unwrap();
        let sid = open["sid"].as_str().expect("sid is a string").to_owned();
        (sid, open)
    }

    async fn ws(&self, sid: Option<&str>) -> WebSocket<MaybeTlsStream> {
        let (ws, _) = within(connect(&self.ws_url(sid), &ConnectOptions::default()))
            .await
            .expect("WebSocket handshake accepted");
        ws
    }
}

/// The official suite's server settings (`engineio-test-server`).
fn suite_config() -> EngineConfig {
    EngineConfig::default()
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(200))
        .max_payload(1_000_000)
        .cors(Cors::Any)
}

/// The suite's settings without heartbeat traffic during a test.
fn quiet_config() -> EngineConfig {
    suite_config()
        .ping_interval(Duration::from_secs(60))
        .ping_timeout(Duration::from_secs(60))
}

async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("timed out waiting")
}

// ---------------------------------------------------------------------------
// The client side.

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    /// Asserts an error answer: `status` and `{"code":…,"message":…}`.
    #[track_caller]
    fn assert_error(&self, status: StatusCode, code: u8, message: &str) {
        assert_eq!(self.status, status, "body: {}", self.body);
        assert_eq!(self.json(), json!({ "code": code, "message": message }));
    }
}

/// Aborts the connection task when the request is dropped, so an abandoned
/// request closes its TCP connection.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One request on a fresh HTTP/1.1 connection (requests may run
/// concurrently, as a polling client's GET and POST do).
async fn request<B>(
    addr: SocketAddr,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: B,
) -> Reply
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender.send_request(req.body(body).unwrap()).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

/// A request body of unknown length (sent chunked, no `Content-Length`).
struct Chunked(Option<Bytes>);

impl http_body::Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }
}

/// The next text message; binary or the end of the connection fails.
async fn recv_text(ws: &mut WebSocket<MaybeTlsStream>) -> String {
    match within(ws.recv()).await {
        Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

async fn send_text(ws: &mut WebSocket<MaybeTlsStream>, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

/// Asserts the connection ends without delivering another message, and
/// returns how it ended (`None`: close handshake, `Some`: dropped).
async fn ws_ends(ws: &mut WebSocket<MaybeTlsStream>) -> Option<WsError> {
    let mut error = None;
    loop {
        match within(ws.recv()).await {
            None => return error,
            Some(Ok(m)) => panic!("expected the connection to end, got {m:?}"),
            Some(Err(e)) => error = Some(e),
        }
    }
}

// ---------------------------------------------------------------------------
// Handshake and request errors.

#[tokio::test]
async fn polling_handshake_sends_the_open_packet() {
    let server = Server::start(suite_config()).await;
    let reply = server.get("/engine.io/?EIO=4&transport=polling").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "text/plain; charset=UTF-8"
    );
    let open: Value = serde_json::from_str(reply.body.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap();
    assert_eq!(sid.len(), 20, "sid {sid:?}");
    assert_eq!(open["upgrades"], json!(["websocket"]));
    assert_eq!(open["pingInterval"], json!(300));
    assert_eq!(open["pingTimeout"], json!(200));
    assert_eq!(open["maxPayload"], json!(1_000_000));
    assert!(server.engine.session(sid).is_some());

    // A second handshake is a different session.
    let (other, _) = server.handshake().await;
    assert_ne!(other, sid);
    assert_eq!(server.engine.session_count(), 2);
}

#[tokio::test]
async fn missing_protocol_version_is_refused() {
    let server = Server::start(suite_config()).await;
    let reply = server.get("/engine.io/?transport=polling").await;
    reply.assert_error(StatusCode::BAD_REQUEST, 5, "Unsupported protocol version");
    assert_eq!(
        reply.headers[header::CONTENT_TYPE],
        "application/json",
        "error bodies are JSON"
    );
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn protocol_version_3_is_refused() {
    let server = Server::start(suite_config()).await;
    let reply = server.get("/engine.io/?EIO=3&transport=polling").await;
    reply.assert_error(StatusCode::BAD_REQUEST, 5, "Unsupported protocol version");
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn unknown_transport_is_refused() {
    let server = Server::start(suite_config()).await;
    let reply = server.get("/engine.io/?EIO=4&transport=abc").await;
    reply.assert_error(StatusCode::BAD_REQUEST, 0, "Transport unknown");
    let reply = server.get("/engine.io/?EIO=4").await;
    reply.assert_error(StatusCode::BAD_REQUEST, 0, "Transport unknown");
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn unknown_sid_is_refused() {
    let server = Server::start(suite_config()).await;
    let reply = server.get(&server.polling("abc")).await;
    reply.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
    let reply = server.post(&server.polling("abc"), "4hello").await;
    reply.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
}

#[tokio::test]
async fn post_handshake_is_refused() {
    let server = Server::start(suite_config()).await;
    let reply = server
        .post("/engine.io/?EIO=4&transport=polling", "4hello")
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, 2, "Bad handshake method");
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn other_paths_are_not_found() {
    let server = Server::start(suite_config()).await;
    let reply = server.get("/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(server.engine.session_count(), 0);
}

// ---------------------------------------------------------------------------
// Polling.

#[tokio::test]
async fn polling_echoes_text_and_binary() {
    let server = Server::start(quiet_config()).await;
    let (sid, _) = server.handshake().await;
    let reply = server
        .post(&server.polling(&sid), "4hello\x1ebAQIDBA==")
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok");

    let reply = server.get(&server.polling(&sid)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "4hello\x1ebAQIDBA==");
}

#[tokio::test]
async fn waiting_get_is_answered_by_a_later_post() {
    let server = Server::start(quiet_config()).await;
    let (sid, _) = server.handshake().await;
    let get = server.spawn_get(&sid);
    server.get_waiting(&sid).await;
    let reply = server.post(&server.polling(&sid), "4late").await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = within(get).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "4late");
}

#[tokio::test]
async fn concurrent_get_closes_the_session() {
    let mut server = Server::start(quiet_config()).await;
    let (sid, _) = server.handshake().await;
    let first = server.spawn_get(&sid);
    server.get_waiting(&sid).await;

    let second = server.get(&server.polling(&sid)).await;
    assert_eq!(second.status, StatusCode::BAD_REQUEST);

    let first = within(first).await.unwrap();
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body, "1", "the waiting GET gets the close packet");

    let third = server.get(&server.polling(&sid)).await;
    third.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
    assert_eq!(server.closed(&sid).await, CloseReason::ServerClose);
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn abandoned_get_closes_the_session() {
    let mut server = Server::start(quiet_config()).await;
    let (sid, _) = server.handshake().await;
    let get = server.spawn_get(&sid);
    server.get_waiting(&sid).await;
    // Dropping the request drops its connection: the client went away.
    get.abort();
    assert!(get.await.unwrap_err().is_cancelled());

    assert_eq!(server.closed(&sid).await, CloseReason::TransportClose);
    let reply = server.get(&server.polling(&sid)).await;
    reply.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
}

#[tokio::test]
async fn client_close_packet_ends_a_polling_session() {
    let mut server = Server::start(quiet_config()).await;
    let (sid, _) = server.handshake().await;
    let reply = server.post(&server.polling(&sid), "1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(server.closed(&sid).await, CloseReason::ClientClose);
    let reply = server.get(&server.polling(&sid)).await;
    reply.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
}

#[tokio::test]
async fn client_close_packet_releases_a_waiting_get_with_noop() {
    let mut server = Server::start(quiet_config()).await;
    let (sid, _) = server.handshake().await;
    let get = server.spawn_get(&sid);
    server.get_waiting(&sid).await;
    let reply = server.post(&server.polling(&sid), "1").await;
    assert_eq!(reply.status, StatusCode::OK);
    let released = within(get).await.unwrap();
    assert_eq!(released.status, StatusCode::OK);
    assert_eq!(released.body, "6");
    assert_eq!(server.closed(&sid).await, CloseReason::ClientClose);
    let reply = server.get(&server.polling(&sid)).await;
    reply.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
}

/// Over `maxPayload` with a `Content-Length`: refused before reading.
#[tokio::test]
async fn post_over_max_payload_is_413_and_closes_the_session() {
    let mut server = Server::start(quiet_config().max_payload(1000)).await;
    let (sid, open) = server.handshake().await;
    assert_eq!(open["maxPayload"], json!(1000));
    let body = format!("4{}", "a".repeat(1000));
    let reply = server.post(&server.polling(&sid), body).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(server.closed(&sid).await, CloseReason::TransportError);
    let reply = server.get(&server.polling(&sid)).await;
    reply.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
}

/// Over `maxPayload` without a `Content-Length`: cut off while reading.
#[tokio::test]
async fn chunked_post_over_max_payload_is_413_and_closes_the_session() {
    let mut server = Server::start(quiet_config().max_payload(1000)).await;
    let (sid, _) = server.handshake().await;
    let body = Bytes::from(format!("4{}", "a".repeat(1500)));
    let reply = request(
        server.addr,
        Method::POST,
        &server.polling(&sid),
        &[],
        Chunked(Some(body)),
    )
    .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(server.closed(&sid).await, CloseReason::TransportError);
    let reply = server.get(&server.polling(&sid)).await;
    reply.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
}

#[tokio::test]
async fn post_at_max_payload_is_accepted() {
    let server = Server::start(quiet_config().max_payload(1000)).await;
    let (sid, _) = server.handshake().await;
    let body = format!("4{}", "a".repeat(999));
    let reply = server.post(&server.polling(&sid), body.clone()).await;
    assert_eq!(reply.status, StatusCode::OK);
    let reply = server.get(&server.polling(&sid)).await;
    assert_eq!(reply.body, body);
}

// ---------------------------------------------------------------------------
// Heartbeat.

#[tokio::test]
async fn polling_heartbeat_pings_then_times_out_without_pong() {
    let mut server = Server::start(suite_config()).await;
    let (sid, _) = server.handshake().await;
    let reply = server.get(&server.polling(&sid)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "2", "a ping after pingInterval");

    // No pong: the session ends once pingTimeout passes.
    assert_eq!(server.closed(&sid).await, CloseReason::PingTimeout);
    let reply = server.get(&server.polling(&sid)).await;
    reply.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
    assert_eq!(server.engine.session_count(), 0);
}

#[tokio::test]
async fn polling_pong_keeps_the_session_alive() {
    // A long pingTimeout so that the pong can never be late.
    let server = Server::start(suite_config().ping_timeout(Duration::from_secs(30))).await;
    let (sid, _) = server.handshake().await;
    for _ in 0..2 {
        let reply = server.get(&server.polling(&sid)).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body, "2");
        let reply = server.post(&server.polling(&sid), "3").await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    assert!(server.engine.session(&sid).is_some());
    assert_eq!(server.engine.session(&sid).unwrap().closed(), None);
}

#[tokio::test]
async fn websocket_heartbeat_pings_then_times_out_without_pong() {
    let mut server = Server::start(suite_config()).await;
    let mut ws = server.ws(None).await;
    let open = recv_text(&mut ws).await;
    let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();

    assert_eq!(recv_text(&mut ws).await, "2");
    // No pong: the server drops the connection.
    ws_ends(&mut ws).await;
    assert_eq!(server.closed(&sid).await, CloseReason::PingTimeout);
    assert!(server.engine.session(&sid).is_none());
}

#[tokio::test]
async fn websocket_pong_keeps_the_session_alive() {
    let server = Server::start(suite_config().ping_timeout(Duration::from_secs(30))).await;
    let mut ws = server.ws(None).await;
    let open = recv_text(&mut ws).await;
    assert!(open.starts_with('0'), "{open:?}");
    for _ in 0..2 {
        assert_eq!(recv_text(&mut ws).await, "2");
        send_text(&mut ws, "3").await;
    }
    send_text(&mut ws, "4still here").await;
    assert_eq!(recv_text(&mut ws).await, "4still here");
}

// ---------------------------------------------------------------------------
// Upgrade.

#[tokio::test]
async fn upgrade_from_polling_to_websocket() {
    let mut server = Server::start(quiet_config()).await;
    let (sid, _) = server.handshake().await;

    let get = server.spawn_get(&sid);
    server.get_waiting(&sid).await;

    let mut ws = server.ws(Some(&sid)).await;
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");

    let released = within(get).await.unwrap();
    assert_eq!(released.status, StatusCode::OK);
    assert_eq!(released.body, "6", "the pending GET is released with noop");

    send_text(&mut ws, "5").await;
    send_text(&mut ws, "4hello").await;
    assert_eq!(recv_text(&mut ws).await, "4hello");
    send_text(&mut ws, "4world").await;
    assert_eq!(recv_text(&mut ws).await, "4world");

    // Polling is over for this session.
    let reply = server.get(&server.polling(&sid)).await;
    reply.assert_error(StatusCode::BAD_REQUEST, 3, "Bad request");

    // The session still lives on its WebSocket.
    send_text(&mut ws, "4again").await;
    assert_eq!(recv_text(&mut ws).await, "4again");

    send_text(&mut ws, "1").await;
    assert!(ws_ends(&mut ws).await.is_none(), "closed with a handshake");
    assert_eq!(server.closed(&sid).await, CloseReason::ClientClose);
}

/// Regression: the reference server accepts a second WebSocket for an
/// upgraded session and closes it at once. Refusing the handshake (400)
/// broke the official suite's "ignores WebSocket connection with same sid
/// after upgrade".
#[tokio::test]
async fn second_websocket_with_same_sid_after_upgrade_is_accepted_then_closed() {
    let server = Server::start(quiet_config()).await;
    let (sid, _) = server.handshake().await;
    let mut ws = server.ws(Some(&sid)).await;
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");
    send_text(&mut ws, "5").await;
    send_text(&mut ws, "4hello").await;
    assert_eq!(recv_text(&mut ws).await, "4hello");

    let mut second = server.ws(Some(&sid)).await;
    assert!(
        ws_ends(&mut second).await.is_none(),
        "closed with a close handshake"
    );
    assert!(second.closed_cleanly());

    // The upgraded session is untouched.
    send_text(&mut ws, "4still mine").await;
    assert_eq!(recv_text(&mut ws).await, "4still mine");
    assert!(server.engine.session(&sid).is_some());
}

#[tokio::test]
async fn second_websocket_during_the_probe_is_accepted_then_closed() {
    let server = Server::start(quiet_config()).await;
    let (sid, _) = server.handshake().await;
    let mut ws = server.ws(Some(&sid)).await;
    send_text(&mut ws, "2probe").await;
    assert_eq!(recv_text(&mut ws).await, "3probe");

    let mut second = server.ws(Some(&sid)).await;
    assert!(ws_ends(&mut second).await.is_none());

    // The first one still completes the upgrade.
    send_text(&mut ws, "5").await;
    send_text(&mut ws, "4hello").await;
    assert_eq!(recv_text(&mut ws).await, "4hello");
}

#[tokio::test]
async fn websocket_for_unknown_sid_is_refused() {
    let server = Server::start(quiet_config()).await;
    let r = connect(&server.ws_url(Some("abc")), &ConnectOptions::default()).await;
    assert!(r.is_err(), "handshake must fail");
    // The same request over plain HTTP shows the answer.
    let reply = server
        .get("/engine.io/?EIO=4&transport=websocket&sid=abc")
        .await;
    reply.assert_error(StatusCode::BAD_REQUEST, 1, "Session ID unknown");
}

// ---------------------------------------------------------------------------
// WebSocket sessions.

#[tokio::test]
async fn websocket_session_opens_without_upgrades_and_echoes() {
    let mut server = Server::start(suite_config()).await;
    let mut ws = server.ws(None).await;
    let open = recv_text(&mut ws).await;
    let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], json!(300));
    assert_eq!(open["pingTimeout"], json!(200));
    assert_eq!(open["maxPayload"], json!(1_000_000));
    let sid = open["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        within(server.events.recv()).await,
        Some(Event::Open(sid.clone()))
    );

    send_text(&mut ws, "4hello").await;
    // The heartbeat may interleave: answer pings until the echo arrives.
    let echo = loop {
        match recv_text(&mut ws).await.as_str() {
            "2" => send_text(&mut ws, "3").await,
            other => break other.to_owned(),
        }
    };
    assert_eq!(echo, "4hello");
    ws.send(Message::binary(vec![1u8, 2, 3, 4])).await.unwrap();
    let echo = loop {
        match within(ws.recv()).await {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => send_text(&mut ws, "3").await,
            other => break other,
        }
    };
    match echo {
        Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], &[1, 2, 3, 4]),
        other => panic!("expected the binary echo, got {other:?}"),
    }
}

#[tokio::test]
async fn websocket_invalid_packet_closes_the_connection() {
    let mut server = Server::start(quiet_config()).await;
    let mut ws = server.ws(None).await;
    let open = recv_text(&mut ws).await;
    let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();

    send_text(&mut ws, "abc").await;
    ws_ends(&mut ws).await;
    assert_eq!(server.closed(&sid).await, CloseReason::TransportError);
    assert!(server.engine.session(&sid).is_none());
}

#[tokio::test]
async fn websocket_close_packet_closes_the_connection() {
    let mut server = Server::start(quiet_config()).await;
    let mut ws = server.ws(None).await;
    let open = recv_text(&mut ws).await;
    let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();

    send_text(&mut ws, "1").await;
    assert!(ws_ends(&mut ws).await.is_none(), "closed with a handshake");
    assert!(ws.closed_cleanly());
    assert_eq!(server.closed(&sid).await, CloseReason::ClientClose);
    assert!(server.engine.session(&sid).is_none());
}

#[tokio::test]
async fn websocket_client_going_away_closes_the_session() {
    let mut server = Server::start(quiet_config()).await;
    let mut ws = server.ws(None).await;
    let open = recv_text(&mut ws).await;
    let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();
    drop(ws);
    assert_eq!(server.closed(&sid).await, CloseReason::TransportClose);
    assert!(server.engine.session(&sid).is_none());
}

// ---------------------------------------------------------------------------
// Parked WebSocket sessions: a quiet session's task ends, and every event
// that would have woken it starts a new one.

impl Server {
    /// Waits until `n` WebSocket sessions are parked.
    async fn parked(&self, n: usize) {
        within(async {
            while self.engine.parked_count() != n {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }
}

/// Opens a WebSocket session and returns it with its id.
async fn open_ws(server: &mut Server) -> (WebSocket<MaybeTlsStream>, String) {
    let mut ws = server.ws(None).await;
    let open = recv_text(&mut ws).await;
    let open: Value = serde_json::from_str(open.strip_prefix('0').unwrap()).unwrap();
    let sid = open["sid"].as_str().unwrap().to_owned();
    assert_eq!(
        within(server.events.recv()).await,
        Some(Event::Open(sid.clone()))
    );
    (ws, sid)
}

fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Wake-ups racing with parking, on two worker threads. A plain thread
/// pushes packet `i` to every session, after a pause of 0 to 4 ms (the
/// sweep ticks every 2 ms, so a quiet task parks within a few ms), and waits
/// until every client has got the server's echo of its answer before the
/// next round. Each round thus needs three wake-ups per session (the push
/// from the other thread, the answer from the socket, the echo's write),
/// while tasks park, run or are parking: a single lost wake-up stalls its
/// round and the test times out. Everything arrives in order, and every
/// session parks again at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_ups_racing_with_parking_lose_nothing() {
    const SESSIONS: usize = 8;
    const ROUNDS: usize = 300;
    // Pings only after a minute (none during the test: no ping wakes a
    // stalled session); the short ping timeout makes the sweep tick 2 ms.
    let config = quiet_config()
        .ping_interval(Duration::from_secs(60))
        .ping_timeout(Duration::from_millis(40))
        .park_idle_after(Duration::from_millis(1));
    let mut server = Server::start(config).await;
    let mut clients = Vec::new();
    for _ in 0..SESSIONS {
        clients.push(open_ws(&mut server).await);
    }
    server.parked(SESSIONS).await;
    let sessions: Vec<_> = clients
        .iter()
        .map(|(_, sid)| server.engine.session(sid).unwrap())
        .collect();
    let (echoed, rounds) = std::sync::mpsc::channel::<usize>();
    let pusher = std::thread::spawn(move || {
        for i in 0..ROUNDS {
            std::thread::sleep(Duration::from_millis((i % 5) as u64));
            for s in &sessions {
                s.send(&Packet::Message(format!("push {i}")));
            }
            for _ in 0..SESSIONS {
                let round = rounds
                    .recv_timeout(LIMIT)
                    .expect("a round stalled: a wake-up was lost");
                assert_eq!(round, i);
            }
        }
    });
    let mut tasks = Vec::new();
    for (mut ws, _) in clients {
        let echoed = echoed.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                assert_eq!(recv_text(&mut ws).await, format!("4push {i}"));
                send_text(&mut ws, &format!("4echo {i}")).await;
                assert_eq!(recv_text(&mut ws).await, format!("4echo {i}"));
                echoed.send(i).unwrap();
            }
            ws
        }));
    }
    let mut open = Vec::new();
    for task in tasks {
        open.push(within(task).await.unwrap());
    }
    pusher.join().unwrap();
    // Tasks did park and come back (many times: the count is printed).
    let resumes = server.engine.resume_count();
    eprintln!("resumes: {resumes}");
    assert!(resumes > 2 * SESSIONS as u64, "{resumes}");
    server.parked(SESSIONS).await;
    assert_eq!(server.engine.session_count(), SESSIONS);
}

#[tokio::test]
async fn quiet_websocket_sessions_park_their_task_and_wake_on_every_event() {
    let mut server = Server::start(quiet_config().park_idle_after(Duration::from_millis(20))).await;
    let (mut a, _) = open_ws(&mut server).await;
    server.parked(1).await;
    let tasks = alive_tasks();
    let (mut b, sid_b) = open_ws(&mut server).await;
    let (c, sid_c) = open_ws(&mut server).await;
    let (mut d, sid_d) = open_ws(&mut server).await;
    // A new session parks once its setup is done: sessions hold no task,
    // and their sockets leave the runtime's reactor.
    server.parked(4).await;
    assert_eq!(server.engine.detached_count(), 4);
    // (Waited for: the HTTP connections' tasks end just after the upgrade.)
    within(async {
        while alive_tasks() != tasks {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;

    // A frame from the client: the echo comes back, and the session parks
    // again.
    send_text(&mut a, "4once").await;
    assert_eq!(recv_text(&mut a).await, "4once");
    server.parked(4).await;

    // A busy session keeps its task after a few quick wake-ups, until the
    // sweep finds it quiet (after `park_idle_after`, 500 ms ticks here).
    for round in 0..10 {
        send_text(&mut a, &format!("4round {round}")).await;
        assert_eq!(recv_text(&mut a).await, format!("4round {round}"));
    }
    assert_eq!(server.engine.parked_count(), 3, "the busy session runs");
    assert_eq!(
        server.engine.detached_count(),
        3,
        "in the runtime's reactor"
    );
    server.parked(4).await;
    assert_eq!(server.engine.detached_count(), 4);

    // A packet queued by the server (`send` only wakes the task).
    server
        .engine
        .session(&sid_b)
        .unwrap()
        .send(&Packet::Message("pushed".into()));
    assert_eq!(recv_text(&mut b).await, "4pushed");
    server.parked(4).await;

    // The client goes away: the parked session sees the socket end.
    drop(c);
    assert_eq!(server.closed(&sid_c).await, CloseReason::TransportClose);
    assert!(server.engine.session(&sid_c).is_none());
    server.parked(3).await;
    assert_eq!(
        server.engine.detached_count(),
        3,
        "a closed socket is unwatched"
    );

    // The server closes a parked session: `close`, then the close handshake.
    server.engine.session(&sid_d).unwrap().close();
    assert_eq!(recv_text(&mut d).await, "1");
    assert!(ws_ends(&mut d).await.is_none(), "closed with a handshake");
    assert_eq!(server.closed(&sid_d).await, CloseReason::ServerClose);
    server.parked(2).await;

    // Still answering after all that.
    send_text(&mut b, "4still here").await;
    assert_eq!(recv_text(&mut b).await, "4still here");
}

#[tokio::test]
async fn parked_websocket_session_keeps_its_heartbeat() {
    // Pings every 300 ms; the session parks between them.
    let mut server = Server::start(
        suite_config()
            .ping_timeout(Duration::from_secs(30))
            .park_idle_after(Duration::from_millis(1)),
    )
    .await;
    let (mut ws, sid) = open_ws(&mut server).await;
    server.parked(1).await;
    let resumed = server.engine.resume_count();
    for _ in 0..3 {
        assert_eq!(recv_text(&mut ws).await, "2");
        send_text(&mut ws, "3").await;
    }
    // Each pong spawns the task again (to read it); each ping is written by
    // the sweep, with no task.
    within(async {
        while server.engine.resume_count() < resumed + 3 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    assert_eq!(recv_text(&mut ws).await, "2");
    assert_eq!(server.engine.resume_count(), resumed + 3);
    server.parked(1).await;
    assert_eq!(server.engine.session(&sid).unwrap().closed(), None);

    // Without a pong the parked session is declared dead.
    let mut server = Server::start(suite_config().park_idle_after(Duration::from_millis(1))).await;
    let (mut ws, sid) = open_ws(&mut server).await;
    server.parked(1).await;
    assert_eq!(recv_text(&mut ws).await, "2");
    ws_ends(&mut ws).await;
    assert_eq!(server.closed(&sid).await, CloseReason::PingTimeout);
}

#[tokio::test]
async fn websocket_without_upgrade_headers_is_refused() {
    let server = Server::start(quiet_config()).await;
    let reply = server.get("/engine.io/?EIO=4&transport=websocket").await;
    reply.assert_error(StatusCode::BAD_REQUEST, 3, "Bad request");
    assert_eq!(server.engine.session_count(), 0);
}

// ---------------------------------------------------------------------------
// CORS and origins.

#[tokio::test]
async fn cors_any_allows_every_origin_on_polling() {
    let server = Server::start(quiet_config()).await;
    let reply = request(
        server.addr,
        Method::GET,
        "/engine.io/?EIO=4&transport=polling",
        &[("origin", "http://anywhere.example")],
        Full::new(Bytes::new()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");

    // Errors carry the header too, so a browser can read them.
    let reply = server.get("/engine.io/?EIO=3&transport=polling").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
}

#[tokio::test]
async fn cors_preflight_is_204_with_allow_headers() {
    let server = Server::start(quiet_config()).await;
    let reply = request(
        server.addr,
        Method::OPTIONS,
        "/engine.io/?EIO=4&transport=polling",
        &[
            ("origin", "http://anywhere.example"),
            ("access-control-request-headers", "content-type"),
        ],
        Full::new(Bytes::new()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.body, "");
    assert_eq!(reply.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(
        reply.headers[header::ACCESS_CONTROL_ALLOW_METHODS],
        "GET,HEAD,PUT,PATCH,POST,DELETE"
    );
    assert_eq!(
        reply.headers[header::ACCESS_CONTROL_ALLOW_HEADERS],
        "content-type"
    );
    assert_eq!(
        server.engine.session_count(),
        0,
        "a preflight opens nothing"
    );
}

#[tokio::test]
async fn cors_off_sends_no_cors_headers() {
    let server = Server::start(quiet_config().cors(Cors::Off)).await;
    let reply = request(
        server.addr,
        Method::GET,
        "/engine.io/?EIO=4&transport=polling",
        &[("origin", "http://anywhere.example")],
        Full::new(Bytes::new()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        !reply
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[tokio::test]
async fn disallowed_origin_is_forbidden() {
    let server =
        Server::start(quiet_config().allowed_origins(Some(vec!["http://a.example".to_owned()])))
            .await;
    let path = "/engine.io/?EIO=4&transport=polling";
    let reply = request(
        server.addr,
        Method::GET,
        path,
        &[("origin", "http://b.example")],
        Full::new(Bytes::new()),
    )
    .await;
    reply.assert_error(StatusCode::FORBIDDEN, 4, "Forbidden");
    assert_eq!(server.engine.session_count(), 0);

    // `null` (sandboxed documents, file: pages) is not an allowed origin.
    let reply = request(
        server.addr,
        Method::GET,
        path,
        &[("origin", "null")],
        Full::new(Bytes::new()),
    )
    .await;
    reply.assert_error(StatusCode::FORBIDDEN, 4, "Forbidden");

    // A WebSocket from a foreign origin is refused too.
    let options = ConnectOptions::default().header("Origin", "http://b.example");
    assert!(connect(&server.ws_url(None), &options).await.is_err());
    assert_eq!(server.engine.session_count(), 0);

    // The listed origin, and a client sending no Origin, pass.
    let reply = request(
        server.addr,
        Method::GET,
        path,
        &[("origin", "http://a.example")],
        Full::new(Bytes::new()),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.starts_with('0'));
    let reply = server.get(path).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(server.engine.session_count(), 2);
}
