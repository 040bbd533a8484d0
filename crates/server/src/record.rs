//! Captures the server makes on request (`POST /api/v1/record`): a room, as
//! a native member of it receives it, or one connection, every frame both
//! ways. Written in the capture format ([`crate::capture`]) to
//! `<records dir>/<id>.ndjson` by a writer thread per capture.
//!
//! The hot paths pay one atomic load when nothing is recorded: the hub
//! hands every publication to [`Recorder`] (a sink), which looks at its
//! room count first; a native connection asks [`Recorder::socket`] once per
//! batch of frames; a Socket.IO session carries a tap only while captured.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use switchboard_hub::{ConnId, Hub, PresenceChange, Publication, Sink};
use switchboard_wire::Message;

use crate::capture::{self, Dir, Header};
use crate::wire;

/// Longest capture, in seconds.
pub(crate) const MAX_DURATION: f64 = 3600.0;
/// Duration of a capture that does not say.
pub(crate) const DEFAULT_DURATION: f64 = 60.0;
/// Captures running at once.
pub(crate) const MAX_RUNNING: usize = 16;
/// Bytes one capture may write; it stops there (`truncated`).
const MAX_BYTES: u64 = 256 << 20;
/// Lines waiting for the writer; beyond, lines are dropped (and counted).
const QUEUE: usize = 1 << 16;

/// What a capture records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Room(String),
    Socket(String),
}

impl Target {
    pub(crate) fn json(&self) -> Value {
        match self {
            Self::Room(r) => json!({"room": r}),
            Self::Socket(s) => json!({"socket": s}),
        }
    }
}

