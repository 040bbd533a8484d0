//! socketioxide relay: the Rust peer of `switchboard serve`'s Socket.IO
//! relay for `benches/fanout.sh` and `benches/sio_idle.sh`, doing what
//! `benches/peers/node/sio-relay.js` does (the relay subset of DESIGN.md §3,
//! docs/protocol.md "Relay") on the main namespace "/":
//!
//!   join(room, opts?)                 -> {ok: true, epoch, offset, recovered: false}
//!   leave(room)                       -> {ok: true}
//!   publish(room, event, data, opts?) -> {ok: true, offset}; every member of
//!       `room`, the sender included, receives `event(data, meta)` with
//!       meta = {room, offset, epoch, from, at} (`opts.volatile`: a volatile
//!       broadcast)
//!   anything else                     -> {ok: false, error: {code: "unknown_event", message}}
//!
//! Bad arguments get {ok: false, error: {code: "bad_request", message}}. Each
//! room has an epoch (16 hex digits) and an offset counter from 0, kept for
//! the life of the process; no history, presence or permission check. Every
//! connection is an anonymous user (`anon-<12 characters>`, named from its
//! session id). Each socket holds one handler (`on_fallback`, the
//! counterpart of the Node peer's shared `onAny`). hyper 1 http1 with
//! upgrades, multi-thread runtime, default socketioxide settings (polling
//! and WebSocket, pingInterval 25 s, pingTimeout 20 s).
//!
//! Usage: socketioxide-relay [--listen] HOST:PORT   (127.0.0.1:9001 by default)

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use serde::de::{Deserializer, SeqAccess, Visitor};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, Event, SocketRef};
use socketioxide::handler::ConnectHandler as _;
use tokio::net::TcpListener;

/// Event names socket.io reserves, and the relay's own: cannot be published.
const RESERVED: [&str; 9] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
    "presence",
    "kick",
    "refresh",
];

/// A room's epoch and offset, made on its first join or publish.
struct Log {
    epoch: String,
    offset: u64,
}

static LOGS: OnceLock<Mutex<HashMap<String, Log>>> = OnceLock::new();
static IO: OnceLock<SocketIo> = OnceLock::new();

/// All the arguments of an event, as many as were sent. A tuple to
/// socketioxide's parser, which then hands over every argument rather than
/// the first.
struct Args(Vec<Value>);

impl<'de> serde::Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct All;
        impl<'de> Visitor<'de> for All {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Args, S::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Args(v))
            }
        }
        d.deserialize_tuple(usize::MAX, All)
    }
}

/// A hasher with this process's random keys, the same for every call.
fn hasher() -> impl Hasher {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new).build_hasher()
}

/// Random bytes from the standard library's per-process hash keys and a
/// counter (no cryptographic need: names and epochs only have to differ).
fn random_bytes(n: usize) -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        let mut h = hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        out.extend_from_slice(&h.finish().to_le_bytes());
    }
    out.truncate(n);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..=c.len() {
            s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    s
}

/// Now as JavaScript's `Date.prototype.toISOString` writes it.
fn iso_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, ms) = (d.as_secs(), d.subsec_millis());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The room's epoch and its offset, after adding `add` to it.
fn log(room: &str, add: u64) -> (String, u64) {
    let mut logs = LOGS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let l = logs.entry(room.to_owned()).or_insert_with(|| Log {
        epoch: hex(&random_bytes(8)),
        offset: 0,
    });
    l.offset += add;
    (l.epoch.clone(), l.offset)
}

fn error(code: &str, message: &str) -> Value {
    json!({"ok": false, "error": {"code": code, "message": message}})
}

fn valid_room(r: Option<&Value>) -> Option<&str> {
    r.and_then(Value::as_str).filter(|r| !r.is_empty())
}

fn valid_event(e: Option<&Value>) -> Option<&str> {
    e.and_then(Value::as_str)
        .filter(|e| !e.is_empty() && e.chars().count() <= 128 && !RESERVED.contains(e))
}

/// The anonymous user of a socket: named from its (random) session id, so
/// that a socket holds nothing of the relay's own.
fn user(socket: &SocketRef) -> String {
    let mut h = hasher();
    h.write(socket.id.to_string().as_bytes());
    let mut bytes = h.finish().to_le_bytes().to_vec();
    bytes.push(bytes[0] ^ bytes[7]);
    format!("anon-{}", base64url(&bytes))
}

/// Every event of every socket.
async fn dispatch(
    socket: SocketRef,
    Event(name): Event,
    Data(Args(args)): Data<Args>,
    ack: AckSender,
) {
    let answer = match name.as_str() {
        "join" => match valid_room(args.first()) {
            Some(room) => {
                let (epoch, offset) = log(room, 0);
                socket.join(room.to_owned());
                json!({"ok": true, "epoch": epoch, "offset": offset, "recovered": false})
            }
            None => error(
                "bad_request",
                "join(room, opts?): room must be a non-empty string",
            ),
        },
        "leave" => match args.first().and_then(Value::as_str) {
            Some(room) => {
                socket.leave(room.to_owned());
                json!({"ok": true})
            }
            None => error("bad_request", "leave(room): room must be a string"),
        },
        "publish" => match (valid_room(args.first()), valid_event(args.get(1))) {
            (Some(room), Some(event)) => {
                let (epoch, offset) = log(room, 1);
                let meta = json!({"room": room, "offset": offset, "epoch": epoch, "from": user(&socket), "at": iso_now()});
                let data = args.get(2).cloned().unwrap_or(Value::Null);
                let volatile =
                    args.get(3).and_then(|o| o.get("volatile")) == Some(&Value::Bool(true));
                let io = IO.get().expect("set before listening");
                let to = if volatile {
                    io.to(room.to_owned()).volatile()
                } else {
                    io.to(room.to_owned())
                };
                match to.emit(event, &(data, meta)).await {
                    Ok(()) => json!({"ok": true, "offset": offset}),
                    Err(e) => error("internal", &e.to_string()),
                }
            }
            _ => error(
                "bad_request",
                "publish(room, event, data): room must be a string, event a name that is not reserved",
            ),
        },
        other => error(
            "unknown_event",
            &format!("unknown event {}", Value::from(other)),
        ),
    };
    let _ = ack.send(&answer);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = switchboard_bench_peers::listen_addr();
    let (svc, io) = SocketIo::new_svc();
    // The handler is registered by a connect middleware, which runs before
    // the CONNECT answer goes out. socketioxide runs the connect handler
    // itself in a task of its own after sending that answer, so a client
    // that emits at once (as every subscriber of `bench fanout` does) could
    // otherwise come before its handler and have its event dropped.
    let on_connect = async |_: SocketRef| {};
    io.ns(
        "/",
        on_connect.with(async |socket: SocketRef| {
            socket.on_fallback(dispatch);
            Ok::<(), std::convert::Infallible>(())
        }),
    );
    IO.set(io).map_err(|_| "io set twice")?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!(
        "socketioxide-relay listening on {} (socketioxide 0.18)",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let svc = svc.clone();
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}
