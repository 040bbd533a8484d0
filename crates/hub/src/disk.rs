//! Room logs on disk (`--data-dir`): an embedded redb database.
//!
//! The logs are served from memory (a [`MemoryStore`] loaded at open) and
//! written through: an append returns once its transaction is committed with
//! [`redb::Durability::Immediate`], so an acknowledged publish survives a
//! crash (even `SIGKILL` or a power cut, as far as the disk keeps its fsync
//! promise). After a restart every room keeps its epoch and its offsets
//! continue; entries the limits no longer keep are deleted as new ones come
//! in, and on load.
//!
//! Layout: table `logs` maps a room to `(epoch, last offset, first stored
//! offset)`; table `entries` maps `(room, offset)` to an encoded entry.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::log::{Entry, LogLimits, Position, Recovery, RoomLog};
use crate::store::{LogStore, MemoryStore, NewEntry, StoreError};

const LOGS: TableDefinition<'_, &str, (&str, u64, u64)> = TableDefinition::new("logs");
const ENTRIES: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("entries");

/// The file inside the data directory.
pub const FILE_NAME: &str = "history.redb";

/// Room logs kept in `DIR/history.redb`.
#[derive(Debug)]
pub struct DiskStore {
    db: Database,
    memory: MemoryStore,
}

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError::new(e)
}

impl DiskStore {
    /// Opens (or creates) the store in `dir` and loads what the limits still
    /// keep.
    pub fn open(dir: &Path, limits: LogLimits) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError(format!("creating {}: {e}", dir.display())))?;
        let path = dir.join(FILE_NAME);
        let db = Database::create(&path)
            .map_err(|e| StoreError(format!("opening {}: {e}", path.display())))?;
        let store = Self {
            db,
            memory: MemoryStore::new(limits),
        };
        store.load()?;
        Ok(store)
    }

    fn load(&self) -> Result<(), StoreError> {
        // Create the tables so that reads of a fresh file succeed.
        let txn = self.db.begin_write().map_err(err)?;
        txn.open_table(LOGS).map_err(err)?;
        txn.open_table(ENTRIES).map_err(err)?;
        txn.commit().map_err(err)?;

        let now = SystemTime::now();
        let txn = self.db.begin_read().map_err(err)?;
        let logs = txn.open_table(LOGS).map_err(err)?;
        let entries = txn.open_table(ENTRIES).map_err(err)?;
        for row in logs.iter().map_err(err)? {
            let (room, meta) = row.map_err(err)?;
            let room = room.value();
            let (epoch, last, first) = meta.value();
            let mut kept = Vec::new();
            for row in entries.range((room, first)..=(room, last)).map_err(err)? {
                let (key, value) = row.map_err(err)?;
                kept.push(decode(key.value().1, value.value())?);
            }
            let mut log = RoomLog::resume(epoch.to_owned(), last, kept, self.memory.limits());
            log.trim(now);
            self.memory.insert(room.to_owned(), log);
        }
        Ok(())
    }

    fn write(&self, durability: Durability) -> Result<redb::WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().map_err(err)?;
        txn.set_durability(durability).map_err(err)?;
        Ok(txn)
    }
}

impl LogStore for DiskStore {
    fn open(&self, room: &str) -> Result<Position, StoreError> {
        let (log, created) = self.memory.get_or_create(room);
        let log = log.lock().unwrap_or_else(|e| e.into_inner());
        let position = log.position();
        if created && position.offset == 0 {
            // Not fsynced on its own: the next append's commit makes it
            // durable, and a log nobody appended to holds nothing to lose.
            let txn = self.write(Durability::None)?;
            txn.open_table(LOGS)
                .map_err(err)?
                .insert(room, (position.epoch.as_str(), 0, 1))
                .map_err(err)?;
            txn.commit().map_err(err)?;
        }
        Ok(position)
    }

    fn position(&self, room: &str) -> Result<Option<Position>, StoreError> {
        self.memory.position(room)
    }

