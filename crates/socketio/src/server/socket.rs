//! A client's connection to one namespace.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use once_cell::race::OnceBox;

use serde_json::Value;
use switchboard_engine::Transport;
use switchboard_engine::server::{EngineSocket, Sid};
use tokio::sync::oneshot;

use super::args::Args;
use super::broadcast::Broadcast;
use super::conn::Conn;
use super::frames::{self, Frames};
use super::namespace::NsInner;
use super::one_or_many::OneOrMany;
use crate::packet::PacketKind;

/// Why a socket left its namespace (the reference server's reason strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The connection was closed or lost.
    TransportClose,
    /// The connection broke the protocol.
    TransportError,
    /// No pong within pingTimeout.
    PingTimeout,
    /// The client left the namespace (`socket.disconnect()` on its side).
    ClientNamespaceDisconnect,
    /// The server removed the socket ([`Socket::disconnect`]).
    ServerNamespaceDisconnect,
    /// The server closed the whole connection.
    ForcedServerClose,
    /// The client sent a packet that does not parse.
    ParseError,
    /// The server is shutting down.
    ServerShuttingDown,
}

impl DisconnectReason {
    /// The reason as Socket.IO names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TransportClose => "transport close",
            Self::TransportError => "transport error",
            Self::PingTimeout => "ping timeout",
            Self::ClientNamespaceDisconnect => "client namespace disconnect",
            Self::ServerNamespaceDisconnect => "server namespace disconnect",
            Self::ForcedServerClose => "forced server close",
            Self::ParseError => "parse error",
            Self::ServerShuttingDown => "server shutting down",
        }
    }

    /// Whether connection state recovery keeps the session for a reconnect.
    pub fn recoverable(self) -> bool {
        matches!(
            self,
            Self::TransportClose
                | Self::TransportError
                | Self::PingTimeout
                | Self::ForcedServerClose
                | Self::ServerShuttingDown
        )
    }
}

/// Sending to a socket that has left its namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("socket disconnected")]
pub struct Disconnected;

/// An emit-with-ack that got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// No answer within the timeout.
    #[error("operation has timed out")]
    Timeout,
    /// The socket disconnected first.
    #[error("socket disconnected")]
    Disconnected,
}

/// A client connected to a namespace. Cheap to clone.
#[derive(Clone)]
pub struct Socket(pub(crate) Arc<SocketInner>);

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id())
            .field("nsp", &self.ns())
            .finish()
    }
}

pub(crate) struct SocketInner {
    /// Held in place: 20 bytes instead of a pointer to a heap block.
    pub(crate) id: Sid,
    /// Changed only with `state` locked (a join checks it there), so that
    /// a socket that left its rooms joins none again; read anywhere.
    pub(crate) connected: AtomicBool,
    /// Whether the connection recovered a previous session (set at connect).
    pub(crate) recovered: bool,
    pub(crate) ns: Arc<NsInner>,
    pub(crate) conn: Arc<EngineSocket<Conn>>,
    /// What few sockets have (an auth payload, acks awaited): made at
    /// connect for a non-empty auth, else on the first emit-with-ack; the
    /// usual socket has none (8 bytes).
    pub(crate) extra: OnceBox<Extra>,
    pub(crate) state: Mutex<SocketState>,
}

/// A socket's rarely used parts.
#[derive(Default)]
pub(crate) struct Extra {
    /// The CONNECT packet's auth payload; `None` for the usual `{}`.
    auth: Option<Value>,
    /// Locked with the socket's state held (as `mark_disconnected` does),
    /// or alone.
    acks: Mutex<Option<Acks>>,
}

impl Extra {
    /// A socket's extras at connect: none yet for an empty auth (`{}`).
    pub(crate) fn for_auth(auth: Value) -> OnceBox<Extra> {
        match auth {
            Value::Object(m) if m.is_empty() => OnceBox::new(),
            auth => OnceBox::with_value(Box::new(Extra {
                auth: Some(auth),
                acks: Mutex::default(),
            })),
        }
    }

    fn acks(&self) -> MutexGuard<'_, Option<Acks>> {
        self.acks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Acks {
    /// The waiter of ack `id`, now answered or given up on; the table's
    /// memory goes once none is left.
    fn remove(&mut self, id: u64) -> Option<oneshot::Sender<Args>> {
        let tx = self.waiting.remove(&id);
        if self.waiting.is_empty() {
            self.waiting = HashMap::new();
        }
        tx
    }
}

/// Application data attached to a socket.
pub(crate) type SocketData = Arc<dyn Any + Send + Sync>;

#[derive(Default)]
pub(crate) struct SocketState {
    /// Rooms joined, except the socket's own id (implicit); most sockets
    /// are in one (a relay member's personal room), held in place.
    pub(crate) rooms: OneOrMany<Arc<str>>,
    pub(crate) data: Option<SocketData>,
}

/// The acks this server waits for on one socket, and the id to ask with
/// next: kept once made, so ids keep increasing and a late ack never
/// answers a newer request.
#[derive(Default)]
pub(crate) struct Acks {
    next: u64,
    waiting: HashMap<u64, oneshot::Sender<Args>>,
}

impl Socket {
    pub(crate) fn lock(&self) -> MutexGuard<'_, SocketState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The socket id (distinct from the Engine.IO session id).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The socket id as held, to keep as a key (copied, no allocation).
    pub fn sid(&self) -> Sid {
        self.0.id
    }

