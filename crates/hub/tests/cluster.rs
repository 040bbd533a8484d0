//! Hubs of several nodes over one real redis-server: publications reach
//! every node once and in offset order, presence is merged, commands are
//! answered, and a node that stops takes its users offline elsewhere.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_hub::{
    Cluster, ClusterConfig, ConnId, Hub, LogLimits, PresenceChange, Publication, RedisStore, Sink,
};

/// A protocol adapter owning every connection whose id starts with its
/// node's name, recording what the hub hands it.
struct Recorder {
    node: String,
    publications: Mutex<Vec<Arc<Publication>>>,
    presence: Mutex<Vec<(String, String, bool)>>,
}

impl Sink for Recorder {
    fn publish(&self, p: &Arc<Publication>) {
        self.publications.lock().unwrap().push(p.clone());
    }

    fn presence(&self, _conn: &ConnId, c: &PresenceChange) {
        self.presence
            .lock()
            .unwrap()
            .push((c.room.clone(), c.user.clone(), c.joined));
    }

    fn owns(&self, conn: &ConnId) -> bool {
        conn.starts_with(&self.node)
    }
}

struct Node {
    hub: Arc<Hub>,
    sink: Arc<Recorder>,
    _sink_dyn: Arc<dyn Sink>,
    cluster: Option<Cluster>,
}

impl Node {
    fn start(redis: &str, name: &str) -> Self {
        let store = RedisStore::new(redis, "t:", LogLimits::default()).unwrap();
        let hub = Arc::new(Hub::with_store(Arc::new(store.clone())));
        let sink = Arc::new(Recorder {
            node: name.to_owned(),
            publications: Mutex::default(),
            presence: Mutex::default(),
        });
        let sink_dyn: Arc<dyn Sink> = sink.clone();
        hub.add_sink(&sink_dyn);
        let me = name.to_owned();
        let handler = Arc::new(
            move |kind: &str, body: Value| json!({"node": me, "kind": kind, "body": body}),
        );
        let config = ClusterConfig::new(name).presence_ttl(Duration::from_millis(600));
        let cluster = Cluster::start(&hub, store, config, handler).unwrap();
        Self {
            hub,
            sink,
            _sink_dyn: sink_dyn,
            cluster: Some(cluster),
        }
    }

    fn offsets(&self) -> Vec<u64> {
        self.sink
            .publications
            .lock()
            .unwrap()
            .iter()
            .map(|p| p.entry.offset)
            .collect()
    }

    fn join(&self, conn: &str, user: &str, room: &str) {
        self.hub.connect(user, None);
        self.hub
            .join(&Arc::from(conn), &user.into(), room, true, None)
            .unwrap();
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_subscribed(nodes: &[&Node]) {
    wait_for("subscriptions", || {
        nodes
            .iter()
            .all(|n| n.cluster.as_ref().is_some_and(Cluster::is_up))
    });
}

#[test]
fn publications_reach_every_node_once_in_offset_order() {
    let redis = redis_server::RedisServer::start();
    let a = Node::start(&redis.url, "a");
    let b = Node::start(&redis.url, "b");
    let c = Node::start(&redis.url, "c");
    wait_subscribed(&[&a, &b, &c]);
    a.join("a1", "alice", "r");
    b.join("b1", "bob", "r");
    // Nobody in the room on c: nothing is delivered there.
    let publishers: Vec<_> = [&a.hub, &b.hub, &c.hub]
        .into_iter()
        .map(|hub| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    hub.publish("r", "m".into(), Bytes::from(i.to_string()), None, false)
                        .unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.join().unwrap();
    }
    let all: Vec<u64> = (1..=150).collect();
    wait_for("150 deliveries on a and b", || {
        a.offsets().len() >= 150 && b.offsets().len() >= 150
    });
    assert_eq!(a.offsets(), all, "a: every offset once, in order");
    assert_eq!(b.offsets(), all, "b: every offset once, in order");
    assert!(c.offsets().is_empty());
}

#[test]
fn a_node_that_missed_broadcasts_fills_the_gap_from_the_log() {
    let redis = redis_server::RedisServer::start();
    // A node without a subscription receives no broadcast at all.
    let mut deaf = Node::start(&redis.url, "d");
    deaf.cluster.take();
    deaf.join("d1", "dora", "r");
    let store = RedisStore::new(&redis.url, "t:", LogLimits::default()).unwrap();
    let other = Hub::with_store(Arc::new(store));
    let publish = |i: u64| {
        other
            .publish("r", "m".into(), Bytes::from(i.to_string()), None, false)
            .unwrap()
    };
    for i in 1..=5 {
        publish(i);
    }
    assert!(deaf.offsets().is_empty());
    deaf.hub.resync();
    assert_eq!(deaf.offsets(), [1, 2, 3, 4, 5], "resync delivers the log");
    deaf.hub.resync();
    assert_eq!(deaf.offsets(), [1, 2, 3, 4, 5], "and never twice");
    publish(6);
    let seventh = publish(7);
    deaf.hub.deliver(seventh.clone());
    assert_eq!(
        deaf.offsets(),
        [1, 2, 3, 4, 5, 6, 7],
        "a gap before a broadcast is filled first"
    );
    deaf.hub.deliver(seventh);
    assert_eq!(
        deaf.offsets().len(),
        7,
        "a broadcast seen twice is delivered once"
    );
}

#[test]
fn presence_is_merged_and_a_stopped_node_takes_its_users_offline() {
    let redis = redis_server::RedisServer::start();
    let a = Node::start(&redis.url, "a");
    let mut b = Node::start(&redis.url, "b");
    wait_subscribed(&[&a, &b]);
    a.join("a1", "alice", "r");
    b.join("b1", "bob", "r");
    b.join("b2", "alice", "r");
    let users = |n: &Node| -> HashSet<(String, usize)> {
        n.hub
            .presence("r")
            .into_iter()
            .map(|p| (p.user, p.connections))
            .collect()
    };
    let both: HashSet<(String, usize)> = [("alice".into(), 2), ("bob".into(), 1)].into();
    wait_for("presence on a", || users(&a) == both);
    wait_for("presence on b", || users(&b) == both);
    assert_eq!(a.hub.users_online(), 2);
    assert!(a.hub.user("bob").unwrap().online);
    // Alice is present on a already: b's join of her is not news on a.
    wait_for("bob's join told on a", || {
        a.sink
            .presence
            .lock()
            .unwrap()
            .contains(&("r".into(), "bob".into(), true))
    });
    assert!(
        !a.sink
            .presence
            .lock()
            .unwrap()
            .iter()
            .any(|p| p.1 == "alice"),
        "nobody is told about themselves or a user already here"
    );

    // Commands: a asks, b answers.
    let answers = a
        .cluster
        .as_ref()
        .unwrap()
        .ask("ping", json!({"n": 1}), Duration::from_secs(2));
    assert_eq!(
        answers,
        [json!({"node": "b", "kind": "ping", "body": {"n": 1}})]
    );

    // b stops: its users go offline on a.
    b.cluster.take();
    wait_for("bob offline on a", || !a.hub.user("bob").unwrap().online);
    assert_eq!(users(&a), [("alice".into(), 1)].into());
    assert!(
        a.sink
            .presence
            .lock()
            .unwrap()
            .contains(&("r".into(), "bob".into(), false))
    );
}
