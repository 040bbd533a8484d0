//! The Engine.IO server: HTTP long-polling and WebSocket transports over
//! hyper, driving [`Session`]s.
//!
//! [`Engine::handle`] answers any request under the configured path; mount
//! it in a hyper service or an axum fallback. The layer above implements
//! [`Handler`] and gets each session as an [`EngineSocket`] carrying its own
//! per-connection data.
//!
//! Timers: one sweep task per engine walks the sessions at a tick derived from
//! the shortest configured deadline (1 s with defaults) and sends pings,
//! enforces pong and upgrade deadlines and the layer above's deadline. A
//! connection has no timer of its own. Requests also check their session's
//! deadlines as they arrive, so a late poll never revives a dead session.
//!
//! Tasks: a WebSocket session's task parks when the session is quiet and
//! its next event starts a new one (see
//! [`EngineConfig::park_idle_after`]), so idle connections hold
//! their session and socket but no runtime task.

mod config;
mod cors;
mod error;
mod polling;
mod sid;
mod socket;
mod sweep;
mod websocket;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use switchboard_wire::handshake::server::is_upgrade_request;
use switchboard_wire::io::detached::LazyWatcher;

pub use config::{Cors, EngineConfig};
pub use error::RequestError;
pub use sid::Sid;
use sid::{ById, Sessions};
pub use socket::EngineSocket;
use socket::Restart;

use crate::session::{CloseReason, Inbound, Session, SessionConfig, Transport};
use crate::stamp::Stamp;

/// Response body type of [`Engine::handle`].
pub type Body = Full<Bytes>;

/// The layer above Engine.IO (Socket.IO, or an application).
///
/// Callbacks run on the task that received the data; they must not block.
/// They are never called with a session lock held, so they may send on any
/// socket.
pub trait Handler: Send + Sync + 'static {
    /// Per-connection data of the layer above.
    type Data: Send + Sync + 'static;

    /// A handshake was accepted; returns the new session's data. The request
    /// head (path, query, headers) is only available here.
    fn data(&self, req: &http::request::Parts) -> Self::Data;

    /// The session is open (its `open` packet is queued).
    fn on_open(&self, socket: &Arc<EngineSocket<Self::Data>>);

    /// A message arrived.
    fn on_message(&self, socket: &Arc<EngineSocket<Self::Data>>, message: Inbound);

    /// The deadline set with [`EngineSocket::set_deadline`] passed.
    fn on_deadline(&self, socket: &Arc<EngineSocket<Self::Data>>) {
        let _ = socket;
    }

    /// The session ended; called once.
    fn on_close(&self, socket: &Arc<EngineSocket<Self::Data>>, reason: CloseReason);

    /// Called once per heartbeat sweep (a twentieth of the shortest of the
    /// ping interval, ping timeout and upgrade timeout, at most a second),
    /// after the sessions' timers: for the layer above's own housekeeping.
    /// Must be quick.
    fn on_sweep(&self) {}
}

/// An Engine.IO server. Cheap to clone.
pub struct Engine<H: Handler> {
    shared: Arc<Shared<H>>,
}

impl<H: Handler> Clone for Engine<H> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<H: Handler> std::fmt::Debug for Engine<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.shared.config.path)
            .field("sessions", &self.shared.sessions().len())
            .finish()
    }
}

pub(crate) struct Shared<H: Handler> {
    pub(crate) config: EngineConfig,
    /// `config.session`, shared by every session.
    session: Arc<SessionConfig>,
    pub(crate) handler: H,
    sessions: Mutex<Sessions<H::Data>>,
    /// The runtime the sweep runs on; parked WebSocket tasks start there
    /// again.
    runtime: OnceLock<tokio::runtime::Handle>,
    /// Watches the sockets of parked WebSocket sessions.
    pub(crate) watcher: LazyWatcher,
    /// Sweeps so far (wrapping): WebSocket tasks note it as they run, so the
    /// sweep can tell which have been quiet.
    tick: AtomicU32,
    /// Parked WebSocket tasks spawned again (see [`Engine::resume_count`]).
    pub(crate) resumes: AtomicU64,
    /// Spawns a parked session's task again; every session points to it.
    restart: Arc<Restart<H::Data>>,
}