/// One capture.
pub(crate) struct Capture {
    pub(crate) id: String,
    pub(crate) target: Target,
    pub(crate) protocol: &'static str,
    started: Instant,
    pub(crate) started_at: SystemTime,
    pub(crate) ends_at: SystemTime,
    pub(crate) path: PathBuf,
    /// `None` once the capture stopped: the writer then finishes.
    tx: Mutex<Option<SyncSender<String>>>,
    running: AtomicBool,
    /// The writer wrote everything and closed the file.
    written: AtomicBool,
    /// Bytes handed to the writer.
    queued: AtomicU64,
    pub(crate) frames: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) truncated: AtomicBool,
    /// Counted out of the running captures (once).
    released: AtomicBool,
    /// Wakes the capture's timer when it stops early.
    stopped: tokio::sync::Notify,
    /// Undoes what the capture hooked into (a Socket.IO tap).
    detach: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("id", &self.id)
            .field("target", &self.target)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Capture {
    fn t(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }

    pub(crate) fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }

    /// `running` until the file is complete, then `done`.
    pub(crate) fn state(&self) -> &'static str {
        if self.written.load(Ordering::Acquire) {
            "done"
        } else {
            "running"
        }
    }

    /// Bytes in the file so far.
    pub(crate) fn bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    fn push(&self, line: String) {
        if !self.running() {
            return;
        }
        let len = line.len() as u64;
        if self.queued.fetch_add(len, Ordering::Relaxed) + len > MAX_BYTES {
            self.truncated.store(true, Ordering::Relaxed);
            self.finish();
            return;
        }
        let sent = match lock(&self.tx).as_ref() {
            Some(tx) => tx.try_send(line),
            None => return,
        };
        match sent {
            Ok(()) => {
                self.frames.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Records a message (`dir` as the client sees it: `In` from the server).
    pub(crate) fn message(&self, dir: Dir, m: &Message) {
        if self.running() {
            self.push(capture::message_line(self.t(), dir, m));
        }
    }

    /// Records a text frame.
    pub(crate) fn text(&self, dir: Dir, text: &str) {
        if self.running() {
            self.push(capture::text_line(self.t(), dir, text));
        }
    }

    /// Records a close frame.
    pub(crate) fn close(&self, dir: Dir, code: Option<u16>, reason: &str) {
        if self.running() {
            self.push(capture::close_line(self.t(), dir, code, reason));
        }
    }

    /// Stops recording (cheap, callable anywhere): the writer finishes the
    /// file; the capture's timer removes it from the recorder.
    pub(crate) fn finish(&self) {
        if self.running.swap(false, Ordering::AcqRel) {
            lock(&self.tx).take();
            self.stopped.notify_one();
        }
    }

    pub(crate) fn describe(&self) -> Value {
        json!({
            "id": self.id,
            "target": self.target.json(),
            "protocol": self.protocol,
            "state": self.state(),
            "started_at": wire::timestamp(self.started_at),
            "ends_at": wire::timestamp(self.ends_at),
            "bytes": self.bytes(),
            "frames": self.frames.load(Ordering::Relaxed),
            "dropped": self.dropped.load(Ordering::Relaxed),
            "truncated": self.truncated.load(Ordering::Relaxed),
        })
    }
}

/// Writes a capture's lines to its file until the capture stops.
fn writer(mut file: std::fs::File, rx: Receiver<String>, capture: Weak<Capture>) {
    let mut buf = Vec::with_capacity(8 << 10);
    while let Ok(line) = rx.recv() {
        buf.extend_from_slice(line.as_bytes());
        // Whatever else waits goes in the same write.
        while buf.len() < (1 << 20)
            && let Ok(line) = rx.try_recv()
        {
            buf.extend_from_slice(line.as_bytes());
        }
        if let Err(e) = file.write_all(&buf) {
            tracing::error!(error = %e, "writing a capture failed");
            if let Some(c) = capture.upgrade() {
                c.finish();
            }
            break;
        }
        buf.clear();
    }
    let _ = file.sync_data();
    if let Some(c) = capture.upgrade() {
        c.written.store(true, Ordering::Release);
    }
}

/// The directory captures go to, removed on drop when it is a temporary one.
#[derive(Debug)]
struct RecordsDir {
    path: PathBuf,
    temporary: bool,
}

impl Drop for RecordsDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Why a capture could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    #[error("at most {MAX_RUNNING} captures run at once")]
    TooMany,
    #[error("cannot write the capture: {0}")]
    Io(#[from] std::io::Error),
}

/// Per-socket captures: copied on change, cloned (one pointer) by readers.
pub(crate) type Captures = Arc<[Arc<Capture>]>;

/// Every capture of this server.
pub(crate) struct Recorder {
    dir: RecordsDir,
    hub: Weak<Hub>,
    /// Every capture, running and done, oldest first.
    all: Mutex<Vec<Arc<Capture>>>,
    rooms: RwLock<HashMap<String, Captures>>,
    room_count: AtomicUsize,
    /// Captures of connections (native and Socket.IO), by socket id.
    sockets: RwLock<HashMap<String, Captures>>,
    socket_count: AtomicUsize,
    running: AtomicUsize,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("dir", &self.dir.path)
            .finish()
    }
}

fn add(map: &RwLock<HashMap<String, Captures>>, key: &str, c: &Arc<Capture>) {
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    let mut list: Vec<Arc<Capture>> = map.get(key).map(|l| l.to_vec()).unwrap_or_default();
    list.push(c.clone());
    map.insert(key.to_owned(), list.into());
}

fn remove(map: &RwLock<HashMap<String, Captures>>, key: &str, c: &Arc<Capture>) -> bool {
    let mut map = map.write().unwrap_or_else(|e| e.into_inner());
    let Some(list) = map.get(key) else {
        return false;
    };
    if !list.iter().any(|x| Arc::ptr_eq(x, c)) {
        return false;
    }
    let rest: Vec<Arc<Capture>> = list
        .iter()
        .filter(|x| !Arc::ptr_eq(x, c))
        .cloned()
        .collect();
    if rest.is_empty() {
        map.remove(key);
    } else {
        map.insert(key.to_owned(), rest.into());
    }
    true
}

impl Recorder {
    /// Captures go to `dir` (created if needed; earlier captures there are
    /// listed), or, without one, to a directory under the system's
    /// temporary directory that is removed when the recorder is dropped.
    pub(crate) fn new(dir: Option<PathBuf>, hub: &Arc<Hub>) -> Self {
        let dir = match dir {
            Some(path) => RecordsDir {
                path,
                temporary: false,
            },
            None => RecordsDir {
                path: std::env::temp_dir().join(format!(
                    "switchboard-records-{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                )),
                temporary: true,
            },
        };
        let recorder = Self {
            dir,
            hub: Arc::downgrade(hub),
            all: Mutex::default(),
            rooms: RwLock::default(),
            room_count: AtomicUsize::new(0),
            sockets: RwLock::default(),
            socket_count: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
        };
        recorder.load_existing();
        recorder
    }

    /// Where captures are written.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir.path
    }

    /// Lists captures left in the directory by an earlier run (done).
    fn load_existing(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir.path) else {
            return;
        };
        let mut found = Vec::new();
        for e in entries.flatten() {
            let path = e.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ndjson"))
                .filter(|id| valid_id(id))
                .map(str::to_owned)
            else {
                continue;
            };
            let Some(header) = read_header(&path) else {
                continue;
            };
            let target = match (&header["target"]["room"], &header["target"]["socket"]) {
                (Value::String(r), _) => Target::Room(r.clone()),
                (_, Value::String(s)) => Target::Socket(s.clone()),
                _ => continue,
            };
            let started_at = header["started_at"]
                .as_str()
                .and_then(|s| humantime::parse_rfc3339_weak(s).ok())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let protocol = if header["protocol"] == "socketio" {
                "socketio"
            } else {
                "native"
            };
            let c = Capture {
                id,
                target,
                protocol,
                started: Instant::now(),
                started_at,
                ends_at: e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(started_at),
                path,
                tx: Mutex::new(None),
                running: AtomicBool::new(false),
                written: AtomicBool::new(true),
                queued: AtomicU64::new(0),
                frames: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                truncated: AtomicBool::new(false),
                released: AtomicBool::new(true),
                stopped: tokio::sync::Notify::new(),
                detach: Mutex::new(None),
            };
            found.push(Arc::new(c));
        }
        found.sort_by_key(|c| c.started_at);
        *lock(&self.all) = found;
    }

    /// Every capture, oldest first.
    pub(crate) fn list(&self) -> Vec<Arc<Capture>> {
        lock(&self.all).clone()
    }

    /// A capture by id.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Capture>> {
        lock(&self.all).iter().find(|c| c.id == id).cloned()
    }

    /// Starts a capture of `target` for `duration`; `protocol` is that of
    /// the frames it will hold. Hook it up with [`Recorder::watch_room`],
    /// [`Recorder::watch_socket`] or a tap (then [`Recorder::on_stop`]).
    /// Call within a tokio runtime.
    pub(crate) fn start(
        self: &Arc<Self>,
        target: Target,
        protocol: &'static str,
        duration: Duration,
    ) -> Result<Arc<Capture>, StartError> {
        if self.running.fetch_add(1, Ordering::AcqRel) >= MAX_RUNNING {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return Err(StartError::TooMany);
        }
        let made = self.create(target, protocol, duration);
        if made.is_err() {
            self.running.fetch_sub(1, Ordering::AcqRel);
        }
        made
    }

    fn create(
        self: &Arc<Self>,
        target: Target,
        protocol: &'static str,
        duration: Duration,
    ) -> Result<Arc<Capture>, StartError> {
        std::fs::create_dir_all(&self.dir.path)?;
        let id = new_id();
        let path = self.dir.path.join(format!("{id}.ndjson"));
        let mut file = std::fs::File::create_new(&path)?;
        let started_at = SystemTime::now();
        let header = Header {
            protocol: protocol.to_owned(),
            url: None,
            started_at: wire::timestamp(started_at),
            rooms: match &target {
                Target::Room(r) => vec![r.clone()],
                Target::Socket(_) => Vec::new(),
            },
            target: Some(target.json()),
        };
        file.write_all(header.line().as_bytes())?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let c = Arc::new(Capture {
            id,
            target,
            protocol,
            started: Instant::now(),
            started_at,
            ends_at: started_at + duration,
            path,
            tx: Mutex::new(Some(tx)),
            running: AtomicBool::new(true),
            written: AtomicBool::new(false),
            queued: AtomicU64::new(0),
            frames: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            truncated: AtomicBool::new(false),
            released: AtomicBool::new(false),
            stopped: tokio::sync::Notify::new(),
            detach: Mutex::new(None),
        });
        let weak = Arc::downgrade(&c);
        std::thread::Builder::new()
            .name(format!("capture-{}", c.id))
            .spawn(move || writer(file, rx, weak))?;
        lock(&self.all).push(c.clone());
        // The timer: stops the capture at its end (or cleans up after an
        // early stop).
        let (recorder, capture) = (Arc::downgrade(self), c.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(duration) => {}
                () = capture.stopped.notified() => {}
            }
            if let Some(r) = recorder.upgrade() {
                r.stop(&capture);
            }
        });
        Ok(c)
    }

    /// Records what a native member of `room` receives.
    pub(crate) fn watch_room(&self, c: &Arc<Capture>, room: &str) {
        if let Some(hub) = self.hub.upgrade() {
            hub.observe(room);
        }
        add(&self.rooms, room, c);
        self.room_count.fetch_add(1, Ordering::Release);
    }

    /// Records every frame of a connection (native: its driver asks
    /// [`Recorder::socket`]; Socket.IO: through a [`SioTap`]).
    pub(crate) fn watch_socket(&self, c: &Arc<Capture>, socket: &str) {
        add(&self.sockets, socket, c);
        self.socket_count.fetch_add(1, Ordering::Release);
    }

    /// Runs `detach` when the capture stops.
    pub(crate) fn on_stop(&self, c: &Arc<Capture>, detach: Box<dyn FnOnce() + Send>) {
        *lock(&c.detach) = Some(detach);
        if !c.running() {
            self.stop(c);
        }
    }

    /// Stops a capture and unhooks it (idempotent). Not to be called from
    /// within a hub or session callback (it takes their locks).
    pub(crate) fn stop(&self, c: &Arc<Capture>) {
        c.finish();
        match &c.target {
            Target::Room(room) => {
                if remove(&self.rooms, room, c) {
                    self.room_count.fetch_sub(1, Ordering::Release);
                    if let Some(hub) = self.hub.upgrade() {
                        hub.unobserve(room);
                    }
                }
            }
            Target::Socket(id) => {
                if remove(&self.sockets, id, c) {
                    self.socket_count.fetch_sub(1, Ordering::Release);
                }
            }
        }
        let detach = lock(&c.detach).take();
        if let Some(detach) = detach {
            detach();
        }
        if !c.released.swap(true, Ordering::AcqRel) {
            self.running.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The captures of connection `socket`, if any (one atomic load when
    /// nothing is recorded).
    #[inline]
    pub(crate) fn socket(&self, socket: &str) -> Option<Captures> {
        if self.socket_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.sockets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(socket)
            .cloned()
    }

    /// A connection ended: its captures record how (the close the server
    /// sends, e.g. after a kick, and the one the client sent) and stop.
    pub(crate) fn socket_ended(
        &self,
        socket: &str,
        server_close: Option<(u16, &str)>,
        peer_close: Option<&switchboard_wire::CloseFrame>,
    ) {
        let Some(captures) = self.socket(socket) else {
            return;
        };
        for c in captures.iter() {
            if let Some(f) = peer_close {
                c.close(Dir::Out, Some(f.code.0), &f.reason);
            }
            if let Some((code, reason)) = server_close {
                c.close(Dir::In, Some(code), reason);
            }
            self.stop(c);
        }
    }

    fn room(&self, room: &str) -> Option<Captures> {
        if self.room_count.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .cloned()
    }
}

impl Sink for Recorder {
    fn publish(&self, p: &Arc<Publication>) {
        let Some(captures) = self.room(&p.room) else {
            return;
        };
        // The frame a native member gets (native::Native's publish).
        let mut m = wire::message(&p.entry);
        m["op"] = json!("message");
        m["room"] = json!(p.room);
        m["epoch"] = json!(p.epoch);
        let text = m.to_string();
        for c in captures.iter() {
            c.text(Dir::In, &text);
        }
    }

    fn presence(&self, _conn: &ConnId, _change: &PresenceChange) {}

    fn owns(&self, _conn: &ConnId) -> bool {
        false
    }

    fn room_presence(&self, change: &PresenceChange) {
        let Some(captures) = self.room(&change.room) else {
            return;
        };
        let action = if change.joined { "join" } else { "leave" };
        let text =
            json!({"op": "presence", "room": change.room, "user": change.user, "action": action})
                .to_string();
        for c in captures.iter() {
            c.text(Dir::In, &text);
        }
    }
}

/// A Socket.IO connection's tap: its Engine.IO packets into the captures
/// of socket `socket`.
pub(crate) struct SioTap {
    pub(crate) socket: String,
    pub(crate) recorder: Weak<Recorder>,
}

impl switchboard_engine::Tap for SioTap {
    fn frame(&self, incoming: bool, frame: &Message) {
        let Some(captures) = self.recorder.upgrade().and_then(|r| r.socket(&self.socket)) else {
            return;
        };
        // The session's "incoming" is from the client.
        let dir = if incoming { Dir::Out } else { Dir::In };
        for c in captures.iter() {
            c.message(dir, frame);
        }
    }

    fn ended(&self, _reason: switchboard_engine::CloseReason) {
        if let Some(r) = self.recorder.upgrade() {
            r.socket_ended(&self.socket, None, None);
        }
    }
}

/// 16 lowercase hex characters.
fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Whether `id` could be a capture id (safe as a file name).
pub(crate) fn valid_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn read_header(path: &Path) -> Option<Value> {
    use std::io::{BufRead as _, Read as _};
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file.take(64 << 10))
        .read_line(&mut line)
        .ok()?;
    let v: Value = serde_json::from_str(&line).ok()?;
    (v["capture"] == capture::FORMAT).then_some(v)
}

/// The admin API's `/api/v1/record` endpoints.
pub(crate) mod api {
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{Method, Request, Response, StatusCode, header};
    use http_body_util::Full;
    use serde_json::{Value, json};

    use super::{DEFAULT_DURATION, MAX_DURATION, SioTap, StartError, Target, valid_id};
    use crate::admin::{Admin, ApiError, json_response};

    /// Whether `path` (under `/api/v1`) is one of these endpoints.
    pub(crate) fn matches(path: &str) -> bool {
        let p = path.trim_start_matches("/api/v1");
        p == "/record" || p == "/record/" || p.starts_with("/record/")
    }

    impl Admin {
        /// Answers `/api/v1/record…` (the key is checked by the caller).
        pub(crate) async fn record<B>(&self, req: Request<B>) -> Response<Full<Bytes>>
        where
            B: http_body::Body<Data = Bytes> + Send + 'static,
            B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        {
            let path = req.uri().path().trim_start_matches("/api/v1").to_owned();
            let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
            let answer = match (req.method().clone(), segments.as_slice()) {
                (Method::POST, ["record"]) => match crate::admin::body(req).await {
                    Ok(v) => self.start_capture(v),
                    Err(e) => Err(e),
                },
                (Method::GET, ["record"]) => Ok(json_response(
                    StatusCode::OK,
                    &Value::Array(self.recorder.list().iter().map(|c| c.describe()).collect()),
                )),
                (Method::GET, ["record", id]) => self.download(id),
                (_, ["record"]) => Err(ApiError::MethodNotAllowed("GET, POST")),
                (_, ["record", _]) => Err(ApiError::MethodNotAllowed("GET")),
                _ => Err(ApiError::NotFound),
            };
            answer.unwrap_or_else(|e| e.response())
        }

        fn start_capture(&self, v: Value) -> Result<Response<Full<Bytes>>, ApiError> {
            let shape = "expected {room | socket, duration?}";
            let Value::Object(o) = &v else {
                return Err(ApiError::BadRequest(format!("{shape}: not an object")));
            };
            let duration = match o.get("duration") {
                None => DEFAULT_DURATION,
                Some(d) => d
                    .as_f64()
                    .filter(|d| *d > 0.0 && *d <= MAX_DURATION)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "duration must be a number of seconds above 0, at most {MAX_DURATION}"
                        ))
                    })?,
            };
            let duration = Duration::from_secs_f64(duration);
            let target = match (o.get("room"), o.get("socket")) {
                (Some(Value::String(room)), None) if crate::wire::valid_room(room) => {
                    Target::Room(room.clone())
                }
                (Some(_), None) => {
                    return Err(ApiError::BadRequest(
                        "room must be a room name (1–256 characters, no control characters)".into(),
                    ));
                }
                (None, Some(Value::String(socket))) if !socket.is_empty() => {
                    Target::Socket(socket.clone())
                }
                (None, Some(_)) => {
                    return Err(ApiError::BadRequest(
                        "socket must be a socket id (a string)".into(),
                    ));
                }
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "{shape}: give exactly one of room and socket"
                    )));
                }
            };
            let recorder = &self.recorder;
            let capture = match &target {
                Target::Room(room) => {
                    let c = recorder
                        .start(target.clone(), "native", duration)
                        .map_err(start_error)?;
                    recorder.watch_room(&c, room);
                    c
                }
                Target::Socket(id) if self.native.has(id) => {
                    let c = recorder
                        .start(target.clone(), "native", duration)
                        .map_err(start_error)?;
                    recorder.watch_socket(&c, id);
                    c
                }
                Target::Socket(id) => {
                    let socket = self
                        .ns
                        .socket(id)
                        .ok_or_else(|| ApiError::NotFoundWhat(format!("no socket {id:?}")))?;
                    let c = recorder
                        .start(target.clone(), "socketio", duration)
                        .map_err(start_error)?;
                    recorder.watch_socket(&c, id);
                    socket.set_tap(Some(Arc::new(SioTap {
                        socket: id.clone(),
                        recorder: Arc::downgrade(recorder),
                    })));
                    let (weak, id) = (Arc::downgrade(recorder), id.clone());
                    recorder.on_stop(
                        &c,
                        Box::new(move || {
                            // The last capture of the socket takes the tap off.
                            if weak.upgrade().is_none_or(|r| r.socket(&id).is_none()) {
                                socket.set_tap(None);
                            }
                        }),
                    );
                    c
                }
            };
            let mut answer = capture.describe();
            answer["url"] = json!(format!("/api/v1/record/{}", capture.id));
            Ok(json_response(StatusCode::ACCEPTED, &answer))
        }

        fn download(&self, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
            let not_found = || ApiError::NotFoundWhat(format!("no capture {id:?}"));
            if !valid_id(id) {
                return Err(not_found());
            }
            let capture = self.recorder.get(id).ok_or_else(not_found)?;
            let bytes = std::fs::read(&capture.path).map_err(|e| {
                tracing::warn!(error = %e, "reading a capture failed");
                not_found()
            })?;
            let mut res = Response::new(Full::new(Bytes::from(bytes)));
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/x-ndjson"),
            );
            Ok(res)
        }
    }

    fn start_error(e: StartError) -> ApiError {
        match e {
            StartError::TooMany => ApiError::TooMany(e.to_string()),
            StartError::Io(e) => {
                tracing::error!(error = %e, "starting a capture failed");
                ApiError::UnavailableWhat(format!("cannot write the capture: {e}"))
            }
        }
    }
}