    fn append(&self, room: &str, entry: NewEntry) -> Result<(String, Entry), StoreError> {
        self.memory.append_with(room, entry, |log, entry| {
            let txn = self.write(Durability::Immediate)?;
            {
                let mut logs = txn.open_table(LOGS).map_err(err)?;
                let mut entries = txn.open_table(ENTRIES).map_err(err)?;
                entries
                    .insert((room, entry.offset), encode(entry).as_slice())
                    .map_err(err)?;
                let stored_first = logs
                    .get(room)
                    .map_err(err)?
                    .map_or(entry.offset, |m| m.value().2);
                let first = log.first_offset().unwrap_or(entry.offset);
                for offset in stored_first..first {
                    entries.remove((room, offset)).map_err(err)?;
                }
                logs.insert(room, (log.epoch(), entry.offset, first))
                    .map_err(err)?;
            }
            txn.commit().map_err(err)
        })
    }

    fn recover(
        &self,
        room: &str,
        since: &Position,
        now: SystemTime,
    ) -> Result<Recovery, StoreError> {
        match self.memory.position(room)? {
            Some(_) => self.memory.recover(room, since, now),
            None => Ok(Recovery::NotRecovered(self.open(room)?)),
        }
    }

    fn history(
        &self,
        room: &str,
        since: Option<u64>,
        limit: usize,
        now: SystemTime,
    ) -> Result<Option<(String, Vec<Entry>)>, StoreError> {
        self.memory.history(room, since, limit, now)
    }

    fn discard_if_empty(&self, room: &str) -> Result<(), StoreError> {
        let mut result = Ok(());
        self.memory.remove_if_empty(room, || {
            result = (|| {
                let txn = self.write(Durability::None)?;
                txn.open_table(LOGS)
                    .map_err(err)?
                    .remove(room)
                    .map_err(err)?;
                txn.commit().map_err(err)
            })();
        });
        result
    }

    fn rooms(&self) -> Result<Vec<(String, Position)>, StoreError> {
        self.memory.rooms()
    }
}

/// `at` (ms since the epoch, u64 LE) · `from` (u32 LE length, `u32::MAX`
/// for none, then UTF-8) · `event` (u32 LE length, UTF-8) · data.
fn encode(e: &Entry) -> Vec<u8> {
    let at =
        e.at.duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
    let from = e.from.as_deref().unwrap_or("");
    let mut out = Vec::with_capacity(16 + from.len() + e.event.len() + e.data.len());
    out.extend_from_slice(&at.to_le_bytes());
    match &e.from {
        Some(f) => {
            out.extend_from_slice(&(f.len() as u32).to_le_bytes());
            out.extend_from_slice(f.as_bytes());
        }
        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
    }
    out.extend_from_slice(&(e.event.len() as u32).to_le_bytes());
    out.extend_from_slice(e.event.as_bytes());
    out.extend_from_slice(&e.data);
    out
}

fn decode(offset: u64, mut b: &[u8]) -> Result<Entry, StoreError> {
    let corrupt = || StoreError(format!("corrupt entry at offset {offset}"));
    let mut take = |n: usize| -> Result<&[u8], StoreError> {
        if b.len() < n {
            return Err(corrupt());
        }
        let (head, rest) = b.split_at(n);
        b = rest;
        Ok(head)
    };
    let u32_at = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    let at = u64::from_le_bytes(take(8)?.try_into().map_err(|_| corrupt())?);
    let from = match u32_at(take(4)?) {
        u32::MAX => None,
        n => Some(text(take(n as usize)?).ok_or_else(corrupt)?),
    };
    let n = u32_at(take(4)?) as usize;
    let event = text(take(n)?).ok_or_else(corrupt)?;
    let data = Bytes::copy_from_slice(b);
    Ok(Entry {
        offset,
        at: UNIX_EPOCH + Duration::from_millis(at),
        event,
        data,
        from,
    })
}

fn text(b: &[u8]) -> Option<String> {
    std::str::from_utf8(b).ok().map(str::to_owned)
}
