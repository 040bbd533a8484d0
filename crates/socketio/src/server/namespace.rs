//! Namespaces: handlers, sockets and rooms.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use http::HeaderMap;
use serde_json::{Value, json};

use super::args::Args;
use super::broadcast::Broadcast;
use super::recovery::Recovery;
use super::rooms::Rooms;
use super::socket::{DisconnectReason, Socket, SocketData};

/// A boxed future, for async middlewares.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A refused namespace connection: the client gets CONNECT_ERROR
/// `{message, data}` (`connect_error` with `err.message`, `err.data`).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// Shown to the client as `err.message`.
    pub message: String,
    /// Optional details, `err.data`.
    pub data: Option<Value>,
}

impl ConnectError {
    /// A refusal with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            data: None,
        }
    }

    /// Adds `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub(crate) fn to_json(&self) -> Value {
        match &self.data {
            Some(d) => json!({"message": self.message, "data": d}),
            None => json!({"message": self.message}),
        }
    }
}

/// What a middleware sees of a namespace connection attempt.
#[derive(Debug)]
pub struct ConnectRequest {
    pub(crate) nsp: Arc<str>,
    pub(crate) auth: Value,
    pub(crate) handshake: Option<Arc<(HeaderMap, Box<str>)>>,
    pub(crate) data: Mutex<Option<SocketData>>,
}

impl ConnectRequest {
    /// The namespace.
    pub fn ns(&self) -> &str {
        &self.nsp
    }

    /// The CONNECT auth payload (`{}` when none).
    pub fn auth(&self) -> &Value {
        &self.auth
    }

    /// The handshake's HTTP headers (kept until the first namespace
    /// connects, unless the server keeps them for the whole connection).
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.handshake.as_ref().map(|h| &h.0)
    }

    /// The handshake's query string (kept as long as the headers).
    pub fn query(&self) -> Option<&str> {
        self.handshake.as_ref().map(|h| &*h.1)
    }

    /// Sets the data of the socket that will be created (read it with
    /// [`Socket::data`]).
    pub fn set_data<T: Any + Send + Sync>(&self, value: T) {
        *self.data.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(value));
    }
}

/// An incoming event.
#[derive(Debug)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// Its arguments.
    pub args: Args,
    /// Present when the client asked for an ack.
    pub ack: Option<AckSender>,
}

/// Answers a client's emit-with-ack (once).
#[derive(Debug)]
pub struct AckSender {
    pub(crate) socket: Socket,
    pub(crate) id: u64,
}

impl AckSender {
    /// Sends the ack with `args`.
    pub fn send(self, args: impl Into<Args>) {
        let packet = super::frames::ack(self.socket.ns(), self.id, args.into());
        self.socket
            .send_frames(&super::frames::Frames::encode(&packet));
    }
}

type SyncMiddleware = dyn Fn(&ConnectRequest) -> Result<(), ConnectError> + Send + Sync;
type AsyncMiddleware =
    dyn Fn(Arc<ConnectRequest>) -> BoxFuture<Result<(), ConnectError>> + Send + Sync;

pub(crate) enum Middleware {
    Sync(Box<SyncMiddleware>),
    Async(Box<AsyncMiddleware>),
}

type ConnectFn = dyn Fn(&Socket) + Send + Sync;
type EventFn = dyn Fn(&Socket, Event) + Send + Sync;
type DisconnectFn = dyn Fn(&Socket, DisconnectReason) + Send + Sync;

/// Handlers of a namespace, built once and shared by its sockets (a socket
/// carries no handler table of its own).
#[derive(Default)]
pub struct NamespaceBuilder {
    pub(crate) middlewares: Vec<Middleware>,
    pub(crate) on_connect: Option<Box<ConnectFn>>,
    pub(crate) events: HashMap<String, Box<EventFn>>,
    pub(crate) fallback: Option<Box<EventFn>>,
    pub(crate) on_disconnect: Option<Box<DisconnectFn>>,
}

