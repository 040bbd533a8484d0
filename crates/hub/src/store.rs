//! Where room logs live: the [`LogStore`] trait and the in-memory store.
//!
//! The hub asks a store for a room's position, appends to it, and reads what
//! a client missed or asks for as history. Every store keeps the semantics of
//! DESIGN.md §5 (one epoch per log lifetime, offsets from 1 without gaps,
//! bounds by count, bytes and age); `tests/store_conformance.rs` runs the same
//! cases against each of them. Stores differ in what survives a restart:
//!
//! * [`MemoryStore`]: nothing (a restarted server starts new epochs);
//! * [`crate::DiskStore`] (`--data-dir`): everything acknowledged, same
//!   epochs, offsets continue;
//! * [`crate::RedisStore`] (`--redis`): shared by the nodes of a cluster,
//!   which it also broadcasts appends to; as durable as the Redis server is
//!   configured to be.
//!
//! Calls are synchronous and short; the hub makes them with the room's lock
//! held, so calls for one room never run concurrently and one room's appends
//! are delivered in offset order. Stores rely on that.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use bytes::Bytes;

use crate::log::{Entry, LogLimits, Position, Recovery, RoomLog};

/// A store failed (disk error, corrupt record). The operation that needed it
/// is refused; nothing was acknowledged.
#[derive(Debug, thiserror::Error)]
#[error("history store: {0}")]
pub struct StoreError(pub String);

impl StoreError {
    /// Wraps any error.
    pub fn new(e: impl std::fmt::Display) -> Self {
        Self(e.to_string())
    }
}

/// A message about to be appended (the store gives it its offset).
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Event name.
    pub event: String,
    /// Payload, opaque.
    pub data: Bytes,
    /// Publishing user, `None` for the admin API.
    pub from: Option<String>,
    /// When it was published.
    pub at: SystemTime,
    /// May be dropped for slow consumers (not kept: only delivery uses it).
    pub volatile: bool,
}

/// Storage of room logs.
pub trait LogStore: Send + Sync + std::fmt::Debug {
    /// The room's position, creating its log (a new epoch, offset 0) when it
    /// has none.
    fn open(&self, room: &str) -> Result<Position, StoreError>;

    /// The room's position, `None` when it has no log.
    fn position(&self, room: &str) -> Result<Option<Position>, StoreError>;

    /// Appends to the room's log (created if needed) and returns the epoch
    /// and the entry with its offset. Once this returns, the entry is as
    /// durable as the store promises.
    fn append(&self, room: &str, entry: NewEntry) -> Result<(String, Entry), StoreError>;

    /// What a client that saw up to `since` missed in `room`.
    fn recover(
        &self,
        room: &str,
        since: &Position,
        now: SystemTime,
    ) -> Result<Recovery, StoreError>;

    /// History of `room`: entries after `since` (or the newest `limit`
    /// without it), oldest first; `None` when the room has no log.
    fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
        now: SystemTime,
    ) -> Result<Option<(String, Vec<Entry>)>, StoreError>;

    /// Removes the room's log if nothing was ever appended to it.
    fn discard_if_empty(&self, room: &str) -> Result<(), StoreError>;

    /// Every room with a log, and its position.
    fn rooms(&self) -> Result<Vec<(String, Position)>, StoreError>;

    /// Whether appends are broadcast to every node sharing the store (a
    /// cluster), each of which hands them to its hub with
    /// [`crate::Hub::deliver`] in offset order. When `false` (the default)
    /// the hub delivers an append itself, at once.
    fn broadcasts(&self) -> bool {
        false
    }
}

/// Room logs in memory, bounded by [`LogLimits`].
#[derive(Debug)]
pub struct MemoryStore {
    limits: LogLimits,
    logs: RwLock<HashMap<String, Arc<Mutex<RoomLog>>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MemoryStore {
    /// An empty store whose logs keep `limits`.
    pub fn new(limits: LogLimits) -> Self {
        Self {
            limits,
            logs: RwLock::default(),
        }
    }

    /// The limits logs keep.
    pub fn limits(&self) -> LogLimits {
        self.limits
    }

    fn get(&self, room: &str) -> Option<Arc<Mutex<RoomLog>>> {
        self.logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(room)
            .cloned()
    }

    /// The room's log, and whether it was just created.
    pub(crate) fn get_or_create(&self, room: &str) -> (Arc<Mutex<RoomLog>>, bool) {
        if let Some(log) = self.get(room) {
            return (log, false);
        }
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        let mut created = false;
        let log = logs
            .entry(room.to_owned())
            .or_insert_with(|| {
                created = true;
                Arc::new(Mutex::new(RoomLog::new(self.limits)))
            })
            .clone();
        (log, created)
    }

    /// Puts a log restored from elsewhere (a disk store loading).
    pub(crate) fn insert(&self, room: String, log: RoomLog) {
        self.logs
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(room, Arc::new(Mutex::new(log)));
    }

    /// Appends under the log's lock and lets `persist` see the log (trimmed
    /// to its limits) before the lock is released; a failed `persist` takes
    /// the entry back (entries trimmed meanwhile stay trimmed in memory).
    pub(crate) fn append_with(
        &self,
        room: &str,
        entry: NewEntry,
        persist: impl FnOnce(&RoomLog, &Entry) -> Result<(), StoreError>,
    ) -> Result<(String, Entry), StoreError> {
        let (log, _) = self.get_or_create(room);
        let mut log = lock(&log);
        let appended = log
            .append(entry.event, entry.data, entry.from, entry.at)
            .clone();
        if let Err(e) = persist(&log, &appended) {
            log.take_back_last();
            return Err(e);
        }
        Ok((log.epoch().to_owned(), appended))
    }

    /// Removes a log with no entry ever and then calls `removed`, still
    /// holding the map (so no new log of that room appears meanwhile).
    pub(crate) fn remove_if_empty(&self, room: &str, removed: impl FnOnce()) {
        let mut logs = self.logs.write().unwrap_or_else(|e| e.into_inner());
        let empty = logs
            .get(room)
            .is_some_and(|log| lock(log).position().offset == 0);
        if empty {
            logs.remove(room);
            removed();
        }
    }
}

impl LogStore for MemoryStore {
    fn open(&self, room: &str) -> Result<Position, StoreError> {
        Ok(lock(&self.get_or_create(room).0).position())
    }

    fn position(&self, room: &str) -> Result<Option<Position>, StoreError> {
        Ok(self.get(room).map(|log| lock(&log).position()))
    }

    fn append(&self, room: &str, entry: NewEntry) -> Result<(String, Entry), StoreError> {
        self.append_with(room, entry, |_, _| Ok(()))
    }

    fn recover(
        &self,
        room: &str,
        since: &Position,
        now: SystemTime,
    ) -> Result<Recovery, StoreError> {
        Ok(match self.get(room) {
            Some(log) => lock(&log).recover(since, now),
            None => Recovery::NotRecovered(self.open(room)?),
        })
    }

    fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
        now: SystemTime,
    ) -> Result<Option<(String, Vec<Entry>)>, StoreError> {
        Ok(self.get(room).map(|log| {
            let log = lock(&log);
            (log.epoch().to_owned(), log.history(since, limit, now))
        }))
    }

    fn discard_if_empty(&self, room: &str) -> Result<(), StoreError> {
        self.remove_if_empty(room, || {});
        Ok(())
    }

    fn rooms(&self) -> Result<Vec<(String, Position)>, StoreError> {
        let logs: Vec<_> = self
            .logs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(logs
            .into_iter()
            .map(|(room, log)| (room, lock(&log).position()))
            .collect())
    }
}
