//! One Engine.IO connection as Socket.IO sees it: its namespace sockets, a
//! binary packet being reassembled, and the packet dispatch.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use http::HeaderMap;
use serde_json::{Value, json};
use switchboard_engine::server::{EngineSocket, Sid};
use switchboard_engine::{CloseReason, Inbound};

use super::Registry;
use super::args::Args;
use super::frames::{self, Frames};
use super::namespace::{AckSender, ConnectError, ConnectRequest, Event, Middleware, NsInner};
use super::one_or_many::OneOrMany;
use super::recovery::Persisted;
use super::socket::{DisconnectReason, Extra, Socket, SocketInner, SocketState};
use crate::packet::{self, Decoded, Packet, PacketKind, Reassembly};

/// Per-connection Socket.IO state (the engine session's data).
#[derive(Debug)]
pub struct Conn {
    state: Mutex<ConnState>,
}

#[derive(Debug)]
struct ConnState {
    /// Most connections use one namespace: it is held in place.
    sockets: OneOrMany<Socket>,
    /// Held for a while only: boxed, and freed once empty (idle connections
    /// hold 8 bytes).
    aside: Option<Box<Aside>>,
    /// Namespace connections waiting for async middlewares.
    connecting: u32,
    /// The connection ended: no socket may be added any more.
    closed: bool,
}

/// What a connection holds for a while only.
#[derive(Debug, Default)]
struct Aside {
    /// A binary packet waiting for its attachments.
    pending: Option<Reassembly>,
    /// The handshake's headers and query, for middlewares; dropped once a
    /// namespace has connected (unless the server keeps them).
    handshake: Option<Arc<Handshake>>,
}

/// The handshake request's headers and query.
type Handshake = (HeaderMap, Box<str>);

impl ConnState {
    fn aside(&mut self) -> &mut Aside {
        self.aside.get_or_insert_with(Box::default)
    }

    /// Frees the box once it holds nothing.
    fn free_aside_if_empty(&mut self) {
        if self
            .aside
            .as_ref()
            .is_some_and(|a| a.pending.is_none() && a.handshake.is_none())
        {
            self.aside = None;
        }
    }

    fn has_pending(&self) -> bool {
        self.aside.as_ref().is_some_and(|a| a.pending.is_some())
    }

    fn set_pending(&mut self, r: Reassembly) {
        self.aside().pending = Some(r);
    }

    fn take_pending(&mut self) -> Option<Reassembly> {
        let r = self.aside.as_mut().and_then(|a| a.pending.take());
        self.free_aside_if_empty();
        r
    }

    fn handshake(&self) -> Option<Arc<Handshake>> {
        self.aside.as_ref().and_then(|a| a.handshake.clone())
    }

    fn forget_handshake(&mut self) {
        if let Some(a) = &mut self.aside {
            a.handshake = None;
        }
        self.free_aside_if_empty();
    }
}

