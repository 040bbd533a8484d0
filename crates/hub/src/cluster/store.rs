//! [`RedisStore`]: room logs in Redis streams, shared by the nodes of a
//! cluster.

use std::sync::Arc;
use std::time::SystemTime;

use redis::Connection;

use super::codec::{self, RawEntry};
use super::pool::Pool;
use super::scripts;
use crate::log::{Entry, LogLimits, Position, Recovery, RoomLog, new_epoch};
use crate::store::{LogStore, NewEntry, StoreError};

/// Room logs in Redis: one stream per room, trimmed by count, bytes and
/// age as entries are appended; offsets and epochs given by Redis, so every
/// node sees one log per room. Appends are broadcast to every node
/// ([`LogStore::broadcasts`]); a [`super::Cluster`] delivers them.
///
/// What survives a Redis restart is what Redis persisted: with
/// `appendonly yes` and `appendfsync always`, everything acknowledged.
#[derive(Debug, Clone)]
pub struct RedisStore {
    pub(crate) pool: Arc<Pool>,
    pub(crate) prefix: Arc<str>,
    limits: LogLimits,
}

impl RedisStore {
    /// A store on `url` (`redis://[:password@]host:port[/db]`) whose keys
    /// start with `prefix` (several clusters can share one Redis). Does not
    /// connect yet: a Redis that is down makes calls fail until it is up.
    pub fn new(url: &str, prefix: &str, limits: LogLimits) -> Result<Self, StoreError> {
        Ok(Self {
            pool: Arc::new(Pool::new(url)?),
            prefix: Arc::from(prefix),
            limits,
        })
    }

    /// Whether the last call reached Redis.
    pub fn is_up(&self) -> bool {
        self.pool.is_up()
    }

    /// Checks that Redis answers (and marks it up or down).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.pool
            .run(|c| redis::cmd("PING").query::<String>(c))
            .map(drop)
    }

    /// The channel broadcasts go to.
    pub(crate) fn channel(&self) -> String {
        format!("{}publish", self.prefix)
    }

    fn meta(&self, room: &str) -> String {
        format!("{}log:{room}:m", self.prefix)
    }

    fn stream(&self, room: &str) -> String {
        format!("{}log:{room}:s", self.prefix)
    }

    fn rooms_key(&self) -> String {
        format!("{}rooms", self.prefix)
    }

    /// The room's log as far as it is needed: its position and the entries
    /// after `after` (all held when `None`), in one atomic read.
    fn load(&self, room: &str, after: Option<u64>) -> Result<Option<RoomLog>, StoreError> {
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("{}-0", a + 1));
        let (meta, raw): ((Option<String>, Option<u64>), Vec<RawEntry>) =
            self.pool.run(|c: &mut Connection| {
                redis::pipe()
                    .atomic()
                    .cmd("HMGET")
                    .arg(self.meta(room))
                    .arg("e")
                    .arg("o")
                    .cmd("XRANGE")
                    .arg(self.stream(room))
                    .arg(&start)
                    .arg("+")
                    .query(c)
            })?;
        let (Some(epoch), Some(last)) = meta else {
            return Ok(None);
        };
        let entries: Vec<Entry> = raw.into_iter().filter_map(codec::entry).collect();
        Ok(Some(RoomLog::resume(epoch, last, entries, self.limits)))
    }
}

impl LogStore for RedisStore {
    fn open(&self, room: &str) -> Result<Position, StoreError> {
        let (epoch, offset): (String, u64) = self.pool.run(|c| {
            scripts::OPEN
                .key(self.meta(room))
                .key(self.rooms_key())
                .arg(new_epoch())
                .arg(room)
                .invoke(c)
        })?;
        Ok(Position { epoch, offset })
    }

    fn position(&self, room: &str) -> Result<Option<Position>, StoreError> {
        let (epoch, offset): (Option<String>, Option<u64>) = self.pool.run(|c| {
            redis::cmd("HMGET")
                .arg(self.meta(room))
                .arg("e")
                .arg("o")
                .query(c)
        })?;
        Ok(epoch
            .zip(offset)
            .map(|(epoch, offset)| Position { epoch, offset }))
    }

    fn append(&self, room: &str, entry: NewEntry) -> Result<(String, Entry), StoreError> {
        let at = codec::millis(entry.at);
        let oldest = codec::millis(SystemTime::now())
            .saturating_sub(u64::try_from(self.limits.max_age.as_millis()).unwrap_or(u64::MAX));
        let body = codec::body(
            room,
            &entry.event,
            entry.from.as_deref(),
            &entry.data,
            entry.at,
            entry.volatile,
        );
        let (epoch, offset): (String, u64) = self.pool.run(|c| {
            scripts::APPEND
                .key(self.meta(room))
                .key(self.stream(room))
                .key(self.rooms_key())
                .arg(new_epoch())
                .arg(room)
                .arg(at)
                .arg(&entry.event)
                .arg(if entry.from.is_some() { "1" } else { "0" })
                .arg(entry.from.as_deref().unwrap_or(""))
                .arg(&entry.data[..])
                .arg(self.limits.max_entries)
                .arg(self.limits.max_bytes)
                .arg(oldest)
                .arg(self.channel())
                .arg(body)
                .invoke(c)
        })?;
        Ok((
            epoch,
            Entry {
                offset,
                at: codec::time(at),
                event: entry.event,
                data: entry.data,
                from: entry.from,
            },
        ))
    }

    fn recover(
        &self,
        room: &str,
        since: &Position,
        now: SystemTime,
    ) -> Result<Recovery, StoreError> {
        match self.load(room, Some(since.offset))? {
            Some(log) => Ok(log.recover(since, now)),
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
        Ok(self
            .load(room, since)?
            .map(|log| (log.epoch().to_owned(), log.history(since, limit, now))))
    }

    fn discard_if_empty(&self, room: &str) -> Result<(), StoreError> {
        self.pool.run(|c| {
            scripts::DISCARD
                .key(self.meta(room))
                .key(self.stream(room))
                .key(self.rooms_key())
                .arg(room)
                .invoke::<i64>(c)
        })?;
        Ok(())
    }

    fn rooms(&self) -> Result<Vec<(String, Position)>, StoreError> {
        let names: Vec<String> = self
            .pool
            .run(|c| redis::cmd("SMEMBERS").arg(self.rooms_key()).query(c))?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for room in &names {
            pipe.cmd("HMGET").arg(self.meta(room)).arg("e").arg("o");
        }
        let metas: Vec<(Option<String>, Option<u64>)> = self.pool.run(|c| pipe.query(c))?;
        Ok(names
            .into_iter()
            .zip(metas)
            .filter_map(|(room, (e, o))| {
                Some((
                    room,
                    Position {
                        epoch: e?,
                        offset: o?,
                    },
                ))
            })
            .collect())
    }

    fn broadcasts(&self) -> bool {
        true
    }
}
