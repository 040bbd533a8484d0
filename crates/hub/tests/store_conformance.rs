//! The same cases against every [`LogStore`]: what DESIGN.md §5 promises of a
//! room log does not depend on where it is kept. Stores that survive a
//! restart also pass the `durable_*` cases (reopened on the same directory).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use switchboard_hub::{
    DiskStore, Entry, LogLimits, LogStore, MemoryStore, NewEntry, Position, Recovery, RedisStore,
};

fn limits() -> LogLimits {
    LogLimits::default()
        .max_entries(5)
        .max_age(Duration::from_secs(60))
        .max_bytes(1000)
}

fn new(event: &str, data: &str, at: SystemTime) -> NewEntry {
    NewEntry {
        event: event.into(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        from: Some("alice".into()),
        at,
        volatile: false,
    }
}

fn append(store: &dyn LogStore, room: &str, n: u64) -> Vec<u64> {
    (0..n)
        .map(|i| {
            store
                .append(room, new("msg", &i.to_string(), SystemTime::now()))
                .unwrap()
                .1
                .offset
        })
        .collect()
}

fn offsets(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.offset).collect()
}

fn recovered(r: Recovery) -> Vec<u64> {
    match r {
        Recovery::Recovered(entries) => offsets(&entries),
        Recovery::NotRecovered(p) => panic!("not recovered (now at {p:?})"),
    }
}

fn open_creates_a_log_once(store: &dyn LogStore) {
    assert_eq!(store.position("r").unwrap(), None);
    let p = store.open("r").unwrap();
    assert_eq!(p.offset, 0);
    assert!(!p.epoch.is_empty());
    assert_eq!(store.open("r").unwrap(), p, "the same log the second time");
    assert_eq!(store.position("r").unwrap(), Some(p.clone()));
    assert_ne!(
        store.open("other").unwrap().epoch,
        p.epoch,
        "one epoch per log"
    );
}

fn appends_get_consecutive_offsets_in_one_epoch(store: &dyn LogStore) {
    let epoch = store.open("r").unwrap().epoch;
    let t = SystemTime::now();
    let (e1, first) = store.append("r", new("a", "1", t)).unwrap();
    let (e2, second) = store.append("r", new("b", "2", t)).unwrap();
    assert_eq!((e1.as_str(), e2.as_str()), (epoch.as_str(), epoch.as_str()));
    assert_eq!((first.offset, second.offset), (1, 2));
    assert_eq!(second.event, "b");
    assert_eq!(&second.data[..], b"2");
    assert_eq!(second.from.as_deref(), Some("alice"));
    assert_eq!(store.position("r").unwrap().unwrap().offset, 2);
    // Appending creates the log when it has none.
    let (_, e) = store.append("fresh", new("a", "", t)).unwrap();
    assert_eq!(e.offset, 1);
}

fn recovery_gives_exactly_what_was_missed(store: &dyn LogStore) {
    append(store, "r", 4);
    let epoch = store.position("r").unwrap().unwrap().epoch;
    let now = SystemTime::now();
    let at = |offset| Position {
        epoch: epoch.clone(),
        offset,
    };
    assert_eq!(
        recovered(store.recover("r", &at(1), now).unwrap()),
        [2, 3, 4]
    );
    assert_eq!(
        recovered(store.recover("r", &at(0), now).unwrap()),
        [1, 2, 3, 4]
    );
    assert!(recovered(store.recover("r", &at(4), now).unwrap()).is_empty());
    for lost in [
        at(9),
        Position {
            epoch: "another".into(),
            offset: 1,
        },
    ] {
        match store.recover("r", &lost, now).unwrap() {
            Recovery::NotRecovered(p) => assert_eq!(p, at(4)),
            Recovery::Recovered(e) => panic!("{lost:?} recovered {:?}", offsets(&e)),
        }
    }
    // An unknown room cannot recover anything.
    assert!(matches!(
        store.recover("unknown", &at(1), now).unwrap(),
        Recovery::NotRecovered(Position { offset: 0, .. })
    ));
}