impl<H: Handler> Engine<H> {
    /// A server with `config`, delivering to `handler`.
    pub fn new(handler: H, config: EngineConfig) -> Self {
        Self {
            shared: Arc::new_cyclic(|shared: &Weak<Shared<H>>| {
                // Weak: sessions outlive the engine only to be closed.
                let shared = shared.clone();
                Shared {
                    session: Arc::new(config.session),
                    config,
                    handler,
                    sessions: Mutex::default(),
                    runtime: OnceLock::new(),
                    watcher: LazyWatcher::new(),
                    tick: AtomicU32::new(0),
                    resumes: AtomicU64::new(0),
                    restart: Arc::new(Restart::new(move |socket| {
                        if let Some(shared) = shared.upgrade() {
                            websocket::restart(&shared, socket);
                        }
                    })),
                }
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.shared.handler
    }

    /// Whether `path` is under this server's path.
    pub fn matches(&self, path: &str) -> bool {
        let p = &self.shared.config.path;
        path == &p[..p.len() - 1] || path.starts_with(p.as_str())
    }

    /// Live sessions.
    pub fn session_count(&self) -> usize {
        self.shared.sessions().len()
    }

    /// Sockets of parked WebSocket sessions that left the runtime's
    /// reactor for the engine's watcher
    /// ([`switchboard_wire::io::detached`]): plain TCP ones, once parked.
    pub fn detached_count(&self) -> usize {
        self.shared.watcher.len()
    }

    /// WebSocket sessions whose task is parked: quiet for
    /// [`EngineConfig::park_idle_after`], they hold no runtime task until
    /// their next event.
    pub fn parked_count(&self) -> usize {
        self.shared
            .sessions()
            .iter()
            .map(|s| &s.0)
            .filter(|s| s.task.is_parked() && s.transport() == Transport::WebSocket)
            .count()
    }

    /// Times a parked WebSocket session's task was spawned again, for a
    /// frame, a queued packet, a close, or to be woken by the sweep. A ping
    /// due on a parked session is written by the sweep itself, so a quiet
    /// session's heartbeat costs one spawn per cycle (for its pong).
    pub fn resume_count(&self) -> u64 {
        self.shared.resumes.load(Ordering::Relaxed)
    }

    /// A live session by id.
    pub fn session(&self, sid: &str) -> Option<Arc<EngineSocket<H::Data>>> {
        self.shared.sessions().get(sid).map(|s| s.0.clone())
    }

    /// Answers one HTTP request under the path: a handshake, a poll, a
    /// POST of packets, a WebSocket upgrade or a CORS preflight.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.shared.start_sweeper();
        let shared = &self.shared;
        let config = &shared.config;
        if !cors::origin_allowed(config, req.headers()) {
            return RequestError::Forbidden.response();
        }
        if req.method() == Method::OPTIONS {
            let mut res = Response::new(Body::default());
            *res.status_mut() = StatusCode::NO_CONTENT;
            cors::preflight(config, req.headers(), res.headers_mut());
            return res;
        }
        let origin = req.headers().get(header::ORIGIN).cloned();
        let q = Query::parse(req.uri().query().unwrap_or(""));
        let mut res = match self.route(req, q).await {
            Ok(res) => res,
            Err(e) => e.response(),
        };
        if res.status() != StatusCode::SWITCHING_PROTOCOLS {
            cors::apply(config, origin.as_ref(), res.headers_mut());
        }
        res
    }

    async fn route<B>(&self, req: Request<B>, q: Query) -> Result<Response<Body>, RequestError>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let shared = &self.shared;
        let config = &shared.config;
        let transport = match q.transport.as_deref() {
            Some("polling") if config.polling => Transport::Polling,
            Some("websocket") if config.websocket => Transport::WebSocket,
            _ => return Err(RequestError::UnknownTransport),
        };
        let upgrade = is_upgrade_request(req.headers());
        if let Some(sid) = &q.sid {
            let socket = shared
                .sessions()
                .get(sid.as_str())
                .map(|s| s.0.clone())
                .ok_or(RequestError::UnknownSid)?;
            return match transport {
                Transport::Polling => polling::request(shared, socket, req).await,
                Transport::WebSocket if upgrade && config.session.allow_upgrades => {
                    websocket::upgrade(shared, socket, req)
                }
                Transport::WebSocket => Err(RequestError::BadRequest),
            };
        }
        if req.method() != Method::GET {
            return Err(RequestError::BadHandshakeMethod);
        }
        if q.eio.as_deref() != Some("4") {
            return Err(RequestError::UnsupportedProtocolVersion);
        }
        match transport {
            Transport::Polling => Ok(polling::handshake(shared, req)),
            Transport::WebSocket if upgrade => websocket::handshake(shared, req),
            Transport::WebSocket => Err(RequestError::BadRequest),
        }
    }
}

impl<H: Handler> Shared<H> {
    pub(crate) fn sessions(&self) -> MutexGuard<'_, Sessions<H::Data>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn start_sweeper(self: &Arc<Self>) {
        self.runtime.get_or_init(|| {
            tokio::spawn(sweep::run(Arc::downgrade(self)));
            tokio::runtime::Handle::current()
        });
    }