impl Conn {
    pub(crate) fn new(parts: &http::request::Parts) -> Self {
        Self {
            state: Mutex::new(ConnState {
                sockets: OneOrMany::NONE,
                aside: Some(Box::new(Aside {
                    pending: None,
                    handshake: Some(Arc::new((
                        parts.headers.clone(),
                        Box::from(parts.uri.query().unwrap_or("")),
                    ))),
                })),
                connecting: 0,
                closed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn socket(&self, nsp: &str) -> Option<Socket> {
        self.lock().sockets.iter().find(|s| s.ns() == nsp).cloned()
    }

    /// Forgets a socket that left its namespace.
    /// Returns whether this call disconnected it (only one caller wins, so
    /// disconnect handlers run once).
    pub(crate) fn remove(&self, socket: &Socket) -> bool {
        self.lock()
            .sockets
            .remove_where(|s| Arc::ptr_eq(&s.0, &socket.0));
        socket.mark_disconnected()
    }

    /// Whether no namespace is connected or connecting.
    pub(crate) fn idle(&self) -> bool {
        let st = self.lock();
        st.sockets.is_empty() && st.connecting == 0
    }
}

type Engine = Arc<EngineSocket<Conn>>;

/// A message from the engine.
pub(crate) fn on_message(reg: &Arc<Registry>, conn: &Engine, message: Inbound) {
    let decoded = match message {
        Inbound::Message(text) => {
            if conn.data().lock().has_pending() {
                Err(packet::PacketError::ExpectedAttachment)
            } else {
                packet::decode(&text, &reg.config.limits).map(|d| match d {
                    Decoded::Packet(p) => Some(p),
                    Decoded::Binary(r) => {
                        conn.data().lock().set_pending(r);
                        None
                    }
                })
            }
        }
        Inbound::Binary(bytes) => {
            let pending = conn.data().lock().take_pending();
            match pending {
                None => Err(packet::PacketError::UnknownType),
                Some(mut r) => match r.push(bytes) {
                    Ok(Some(p)) => Ok(Some(p)),
                    Ok(None) => {
                        conn.data().lock().set_pending(r);
                        Ok(None)
                    }
                    Err(e) => Err(e),
                },
            }
        }
    };
    match decoded {
        Ok(Some(p)) => dispatch(reg, conn, p),
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(sid = conn.id(), error = %e, "closing: invalid Socket.IO packet");
            conn.abort(CloseReason::TransportError);
        }
    }
}

fn dispatch(reg: &Arc<Registry>, conn: &Engine, p: Packet) {
    match p.kind {
        PacketKind::Connect => connect(reg, conn, p),
        PacketKind::Disconnect => {
            if let Some(s) = conn.data().socket(&p.nsp)
                && conn.data().remove(&s)
            {
                s.0.ns
                    .on_disconnect(&s, DisconnectReason::ClientNamespaceDisconnect);
            }
        }
        PacketKind::Event => {
            let Some(socket) = conn.data().socket(&p.nsp) else {
                return;
            };
            let Some(Value::Array(mut values)) = p.data else {
                return;
            };
            let name = match values.remove(0) {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let handlers = &socket.0.ns.handlers;
            let Some(f) = handlers.events.get(&name).or(handlers.fallback.as_ref()) else {
                return;
            };
            let ack = p.id.map(|id| AckSender {
                socket: socket.clone(),
                id,
            });
            let args = Args {
                values,
                binary: p.attachments,
            };
            f(&socket, Event { name, args, ack });
        }
        PacketKind::Ack => {
            let (Some(socket), Some(id)) = (conn.data().socket(&p.nsp), p.id) else {
                return;
            };
            let values = match p.data {
                Some(Value::Array(v)) => v,
                _ => Vec::new(),
            };
            socket.on_ack(
                id,
                Args {
                    values,
                    binary: p.attachments,
                },
            );
        }
        PacketKind::ConnectError => conn.abort(CloseReason::TransportError),
    }
}

fn refuse(conn: &Engine, nsp: &str, err: &ConnectError) {
    let packet = frames::control(PacketKind::ConnectError, nsp, Some(err.to_json()));
    conn.send_encoded(Frames::encode(&packet).messages());
}

fn connect(reg: &Arc<Registry>, conn: &Engine, p: Packet) {
    if conn.data().socket(&p.nsp).is_some() {
        return;
    }
    let Some(ns) = reg.namespace(&p.nsp) else {
        refuse(conn, &p.nsp, &ConnectError::new("Invalid namespace"));
        return;
    };
    let auth = p.data.unwrap_or_else(|| json!({}));
    let restored = match (&ns.recovery, auth.get("pid"), auth.get("offset")) {
        (Some(rec), Some(Value::String(pid)), Some(Value::String(offset))) => {
            rec.take(pid).map(|s| (s, offset.clone()))
        }
        _ => None,
    };
    let handshake = conn.data().lock().handshake();
    let req = ConnectRequest {
        nsp: ns.name.clone(),
        auth,
        handshake,
        data: Mutex::default(),
    };
    let skip = restored.is_some()
        && ns
            .recovery
            .as_ref()
            .is_some_and(|r| r.config.skip_middlewares);
    let middlewares = if skip {
        &[][..]
    } else {
        &ns.handlers.middlewares[..]
    };
    if middlewares.iter().all(|m| matches!(m, Middleware::Sync(_))) {
        for m in middlewares {
            if let Middleware::Sync(f) = m
                && let Err(e) = f(&req)
            {
                refuse(conn, &ns.name, &e);
                return;
            }
        }
        finish(reg, conn, &ns, req, restored);
        return;
    }
    conn.data().lock().connecting += 1;
    let (reg, conn) = (reg.clone(), conn.clone());
    let req = Arc::new(req);
    tokio::spawn(async move {
        let mut result = Ok(());
        for m in &ns.handlers.middlewares {
            result = match m {
                Middleware::Sync(f) => f(&req),
                Middleware::Async(f) => f(req.clone()).await,
            };
            if result.is_err() {
                break;
            }
        }
        conn.data().lock().connecting -= 1;
        if conn.closed().is_some() {
            return;
        }
        match result {
            Err(e) => refuse(&conn, &ns.name, &e),
            Ok(()) => {
                let req = Arc::try_unwrap(req).unwrap_or_else(|r| ConnectRequest {
                    nsp: r.nsp.clone(),
                    auth: r.auth.clone(),
                    handshake: r.handshake.clone(),
                    data: Mutex::new(r.data.lock().unwrap_or_else(|e| e.into_inner()).clone()),
                });
                finish(&reg, &conn, &ns, req, restored);
            }
        }
    });
}

type Restored = Option<(Persisted, String)>;

/// Creates the socket, replays what it missed, and sends the CONNECT reply.
fn finish(
    reg: &Arc<Registry>,
    conn: &Engine,
    ns: &Arc<NsInner>,
    req: ConnectRequest,
    restored: Restored,
) {
    let data = req.data.into_inner().unwrap_or_else(|e| e.into_inner());
    let extra = Extra::for_auth(req.auth);
    let attach = |missed: Option<Vec<Frames>>| {
        // With a replay the socket gets its previous id, rooms and data back;
        // without one (no session, or the log no longer holds everything it
        // missed) it starts afresh.
        let (id, rooms, data, recovered) = match (missed.is_some(), restored.as_ref()) {
            (true, Some((session, _))) => (
                // Ids this server gave out: always of the shape.
                Sid::parse(&session.sid).unwrap_or_else(Sid::random),
                session.rooms.clone(),
                session.data.clone().or(data),
                true,
            ),
            _ => (Sid::random(), Vec::new(), data, false),
        };
        let socket = Socket(Arc::new(SocketInner {
            id,
            ns: ns.clone(),
            conn: conn.clone(),
            extra,
            connected: AtomicBool::new(true),
            recovered,
            state: Mutex::new(SocketState {
                data,
                ..Default::default()
            }),
        }));
        {
            let mut st = conn.data().lock();
            if st.closed {
                // The connection ended while this socket was being set up.
                return None;
            }
            st.sockets.push(socket.clone());
            if !reg.config.keep_headers {
                st.forget_handshake();
            }
        }
        ns.add_socket(&socket);
        for room in &rooms {
            socket.join(room);
        }
        let mut frames: Vec<_> = missed.iter().flatten().flat_map(Frames::messages).collect();
        let reply = match &ns.recovery {
            Some(rec) => json!({"sid": socket.0.id.as_str(), "pid": rec.pid(&socket.0.id)}),
            None => json!({"sid": socket.0.id.as_str()}),
        };
        let packet = frames::control(PacketKind::Connect, &ns.name, Some(reply));
        frames.extend(Frames::encode(&packet).messages());
        conn.send_encoded(frames);
        Some(socket)
    };
    let socket = match &ns.recovery {
        Some(rec) => rec.locked(restored.as_ref().map(|(s, o)| (s, o.as_str())), attach),
        None => attach(None),
    };
    let Some(socket) = socket else {
        return;
    };
    conn.set_deadline(None);
    if let Some(f) = &ns.handlers.on_connect {
        f(&socket);
    }
}

/// The connection ended: every socket leaves, and with recovery on, keeps
/// its session for a reconnect.
pub(crate) fn on_close(conn: &Engine, reason: CloseReason) {
    let reason = match reason {
        CloseReason::PingTimeout => DisconnectReason::PingTimeout,
        CloseReason::TransportError | CloseReason::Overflow => DisconnectReason::TransportError,
        CloseReason::ServerClose => DisconnectReason::ForcedServerClose,
        _ => DisconnectReason::TransportClose,
    };
    let sockets = {
        let mut st = conn.data().lock();
        st.aside = None;
        st.closed = true;
        std::mem::take(&mut st.sockets)
    };
    for s in sockets {
        let (rooms, data) = {
            let st = s.lock();
            (st.rooms.to_vec(), st.data.clone())
        };
        if !s.mark_disconnected() {
            continue;
        }
        if let Some(rec) = &s.0.ns.recovery
            && reason.recoverable()
        {
            rec.persist(Persisted {
                sid: Arc::from(s.0.id.as_str()),
                rooms,
                at: Instant::now(),
                data,
            });
        }
        s.0.ns.on_disconnect(&s, reason);
    }
}