impl std::fmt::Debug for NamespaceBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamespaceBuilder")
            .field("middlewares", &self.middlewares.len())
            .field("events", &self.events.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl NamespaceBuilder {
    /// An empty namespace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a middleware; a refusal ends the connection attempt with
    /// CONNECT_ERROR. Middlewares run in order.
    pub fn middleware(
        mut self,
        f: impl Fn(&ConnectRequest) -> Result<(), ConnectError> + Send + Sync + 'static,
    ) -> Self {
        self.middlewares.push(Middleware::Sync(Box::new(f)));
        self
    }

    /// Adds an async middleware (e.g. one that asks a backend).
    pub fn middleware_async<F>(
        mut self,
        f: impl Fn(Arc<ConnectRequest>) -> F + Send + Sync + 'static,
    ) -> Self
    where
        F: Future<Output = Result<(), ConnectError>> + Send + 'static,
    {
        self.middlewares
            .push(Middleware::Async(Box::new(move |r| Box::pin(f(r)))));
        self
    }

    /// Called when a socket has connected (after its CONNECT reply).
    pub fn on_connect(mut self, f: impl Fn(&Socket) + Send + Sync + 'static) -> Self {
        self.on_connect = Some(Box::new(f));
        self
    }

    /// Handles `event`.
    pub fn on(mut self, event: &str, f: impl Fn(&Socket, Event) + Send + Sync + 'static) -> Self {
        self.events.insert(event.to_owned(), Box::new(f));
        self
    }

    /// Handles events that have no handler of their own.
    pub fn on_any(mut self, f: impl Fn(&Socket, Event) + Send + Sync + 'static) -> Self {
        self.fallback = Some(Box::new(f));
        self
    }

    /// Called when a socket leaves, with the reason.
    pub fn on_disconnect(
        mut self,
        f: impl Fn(&Socket, DisconnectReason) + Send + Sync + 'static,
    ) -> Self {
        self.on_disconnect = Some(Box::new(f));
        self
    }
}

/// What a room holds: something with a socket id.
pub(crate) trait HasId: Clone {
    fn id(&self) -> &str;
}

impl HasId for Socket {
    fn id(&self) -> &str {
        Socket::id(self)
    }
}

/// A socket in a set: hashed and compared by its id, so that a set of them
/// is looked up by `&str` and holds one pointer per socket.
#[derive(Clone)]
pub(crate) struct ById<S = Socket>(pub(crate) S);

impl<S: HasId> std::hash::Hash for ById<S> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.id().hash(state);
    }
}

impl<S: HasId> PartialEq for ById<S> {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl<S: HasId> Eq for ById<S> {}

impl<S: HasId> std::borrow::Borrow<str> for ById<S> {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}

/// A live namespace.
pub(crate) struct NsInner {
    pub(crate) name: Arc<str>,
    pub(crate) handlers: Arc<NamespaceBuilder>,
    pub(crate) sockets: RwLock<HashSet<ById>>,
    pub(crate) rooms: RwLock<Rooms>,
    pub(crate) recovery: Option<Recovery>,
}

impl NsInner {
    pub(crate) fn new(
        name: Arc<str>,
        handlers: Arc<NamespaceBuilder>,
        recovery: Option<Recovery>,
    ) -> Self {
        Self {
            name,
            handlers,
            sockets: RwLock::default(),
            rooms: RwLock::default(),
            recovery,
        }
    }

    pub(crate) fn socket(&self, id: &str) -> Option<Socket> {
        self.sockets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .map(|s| s.0.clone())
    }

    pub(crate) fn add_socket(&self, socket: &Socket) {
        self.sockets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ById(socket.clone()));
    }

    pub(crate) fn remove_socket(&self, id: &str) {
        let mut sockets = self.sockets.write().unwrap_or_else(|e| e.into_inner());
        sockets.remove(id);
        if let Some(to) = switchboard_wire::io::shrunk_capacity(sockets.len(), sockets.capacity()) {
            sockets.shrink_to(to);
        }
    }

    /// Adds `socket` to `room`; returns the shared room name (`name()` makes
    /// it for a room that has no member yet).
    pub(crate) fn add_to_room(
        &self,
        room: &str,
        name: impl FnOnce() -> Arc<str>,
        socket: &Socket,
    ) -> Arc<str> {
        self.rooms
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .add(room, name, socket)
    }

    pub(crate) fn remove_from_room(&self, room: &str, id: &str) {
        self.rooms
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room, id);
    }

    pub(crate) fn on_disconnect(&self, socket: &Socket, reason: DisconnectReason) {
        if let Some(f) = &self.handlers.on_disconnect {
            f(socket, reason);
        }
    }
}

/// A namespace handle: broadcast operators and socket lookup.
#[derive(Clone)]
pub struct Namespace(pub(crate) Arc<NsInner>);

impl std::fmt::Debug for Namespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Namespace").field(&self.0.name).finish()
    }
}

impl Namespace {
    /// The name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Every socket of the namespace.
    pub fn all(&self) -> Broadcast {
        Broadcast::new(self.0.clone())
    }

    /// Sockets in `room`.
    pub fn to(&self, room: &str) -> Broadcast {
        self.all().to(room)
    }

    /// Emits to every socket.
    pub fn emit(&self, event: &str, args: impl Into<Args>) {
        self.all().emit(event, args);
    }

    /// A connected socket by id.
    pub fn socket(&self, id: &str) -> Option<Socket> {
        self.0.socket(id)
    }

    /// Connected sockets.
    pub fn sockets(&self) -> Vec<Socket> {
        self.all().sockets()
    }

    /// Room names that have members.
    pub fn rooms(&self) -> Vec<String> {
        self.0
            .rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .names()
            .map(|k| k.to_string())
            .collect()
    }
}
