//! One room's history log: epoch + offsets, bounded by count and age.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

/// A point in a room's history: after this offset of this epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    /// The log's lifetime id.
    pub epoch: String,
    /// The offset of the last entry seen (0: nothing seen yet).
    pub offset: u64,
}

/// One published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Offset in the room's log; the first publish gets 1.
    pub offset: u64,
    /// When it was published.
    pub at: SystemTime,
    /// Event name.
    pub event: String,
    /// Payload, opaque to the hub (JSON text for both protocols).
    pub data: Bytes,
    /// Publishing user, `None` for the admin API.
    pub from: Option<String>,
}

/// How much history a room keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogLimits {
    /// Most entries kept (oldest dropped first). Default 1000.
    pub max_entries: usize,
    /// Oldest entry kept. Default 10 minutes.
    pub max_age: Duration,
    /// Most bytes of data kept (the newest entry is always kept). Default
    /// 16 MiB.
    pub max_bytes: usize,
}

impl Default for LogLimits {
    fn default() -> Self {
        Self {
            max_entries: 1000,
            max_age: Duration::from_secs(600),
            max_bytes: 16 << 20,
        }
    }
}

impl LogLimits {
    /// Sets the most entries kept.
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// Sets the most bytes of data kept.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets the oldest entry kept.
    pub fn max_age(mut self, d: Duration) -> Self {
        self.max_age = d;
        self
    }
}

/// The answer to a recovery request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// Every entry after the requested offset, oldest first (possibly none).
    Recovered(Vec<Entry>),
    /// The log no longer holds what follows the position (other epoch, or
    /// trimmed): the client must refetch state; here is where the log is now.
    NotRecovered(Position),
}

/// One room's append-only log.
#[derive(Debug, Clone)]
pub struct RoomLog {
    epoch: String,
    /// Offset of the newest entry ever appended (0: none yet).
    last: u64,
    entries: VecDeque<Entry>,
    /// Data bytes in `entries`.
    bytes: usize,
    limits: LogLimits,
}

