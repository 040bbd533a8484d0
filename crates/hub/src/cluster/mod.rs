//! Several nodes over one Redis (DESIGN.md U9).
//!
//! * **History and fan-out**: [`RedisStore`] keeps each room's log in a
//!   Redis stream; a Lua script gives the next offset, appends, trims and
//!   PUBLISHes the publication atomically, so broadcasts leave Redis in
//!   offset order. Every node (the publishing one too) receives them on one
//!   subscription and hands them to its hub ([`crate::Hub::deliver`]), which
//!   skips what it already delivered and fills a gap from the stream.
//! * **Presence**: each node writes who is connected and in which room to
//!   its own key with a TTL, refreshed every third of it, and reads the
//!   others' (see `presence`); a dead node's users go offline when its key
//!   expires.
//! * **Commands**: a node can ask every other node to do something and
//!   answer ([`Cluster::ask`]): the admin API disconnects, lists sockets and
//!   counts connections this way.
//! * **Redis down**: calls fail fast ([`RedisStore::is_up`] is false);
//!   publishes are refused, nothing is acknowledged that Redis did not
//!   take. The subscription reconnects with backoff and, once back, every
//!   room with members here is brought up to its log ([`crate::Hub::resync`]).
//!
//! Redis is used as a single server (or a primary with replicas and
//! sentinels), not Redis Cluster: one script touches a room's keys and the
//! room set.

mod codec;
mod pool;
mod presence;
mod scripts;
mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};

pub use store::RedisStore;

use crate::hub::Hub;

/// How a node answers another node's command: `(kind, body) -> answer`.
pub type CommandHandler = Arc<dyn Fn(&str, Value) -> Value + Send + Sync>;

/// Settings of a [`Cluster`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// This node's id, unique in the cluster.
    pub node_id: String,
    /// How long a node's presence outlives its last refresh.
    pub presence_ttl: Duration,
}

impl ClusterConfig {
    /// Settings for node `node_id` with a presence TTL of 10 s.
    pub fn new(node_id: impl Into<String>) -> Self {
        Self {
            node_id: node_id.into(),
            presence_ttl: Duration::from_secs(10),
        }
    }

    /// Sets the presence TTL.
    pub fn presence_ttl(mut self, ttl: Duration) -> Self {
        self.presence_ttl = ttl;
        self
    }
}

struct Inner {
    store: RedisStore,
    config: ClusterConfig,
    hub: Weak<Hub>,
    handler: CommandHandler,
    stop: AtomicBool,
    /// Other live nodes, as last read.
    peers: AtomicUsize,
    /// Whether the subscription is up.
    subscribed: AtomicBool,
    next_id: AtomicU64,
    pending: Mutex<HashMap<u64, Sender<Value>>>,
}

/// A running cluster membership: the subscription and presence threads of
/// this node. Dropping it stops them and removes this node's presence.
pub struct Cluster {
    inner: Arc<Inner>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.inner.config.node_id)
            .field("up", &self.is_up())
            .field("peers", &self.peers())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Cluster {
    /// Joins the cluster of `store`'s Redis with `hub` (whose store `store`
    /// is). `handler` answers other nodes' commands.
    pub fn start(
        hub: &Arc<Hub>,
        store: RedisStore,
        config: ClusterConfig,
        handler: CommandHandler,
    ) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            store,
            config,
            hub: Arc::downgrade(hub),
            handler,
            stop: AtomicBool::new(false),
            peers: AtomicUsize::new(0),
            subscribed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            pending: Mutex::default(),
        });
        let sub = inner.clone();
        let pres = inner.clone();
        let threads = vec![
            std::thread::Builder::new()
                .name("sb-cluster-sub".into())
                .spawn(move || subscribe_loop(&sub))?,
            std::thread::Builder::new()
                .name("sb-cluster-presence".into())
                .spawn(move || presence_loop(&pres))?,
        ];
        Ok(Self { inner, threads })
    }

    /// Whether Redis is reachable (the last call and the subscription).
    pub fn is_up(&self) -> bool {
        self.inner.store.is_up() && self.inner.subscribed.load(Ordering::Relaxed)
    }

    /// Other live nodes, as last read.
    pub fn peers(&self) -> usize {
        self.inner.peers.load(Ordering::Relaxed)
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.config.node_id
    }

    /// Asks every other live node to run `kind` with `body` and returns
    /// their answers: all of them, or those that came within `timeout`.
    /// Blocks (call it from a blocking context).
    pub fn ask(&self, kind: &str, body: Value, timeout: Duration) -> Vec<Value> {
        let expected = self.peers();
        if expected == 0 {
            return Vec::new();
        }
        let inner = &self.inner;
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx): (Sender<Value>, Receiver<Value>) = channel();
        lock(&inner.pending).insert(id, tx);
        let request = json!({"id": id, "from": inner.config.node_id, "kind": kind, "body": body});
        let sent = inner.store.pool.run(|c| {
            redis::cmd("PUBLISH")
                .arg(command_channel(&inner.store))
                .arg(request.to_string())
                .query::<i64>(c)
        });
        let mut answers = Vec::new();
        if sent.is_ok() {
            let until = Instant::now() + timeout;
            while answers.len() < expected {
                let left = until.saturating_duration_since(Instant::now());
                match rx.recv_timeout(left) {
                    Ok(a) => answers.push(a),
                    Err(_) => break,
                }
            }
        }
        lock(&inner.pending).remove(&id);
        answers
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn command_channel(store: &RedisStore) -> String {
    format!("{}command", store.prefix)
}