fn history_is_oldest_first_with_limit_and_since(store: &dyn LogStore) {
    append(store, "r", 4);
    let now = SystemTime::now();
    let (_, newest) = store.history("r", None, 2, now).unwrap().unwrap();
    assert_eq!(offsets(&newest), [3, 4]);
    let (_, after) = store.history("r", Some(1), 2, now).unwrap().unwrap();
    assert_eq!(offsets(&after), [2, 3]);
    assert_eq!(store.history("none", None, 10, now).unwrap(), None);
}

fn count_limit_trims_and_trimmed_is_not_recoverable(store: &dyn LogStore) {
    append(store, "r", 8);
    let p = store.position("r").unwrap().unwrap();
    assert_eq!(p.offset, 8);
    let now = SystemTime::now();
    let (_, kept) = store.history("r", None, 100, now).unwrap().unwrap();
    assert_eq!(offsets(&kept), [4, 5, 6, 7, 8]);
    let since = |offset| Position {
        epoch: p.epoch.clone(),
        offset,
    };
    assert_eq!(
        recovered(store.recover("r", &since(3), now).unwrap()),
        [4, 5, 6, 7, 8]
    );
    assert!(matches!(
        store.recover("r", &since(2), now).unwrap(),
        Recovery::NotRecovered(_)
    ));
}

fn byte_and_age_limits_apply(store: &dyn LogStore) {
    let old = SystemTime::now() - Duration::from_secs(120);
    store.append("aged", new("m", "old", old)).unwrap();
    store
        .append("aged", new("m", "new", SystemTime::now()))
        .unwrap();
    let (_, kept) = store
        .history("aged", None, 10, SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(offsets(&kept), [2], "the expired entry is not served");

    let big = "x".repeat(400);
    for _ in 0..3 {
        store
            .append("big", new("m", &big, SystemTime::now()))
            .unwrap();
    }
    let (_, kept) = store
        .history("big", None, 10, SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(offsets(&kept), [2, 3], "at most 1000 bytes of data");
}

fn only_empty_logs_are_discarded(store: &dyn LogStore) {
    store.open("empty").unwrap();
    append(store, "used", 1);
    store.discard_if_empty("empty").unwrap();
    store.discard_if_empty("used").unwrap();
    store.discard_if_empty("never").unwrap();
    assert_eq!(store.position("empty").unwrap(), None);
    assert_eq!(store.position("used").unwrap().unwrap().offset, 1);
    let rooms: Vec<String> = store.rooms().unwrap().into_iter().map(|r| r.0).collect();
    assert_eq!(rooms, ["used"]);
}

macro_rules! conformance {
    ($make:expr, $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let (_guard, store) = $make;
                super::$case(&*store);
            }
        )*
    };
}

macro_rules! all_cases {
    ($make:expr) => {
        conformance!(
            $make,
            open_creates_a_log_once,
            appends_get_consecutive_offsets_in_one_epoch,
            recovery_gives_exactly_what_was_missed,
            history_is_oldest_first_with_limit_and_since,
            count_limit_trims_and_trimmed_is_not_recoverable,
            byte_and_age_limits_apply,
            only_empty_logs_are_discarded,
        );
    };
}

mod memory {
    use super::*;
    all_cases!(((), Arc::new(MemoryStore::new(limits()))));
}

fn disk() -> (tempfile::TempDir, Arc<DiskStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(DiskStore::open(dir.path(), limits()).unwrap());
    (dir, store)
}

mod disk {
    all_cases!(super::disk());
}

// Durable stores: what was appended is there after a restart, same epoch,
// offsets continue; trimming and discarding are kept too.