/// A fresh random epoch: 16 hex digits.
pub fn new_epoch() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl RoomLog {
    /// An empty log with a new random epoch.
    pub fn new(limits: LogLimits) -> Self {
        Self::resume(new_epoch(), 0, Vec::new(), limits)
    }

    /// A log restored from storage: its epoch, the last offset ever given, and
    /// the entries still kept (oldest first).
    pub fn resume(epoch: String, last: u64, entries: Vec<Entry>, limits: LogLimits) -> Self {
        let bytes = entries.iter().map(|e| e.data.len()).sum();
        Self {
            epoch,
            last,
            entries: entries.into(),
            bytes,
            limits,
        }
    }

    /// The epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The current position (after the newest entry).
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.last,
        }
    }

    /// Appends a message and returns its offset.
    pub fn append(
        &mut self,
        event: String,
        data: Bytes,
        from: Option<String>,
        now: SystemTime,
    ) -> &Entry {
        self.last += 1;
        self.bytes += data.len();
        self.entries.push_back(Entry {
            offset: self.last,
            at: now,
            event,
            data,
            from,
        });
        self.trim(now);
        // The entry just pushed survives trimming: max_entries is at least 1.
        &self.entries[self.entries.len() - 1]
    }

    /// Takes back the entry just appended (its store failed to keep it): the
    /// offset is given again by the next append.
    pub fn take_back_last(&mut self) {
        if let Some(e) = self.entries.pop_back() {
            self.bytes -= e.data.len();
            self.last = e.offset - 1;
        }
    }

    /// Offset of the oldest entry held (within the count and bytes limits;
    /// age is applied on reading), `None` when none is.
    pub fn first_offset(&self) -> Option<u64> {
        self.entries.front().map(|e| e.offset)
    }

    /// Drops entries beyond the count or age limit.
    pub fn trim(&mut self, now: SystemTime) {
        while self.entries.len() > 1
            && (self.entries.len() > self.limits.max_entries
                || self.bytes > self.limits.max_bytes
                || self.entries.front().is_some_and(|e| {
                    now.duration_since(e.at)
                        .is_ok_and(|age| age > self.limits.max_age)
                }))
        {
            if let Some(e) = self.entries.pop_front() {
                self.bytes -= e.data.len();
            }
        }
    }

    /// What a client that saw up to `since` has missed.
    pub fn recover(&self, since: &Position, now: SystemTime) -> Recovery {
        if since.epoch != self.epoch || since.offset > self.last {
            return Recovery::NotRecovered(self.position());
        }
        if since.offset == self.last {
            return Recovery::Recovered(Vec::new());
        }
        // The first entry still held must directly follow `since`.
        match self.live(now).next() {
            Some(first) if first.offset <= since.offset + 1 => Recovery::Recovered(
                self.live(now)
                    .filter(|e| e.offset > since.offset)
                    .cloned()
                    .collect(),
            ),
            _ => Recovery::NotRecovered(self.position()),
        }
    }

    /// History: entries after `since` (or the newest `limit` without it),
    /// oldest first, at most `limit`.
    pub fn history(&self, since: Option<u64>, limit: usize, now: SystemTime) -> Vec<Entry> {
        match since {
            Some(after) => self
                .live(now)
                .filter(|e| e.offset > after)
                .take(limit)
                .cloned()
                .collect(),
            None => {
                let skip = self.live(now).count().saturating_sub(limit);
                self.live(now).skip(skip).cloned().collect()
            }
        }
    }

    /// Entries within the age limit, oldest first.
    fn live(&self, now: SystemTime) -> impl Iterator<Item = &Entry> {
        let max_age = self.limits.max_age;
        self.entries
            .iter()
            .filter(move |e| now.duration_since(e.at).map_or(true, |age| age <= max_age))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(max_entries: usize, max_age_s: u64) -> RoomLog {
        RoomLog::new(
            LogLimits::default()
                .max_entries(max_entries)
                .max_age(Duration::from_secs(max_age_s)),
        )
    }

    fn publish(l: &mut RoomLog, n: u64, at: SystemTime) {
        for i in 0..n {
            l.append("msg".into(), Bytes::from(i.to_string()), None, at);
        }
    }

    #[test]
    fn offsets_start_at_one_and_increase() {
        let t = SystemTime::now();
        let mut l = log(10, 60);
        assert_eq!(l.append("a".into(), Bytes::new(), None, t).offset, 1);
        assert_eq!(
            l.append("b".into(), Bytes::new(), Some("u".into()), t)
                .offset,
            2
        );
        assert_eq!(l.position().offset, 2);
    }

    #[test]
    fn recovers_exactly_what_was_missed() {
        let t = SystemTime::now();
        let mut l = log(100, 60);
        publish(&mut l, 5, t);
        let since = Position {
            epoch: l.epoch().into(),
            offset: 2,
        };
        let Recovery::Recovered(missed) = l.recover(&since, t) else {
            panic!()
        };
        assert_eq!(
            missed.iter().map(|e| e.offset).collect::<Vec<_>>(),
            vec![3, 4, 5]
        );
        let at_end = Position {
            epoch: l.epoch().into(),
            offset: 5,
        };
        assert_eq!(l.recover(&at_end, t), Recovery::Recovered(vec![]));
        let from_start = Position {
            epoch: l.epoch().into(),
            offset: 0,
        };
        let Recovery::Recovered(all) = l.recover(&from_start, t) else {
            panic!()
        };
        assert_eq!(all.len(), 5);
    }

    #[test]
    fn other_epoch_future_offset_or_trimmed_history_is_not_recovered() {
        let t = SystemTime::now();
        let mut l = log(3, 60);
        publish(&mut l, 10, t);
        let here = l.position();
        for since in [
            Position {
                epoch: "other".into(),
                offset: 9,
            },
            Position {
                epoch: l.epoch().into(),
                offset: 11,
            },
            Position {
                epoch: l.epoch().into(),
                offset: 6,
            },
        ] {
            assert_eq!(
                l.recover(&since, t),
                Recovery::NotRecovered(here.clone()),
                "{since:?}"
            );
        }
        // Offset 7 is the last one trimmed: 8, 9, 10 are all there.
        let Recovery::Recovered(m) = l.recover(
            &Position {
                epoch: l.epoch().into(),
                offset: 7,
            },
            t,
        ) else {
            panic!()
        };
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn age_limit_expires_entries() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut l = log(100, 60);
        publish(&mut l, 3, t0);
        publish(&mut l, 2, t0 + Duration::from_secs(50));
        let later = t0 + Duration::from_secs(100);
        assert_eq!(l.history(None, 100, later).len(), 2);
        let since = Position {
            epoch: l.epoch().into(),
            offset: 1,
        };
        assert!(matches!(
            l.recover(&since, later),
            Recovery::NotRecovered(_)
        ));
        let since = Position {
            epoch: l.epoch().into(),
            offset: 3,
        };
        assert!(matches!(l.recover(&since, later), Recovery::Recovered(m) if m.len() == 2));
    }

    #[test]
    fn history_is_oldest_first_with_limit_semantics() {
        let t = SystemTime::now();
        let mut l = log(100, 60);
        publish(&mut l, 10, t);
        let newest: Vec<u64> = l.history(None, 3, t).iter().map(|e| e.offset).collect();
        assert_eq!(newest, vec![8, 9, 10]);
        let after: Vec<u64> = l.history(Some(4), 3, t).iter().map(|e| e.offset).collect();
        assert_eq!(after, vec![5, 6, 7]);
    }

    #[test]
    fn resumed_logs_keep_epoch_and_continue_offsets() {
        let t = SystemTime::now();
        let mut l = log(100, 60);
        publish(&mut l, 4, t);
        let epoch = l.epoch().to_owned();
        let kept = l.history(None, 100, t);
        let mut again = RoomLog::resume(epoch.clone(), 4, kept, LogLimits::default());
        assert_eq!(again.append("x".into(), Bytes::new(), None, t).offset, 5);
        let since = Position { epoch, offset: 2 };
        assert!(matches!(again.recover(&since, t), Recovery::Recovered(m) if m.len() == 3));
    }

    #[test]
    fn bytes_are_bounded_but_the_newest_entry_stays() {
        let mut l = RoomLog::new(LogLimits::default().max_bytes(10));
        let now = SystemTime::now();
        for i in 0..5u8 {
            l.append("m".into(), Bytes::from(vec![i; 4]), None, now);
        }
        let kept: Vec<u64> = l.history(None, 100, now).iter().map(|e| e.offset).collect();
        assert_eq!(kept, [4, 5], "8 bytes fit in 10, 12 do not");
        l.append("big".into(), Bytes::from(vec![0; 100]), None, now);
        let kept: Vec<u64> = l.history(None, 100, now).iter().map(|e| e.offset).collect();
        assert_eq!(kept, [6], "an entry over the limit is still kept alone");
    }
}