fn reply_channel(store: &RedisStore, node: &str) -> String {
    format!("{}reply:{node}", store.prefix)
}

fn node_key(store: &RedisStore, node: &str) -> String {
    format!("{}node:{node}", store.prefix)
}

fn nodes_key(store: &RedisStore) -> String {
    format!("{}nodes", store.prefix)
}

/// Sleeps up to `d`, in short steps so a stop is noticed; returns whether
/// to go on.
fn pause(inner: &Inner, d: Duration) -> bool {
    let until = Instant::now() + d;
    while Instant::now() < until {
        if inner.stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(
            until
                .saturating_duration_since(Instant::now())
                .min(Duration::from_millis(50)),
        );
    }
    !inner.stop.load(Ordering::Relaxed)
}

/// Receives broadcasts, commands and answers; reconnects with backoff.
fn subscribe_loop(inner: &Inner) {
    let mut backoff = Duration::from_millis(50);
    while !inner.stop.load(Ordering::Relaxed) {
        if let Err(e) = subscribed(inner) {
            if inner.subscribed.swap(false, Ordering::Relaxed) {
                tracing::warn!(error = %e, "cluster subscription lost; reconnecting");
            } else {
                tracing::debug!(error = %e, "cluster subscription: still reconnecting");
            }
            if !pause(inner, backoff) {
                return;
            }
            backoff = (backoff * 2).min(Duration::from_secs(1));
        } else {
            backoff = Duration::from_millis(50);
        }
    }
}

/// One subscription, until it fails or the cluster stops.
fn subscribed(inner: &Inner) -> redis::RedisResult<()> {
    let store = &inner.store;
    let publish = store.channel();
    let command = command_channel(store);
    let mut con = store.pool.connect()?;
    let mut ps = con.as_pubsub();
    ps.subscribe(&[
        publish.as_str(),
        command.as_str(),
        &reply_channel(store, &inner.config.node_id),
    ])?;
    ps.set_read_timeout(Some(Duration::from_millis(250)))?;
    inner.subscribed.store(true, Ordering::Relaxed);
    store.pool.mark_up();
    // Broadcasts sent while not subscribed are in the logs.
    if let Some(hub) = inner.hub.upgrade() {
        hub.resync();
    }
    while !inner.stop.load(Ordering::Relaxed) {
        let msg = match ps.get_message() {
            Ok(msg) => msg,
            Err(e) if e.is_timeout() => continue,
            Err(e) => return Err(e),
        };
        let Some(hub) = inner.hub.upgrade() else {
            return Ok(());
        };
        let channel = msg.get_channel_name();
        let payload = Bytes::copy_from_slice(msg.get_payload_bytes());
        if channel == publish {
            match codec::publication(payload) {
                Some(p) => hub.deliver(Arc::new(p)),
                None => tracing::warn!("cluster: a malformed broadcast was ignored"),
            }
        } else if channel == command {
            answer(inner, &payload);
        } else if let Ok(reply) = serde_json::from_slice::<Value>(&payload)
            && let Some(id) = reply["id"].as_u64()
            && let Some(tx) = lock(&inner.pending).get(&id)
        {
            let _ = tx.send(reply["body"].clone());
        }
    }
    Ok(())
}