    /// Creates a session and announces it to the handler.
    pub(crate) fn open(&self, data: H::Data, transport: Transport) -> Arc<EngineSocket<H::Data>> {
        let sid = Sid::random();
        let session = Session::open(&sid, transport, self.session.clone(), Instant::now());
        let socket = Arc::new(EngineSocket::new(
            sid,
            session,
            transport == Transport::WebSocket,
            self.restart.clone(),
            data,
        ));
        self.sessions().insert(ById(socket.clone()));
        self.handler.on_open(&socket);
        socket
    }

    /// Runs due timers of one session (requests call this as they arrive).
    pub(crate) fn catch_up(&self, socket: &Arc<EngineSocket<H::Data>>) {
        let now = Instant::now();
        let mut st = socket.lock();
        if st.session.poll_timeout().is_some_and(|t| t <= now) {
            st.session.handle_timeout(now);
        }
    }

    /// Delivers inbound messages to the handler, then reaps the session if
    /// it ended.
    pub(crate) fn deliver(&self, socket: &Arc<EngineSocket<H::Data>>, inbound: Vec<Inbound>) {
        for m in inbound {
            self.handler.on_message(socket, m);
        }
        self.reap(socket);
    }

    /// If the session ended: tells the handler (once) and removes it from the
    /// table once nothing is left for a client to fetch.
    pub(crate) fn reap(&self, socket: &Arc<EngineSocket<H::Data>>) {
        let now = Instant::now();
        let (report, remove, tap) = {
            let mut st = socket.lock();
            let Some(reason) = st.session.closed() else {
                return;
            };
            let report = (!st.reported).then_some(reason);
            let tap = report.and_then(|_| st.session.tap().cloned());
            if report.is_some() {
                // A deadline of the layer above means nothing any more; the
                // timer becomes the close grace period.
                st.timer = None;
            }
            st.reported = true;
            // Only a server close leaves packets for a later GET; after the
            // client's `close` the queued `noop` is for a GET already waiting.
            let pending = reason == CloseReason::ServerClose
                && st.session.transport() == Transport::Polling
                && st.session.has_poll_output()
                && st.timer.is_none_or(|g| now < g.instant());
            if pending && st.timer.is_none() {
                st.timer = Some(Stamp::of(now + self.config.close_grace));
            }
            (report, !pending, tap)
        };
        if remove {
            let mut sessions = self.sessions();
            if sessions
                .get(socket.id())
                .is_some_and(|s| Arc::ptr_eq(&s.0, socket))
            {
                sessions.remove(socket.id());
                // After a wave of disconnects the table gives its spare room
                // back.
                let (len, capacity) = (sessions.len(), sessions.capacity());
                if let Some(to) = switchboard_wire::io::shrunk_capacity(len, capacity) {
                    sessions.shrink_to(to);
                }
            }
        }
        socket.wake();
        if let Some(reason) = report {
            if let Some(tap) = tap {
                tap.ended(reason);
            }
            self.handler.on_close(socket, reason);
        }
    }
}

/// The query parameters Engine.IO uses.
#[derive(Debug, Default)]
struct Query {
    eio: Option<String>,
    transport: Option<String>,
    sid: Option<String>,
}

impl Query {
    fn parse(q: &str) -> Self {
        let mut out = Self::default();
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            match &*k {
                "EIO" => out.eio = Some(v.into_owned()),
                "transport" => out.transport = Some(v.into_owned()),
                "sid" => out.sid = Some(v.into_owned()),
                _ => {}
            }
        }
        out
    }
}

/// A 20-character URL-safe random session id (120 bits), as Engine.IO and
/// Socket.IO ids look.
pub fn new_sid() -> Sid {
    Sid::random()
}

/// A plain-text response with status 200.
pub(crate) fn text(body: impl Into<Bytes>, content_type: &'static str) -> Response<Body> {
    let mut res = Response::new(Body::new(body.into()));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    res
}

/// Serves `engine` (and a 404 for other paths) on `listener` with HTTP/1.1
/// and upgrades: a ready-made accept loop for examples and simple servers.
pub async fn serve<H: Handler>(
    engine: Engine<H>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve_connection(engine.clone(), stream));
    }
}

/// Serves one accepted connection (HTTP/1.1 with upgrades) until it closes:
/// `engine` answers its paths, anything else gets a 404. For servers that
/// accept connections themselves.
pub async fn serve_connection<H, I>(engine: Engine<H>, io: I)
where
    H: Handler,
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let engine = engine.clone();
        async move {
            if engine.matches(req.uri().path()) {
                Ok::<_, Infallible>(engine.handle(req).await)
            } else {
                let mut res = Response::new(Body::from("Not found"));
                *res.status_mut() = StatusCode::NOT_FOUND;
                Ok(res)
            }
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .with_upgrades()
        .await;
}