    /// The namespace name.
    pub fn ns(&self) -> &str {
        &self.0.ns.name
    }

    /// The socket's namespace (to broadcast to a room, sender included).
    pub fn namespace(&self) -> super::Namespace {
        super::Namespace(self.0.ns.clone())
    }

    /// The CONNECT packet's auth payload (`{}` when none was sent).
    pub fn auth(&self) -> &Value {
        static EMPTY: std::sync::LazyLock<Value> =
            std::sync::LazyLock::new(|| Value::Object(Default::default()));
        self.0
            .extra
            .get()
            .and_then(|x| x.auth.as_ref())
            .unwrap_or(&EMPTY)
    }

    /// The socket id, as a shared string.
    pub fn id_shared(&self) -> Arc<str> {
        Arc::from(self.0.id.as_str())
    }

    /// Whether this connection recovered a previous session's id, rooms and
    /// missed packets.
    pub fn recovered(&self) -> bool {
        self.0.recovered
    }

    /// Whether the socket is still in its namespace.
    pub fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Acquire)
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.0.conn.transport()
    }

    /// The Engine.IO session id of the underlying connection.
    pub fn conn_id(&self) -> &str {
        self.0.conn.id()
    }

    /// Shows every Engine.IO packet of the socket's connection (all its
    /// namespaces) to `tap` from now on, as the WebSocket transport carries
    /// them (`None`: stop); see [`switchboard_engine::Tap`].
    pub fn set_tap(&self, tap: Option<Arc<dyn switchboard_engine::Tap>>) {
        self.0.conn.set_tap(tap);
    }

    /// Sets the socket's application data (like `socket.data` in the
    /// reference server): one value, replacing any previous one. It survives
    /// connection state recovery.
    pub fn set_data<T: Any + Send + Sync>(&self, value: T) {
        self.lock().data = Some(Arc::new(value));
    }

    /// The socket's data, if it is a `T` (set here or by a middleware with
    /// [`ConnectRequest::set_data`](super::ConnectRequest::set_data)).
    pub fn data<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.lock().data.clone()?.downcast::<T>().ok()
    }

    pub(crate) fn send_frames(&self, frames: &Frames) {
        self.0.conn.send_encoded(frames.messages());
    }

    /// Emits `event` to this client.
    pub fn emit(&self, event: &str, args: impl Into<Args>) -> Result<(), Disconnected> {
        if !self.connected() {
            return Err(Disconnected);
        }
        if self.0.ns.recovery.is_some() {
            // As in the reference server: with recovery on, a direct emit is a
            // broadcast to the socket's own room, so it gets an offset and is
            // replayed if the connection drops before it is delivered.
            Broadcast::new(self.0.ns.clone())
                .to(&self.0.id)
                .emit(event, args);
            return Ok(());
        }
        let packet = frames::event(&self.0.ns.name, event, args.into(), None);
        self.send_frames(&Frames::encode(&packet));
        Ok(())
    }

    /// Emits `event` and waits for the client's ack, at most `timeout`.
    pub fn emit_with_ack(
        &self,
        event: &str,
        args: impl Into<Args>,
        timeout: Duration,
    ) -> impl Future<Output = Result<Args, AckError>> + Send + 'static {
        let rx = self.send_with_ack(event, args.into());
        let socket = self.clone();
        async move {
            let (id, rx) = rx.ok_or(AckError::Disconnected)?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(args)) => Ok(args),
                Ok(Err(_)) => Err(AckError::Disconnected),
                Err(_) => {
                    socket.forget_ack(id);
                    Err(AckError::Timeout)
                }
            }
        }
    }

    /// Sends an event with a fresh ack id; the receiver completes on the ack.
    pub(crate) fn send_with_ack(
        &self,
        event: &str,
        args: Args,
    ) -> Option<(u64, oneshot::Receiver<Args>)> {
        let (tx, rx) = oneshot::channel();
        let id = {
            // The state lock keeps `mark_disconnected` out between the check
            // and the insert: no waiter is left behind.
            let _st = self.lock();
            if !self.connected() {
                return None;
            }
            let extra = self.0.extra.get_or_init(Box::default);
            let mut acks = extra.acks();
            let acks = acks.get_or_insert_with(Default::default);
            let id = acks.next;
            acks.next += 1;
            acks.waiting.insert(id, tx);
            id
        };
        let packet = frames::event(&self.0.ns.name, event, args, Some(id));
        self.send_frames(&Frames::encode(&packet));
        Some((id, rx))
    }

    pub(crate) fn forget_ack(&self, id: u64) {
        if let Some(extra) = self.0.extra.get()
            && let Some(acks) = extra.acks().as_mut()
        {
            acks.remove(id);
        }
    }

    /// Completes a pending emit-with-ack; unknown ids are ignored.
    pub(crate) fn on_ack(&self, id: u64, args: Args) {
        let tx = self
            .0
            .extra
            .get()
            .and_then(|x| x.acks().as_mut().and_then(|a| a.remove(id)));
        if let Some(tx) = tx {
            let _ = tx.send(args);
        }
    }

    /// Joins a room.
    pub fn join(&self, room: &str) {
        self.join_with(room, || Arc::from(room));
    }

    /// Joins the room named `room`, keeping that very string as the room's
    /// name if the room is new (no copy: a caller that keeps the name anyway,
    /// such as a user's personal room, shares it).
    pub fn join_shared(&self, room: &Arc<str>) {
        self.join_with(room, || room.clone());
    }

    fn join_with(&self, room: &str, name: impl FnOnce() -> Arc<str>) {
        if room == self.id() {
            return;
        }
        let mut st = self.lock();
        if !self.connected() || st.rooms.iter().any(|r| &**r == room) {
            return;
        }
        let room = self.0.ns.add_to_room(room, name, self);
        st.rooms.push(room);
    }

    /// Leaves a room.
    pub fn leave(&self, room: &str) {
        self.0.ns.remove_from_room(room, &self.0.id);
        self.lock().rooms.remove_where(|r| &**r == room);
    }

    /// The rooms this socket is in, its own id first (after a disconnect:
    /// the rooms it was in).
    pub fn rooms(&self) -> Vec<String> {
        let mut out = vec![self.id().to_owned()];
        out.extend(self.lock().rooms.iter().map(|r| r.to_string()));
        out
    }

    /// Broadcasts to `room`, this socket excluded.
    pub fn to(&self, room: &str) -> Broadcast {
        self.broadcast().to(room)
    }

    /// Broadcasts to every socket of the namespace but this one.
    pub fn broadcast(&self) -> Broadcast {
        Broadcast::new(self.0.ns.clone()).except_socket(self.0.id)
    }

    /// Removes the socket from its namespace: the client gets a DISCONNECT
    /// packet (and will not reconnect by itself). The connection stays open
    /// for its other namespaces.
    pub fn disconnect(&self) {
        if self.0.conn.data().remove(self) {
            let packet = frames::control(PacketKind::Disconnect, &self.0.ns.name, None);
            self.send_frames(&Frames::encode(&packet));
            self.0
                .ns
                .on_disconnect(self, DisconnectReason::ServerNamespaceDisconnect);
        }
    }

    /// Closes the whole connection (every namespace); a client reconnects
    /// by itself and, with recovery on, gets its session back.
    pub fn close_connection(&self) {
        self.0.conn.close();
    }

    /// Marks the socket gone and fails its pending acks; returns whether it
    /// was connected.
    pub(crate) fn mark_disconnected(&self) -> bool {
        // The room list stays readable (`rooms()` in disconnect handlers
        // tells where the socket was); only the namespace forgets it.
        let (was, acks, rooms) = {
            let st = self.lock();
            let was = self.0.connected.swap(false, Ordering::AcqRel);
            let acks = self.0.extra.get().and_then(|x| x.acks().take());
            (was, acks, st.rooms.clone())
        };
        drop(acks);
        for room in rooms.iter() {
            self.0.ns.remove_from_room(room, &self.0.id);
        }
        if was {
            self.0.ns.remove_socket(&self.0.id);
        }
        was
    }
}
#[cfg(all(test, target_pointer_width = "64"))]
mod tests {
    /// What every idle connection holds: a regression here is memory on
    /// every connection of a server.
    #[test]
    fn per_connection_records_stay_small() {
        use std::mem::size_of;
        // 88 B: with the `Arc` counts and malloc's header, a 112-byte
        // chunk (96 B would take the next class).
        assert!(
            size_of::<super::SocketInner>() <= 88,
            "{}",
            size_of::<super::SocketInner>()
        );
        assert!(
            size_of::<super::Conn>() <= 40,
            "{}",
            size_of::<super::Conn>()
        );
        // 352 B in a release build: with the `Arc` counts and malloc's
        // header, a 384-byte chunk (368 B would take the next class). A
        // debug build's tokio socket is 8 bytes larger.
        let session = size_of::<switchboard_engine::server::EngineSocket<super::Conn>>();
        let debug = if cfg!(debug_assertions) { 8 } else { 0 };
        assert!(session <= 352 + debug, "{session}");
    }
}