/// Runs another node's command and publishes the answer to it.
fn answer(inner: &Inner, payload: &[u8]) {
    let Ok(request) = serde_json::from_slice::<Value>(payload) else {
        return;
    };
    let (Some(from), Some(kind)) = (request["from"].as_str(), request["kind"].as_str()) else {
        return;
    };
    if from == inner.config.node_id {
        return;
    }
    let body = (inner.handler)(kind, request["body"].clone());
    let reply = json!({"id": request["id"], "node": inner.config.node_id, "body": body});
    let channel = reply_channel(&inner.store, from);
    if let Err(e) = inner.store.pool.run(|c| {
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(reply.to_string())
            .query::<i64>(c)
    }) {
        tracing::warn!(error = %e, kind, "cluster: could not answer a command");
    }
}

/// Writes this node's presence and reads the others', every third of the
/// TTL; removes this node's presence when stopping.
fn presence_loop(inner: &Inner) {
    let ttl = inner.config.presence_ttl.max(Duration::from_millis(300));
    let tick = ttl / 3;
    let mut written: Option<u64> = None;
    let mut merger = presence::Merger::default();
    let mut last_read = Instant::now();
    loop {
        let Some(hub) = inner.hub.upgrade() else {
            return;
        };
        let now = SystemTime::now();
        match refresh(inner, &hub, &mut written, ttl, now) {
            Ok(others) => {
                last_read = Instant::now();
                inner.peers.store(others.len(), Ordering::Relaxed);
                hub.set_remote(merger.view(others, now));
            }
            Err(e) => {
                written = None;
                tracing::debug!(error = %e, "cluster: presence not refreshed");
                if last_read.elapsed() > ttl {
                    // The others' presence has expired by now, as ours has
                    // for them.
                    inner.peers.store(0, Ordering::Relaxed);
                    hub.set_remote(merger.view(Vec::new(), now));
                    last_read = Instant::now();
                }
            }
        }
        drop(hub);
        if !pause(inner, tick) {
            break;
        }
    }
    let store = &inner.store;
    let id = &inner.config.node_id;
    let _ = store.pool.run(|c| {
        redis::pipe()
            .del(node_key(store, id))
            .zrem(nodes_key(store), id)
            .query::<()>(c)
    });
}

/// One refresh: writes this node's presence (whole when it changed, else
/// only its TTL) and returns the other live nodes' presence.
fn refresh(
    inner: &Inner,
    hub: &Hub,
    written: &mut Option<u64>,
    ttl: Duration,
    now: SystemTime,
) -> Result<Vec<crate::remote::LocalPresence>, crate::store::StoreError> {
    let store = &inner.store;
    let id = &inner.config.node_id;
    let key = node_key(store, id);
    let nodes = nodes_key(store);
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let now_ms = codec::millis(now);
    let generation = hub.generation();
    let mut pipe = redis::pipe();
    if *written == Some(generation) {
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms);
    } else {
        let text = presence::encode(&hub.local_presence());
        pipe.cmd("SET").arg(&key).arg(text).arg("PX").arg(ttl_ms);
    }
    pipe.cmd("ZADD").arg(&nodes).arg(now_ms).arg(id).ignore();
    pipe.cmd("ZREMRANGEBYSCORE")
        .arg(&nodes)
        .arg("-inf")
        .arg(now_ms.saturating_sub(ttl_ms * 10))
        .ignore();
    pipe.cmd("ZRANGEBYSCORE")
        .arg(&nodes)
        .arg(now_ms.saturating_sub(ttl_ms))
        .arg("+inf");
    let (kept, live): (Value2, Vec<String>) = store.pool.run(|c| pipe.query(c))?;
    // PEXPIRE answers 0 when the key is gone (Redis restarted without
    // it): write it whole next time.
    *written = match kept {
        Value2::Int(0) => None,
        _ => Some(generation),
    };
    let others: Vec<String> = live.into_iter().filter(|n| n != id).collect();
    if others.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = others.iter().map(|n| node_key(store, n)).collect();
    let texts: Vec<Option<String>> = store.pool.run(|c| redis::cmd("MGET").arg(&keys).query(c))?;
    Ok(texts
        .into_iter()
        .flatten()
        .map(|t| presence::decode(&t))
        .collect())
}

/// The answer of SET (`OK`) or PEXPIRE (0 or 1).
enum Value2 {
    Int(i64),
    Other,
}

impl redis::FromRedisValue for Value2 {
    fn from_redis_value(v: redis::Value) -> Result<Self, redis::ParsingError> {
        Ok(match v {
            redis::Value::Int(n) => Self::Int(n),
            _ => Self::Other,
        })
    }
}