#[test]
fn durable_disk_keeps_epochs_and_continues_offsets() {
    let (dir, store) = disk();
    store.open("empty").unwrap();
    store.open("discarded").unwrap();
    store.discard_if_empty("discarded").unwrap();
    append(&*store, "r", 3);
    let before = store.position("r").unwrap().unwrap();
    let empty = store.position("empty").unwrap().unwrap();
    drop(store);

    let store = DiskStore::open(dir.path(), limits()).unwrap();
    assert_eq!(store.position("r").unwrap(), Some(before.clone()));
    assert_eq!(store.position("discarded").unwrap(), None);
    let since = Position {
        epoch: before.epoch.clone(),
        offset: 1,
    };
    assert_eq!(
        recovered(store.recover("r", &since, SystemTime::now()).unwrap()),
        [2, 3]
    );
    let (epoch, next) = store.append("r", new("m", "4", SystemTime::now())).unwrap();
    assert_eq!((epoch, next.offset), (before.epoch, 4));
    let (_, all) = store
        .history("r", None, 10, SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(offsets(&all), [1, 2, 3, 4]);
    assert_eq!(&all[0].data[..], b"0");
    assert_eq!(all[0].from.as_deref(), Some("alice"));
    assert_eq!(all[0].event, "msg");
    // An empty log's epoch is kept once a later append made it durable.
    assert_eq!(store.position("empty").unwrap(), Some(empty));
}

#[test]
fn durable_disk_keeps_only_what_the_limits_keep() {
    let (dir, store) = disk();
    append(&*store, "r", 12);
    drop(store);
    let store = DiskStore::open(dir.path(), limits().max_entries(3)).unwrap();
    let (_, kept) = store
        .history("r", None, 100, SystemTime::now())
        .unwrap()
        .unwrap();
    assert_eq!(
        offsets(&kept),
        [10, 11, 12],
        "reopened with a smaller limit"
    );
    assert_eq!(store.position("r").unwrap().unwrap().offset, 12);
}

// The Redis store, against a real redis-server started for these tests
// (Debian's `redis-server`; the test command installs it).

#[path = "support/redis_server.rs"]
mod redis_server;

/// One redis-server per test (tests run in parallel), keys under a prefix.
fn redis() -> (redis_server::RedisServer, Arc<RedisStore>) {
    let server = redis_server::RedisServer::start();
    let store = Arc::new(RedisStore::new(&server.url, "test:", limits()).unwrap());
    (server, store)
}

mod redis_store {
    all_cases!(super::redis());
}

#[test]
fn durable_redis_is_shared_by_every_node() {
    let (server, a) = redis();
    let b = RedisStore::new(&server.url, "test:", limits()).unwrap();
    let other_cluster = RedisStore::new(&server.url, "other:", limits()).unwrap();
    append(&*a, "r", 2);
    let (epoch, e) = b.append("r", new("m", "x", SystemTime::now())).unwrap();
    assert_eq!(e.offset, 3, "offsets continue across nodes");
    assert_eq!(a.position("r").unwrap().unwrap().epoch, epoch);
    let since = Position { epoch, offset: 1 };
    assert_eq!(
        recovered(a.recover("r", &since, SystemTime::now()).unwrap()),
        [2, 3]
    );
    assert_eq!(
        other_cluster.position("r").unwrap(),
        None,
        "prefixes separate clusters"
    );
}

#[test]
fn redis_down_is_an_error_not_a_hang_and_service_resumes() {
    let (mut server, store) = redis();
    append(&*store, "r", 1);
    assert!(store.is_up());
    server.kill();
    let started = std::time::Instant::now();
    assert!(store.append("r", new("m", "x", SystemTime::now())).is_err());
    assert!(store.position("r").is_err());
    assert!(!store.is_up());
    assert!(started.elapsed() < Duration::from_secs(5), "fails fast");
    server.restart();
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while store.ping().is_err() {
        assert!(std::time::Instant::now() < until, "the store reconnects");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(store.is_up());
    // This redis-server keeps nothing on disk: the log begins again.
    let (_, e) = store.append("r", new("m", "x", SystemTime::now())).unwrap();
    assert_eq!(e.offset, 1);
}
