//! Token lifetimes: each connection's [`Expiry`], and the [`ExpiryQueue`]
//! that finds the connections due for a `refresh` request or a
//! token-expired kick without visiting the others.
//!
//! A connection whose token expires is queued under the second of its next
//! step: `exp − REFRESH_AHEAD` (ask for a fresh token), then `exp` (kick).
//! The once-a-second check takes only what is due; a server whose tokens
//! never expire (or that has no JWT at all) queues nothing and checks
//! nothing. Every change to a queued expiry happens under the queue's lock,
//! so an entry is found stale (the token was renewed, or the connection
//! left) by comparing its second with the one the expiry recorded.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Seconds before `exp` at which a client is asked for a fresh token.
pub(crate) const REFRESH_AHEAD: u64 = 30;

/// A connection's token lifetime: when it expires, and whether the client
/// has been asked to refresh.
#[derive(Debug, Default)]
pub(crate) struct Expiry {
    /// `exp` in Unix seconds; 0 for a connection whose token never expires.
    at: AtomicU64,
    asked: AtomicBool,
    /// The second of this expiry's live entry in its queue; 0 for none.
    queued: AtomicU64,
}

/// What an expiry check calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    Nothing,
    /// Push `refresh` (once per token).
    Refresh,
    /// The token expired: disconnect with the token-expired reason.
    Expired,
}

impl Expiry {
    pub(crate) fn new(expires: Option<u64>) -> Self {
        let e = Self::default();
        e.set(expires);
        e
    }

    /// A fresh token was accepted.
    fn set(&self, expires: Option<u64>) {
        self.at.store(expires.unwrap_or(0), Relaxed);
        self.asked.store(false, Relaxed);
    }

    fn check(&self, now: u64) -> Due {
        let at = self.at.load(Relaxed);
        if at == 0 {
            Due::Nothing
        } else if now >= at {
            Due::Expired
        } else if now + REFRESH_AHEAD >= at && !self.asked.swap(true, Relaxed) {
            Due::Refresh
        } else {
            Due::Nothing
        }
    }

    /// The second at which [`Expiry::check`] may next call for something;
    /// `None` for a token that never expires.
    fn next_step(&self) -> Option<u64> {
        let at = self.at.load(Relaxed);
        if at == 0 {
            None
        } else if self.asked.load(Relaxed) {
            Some(at)
        } else {
            // At least 1: 0 marks "not queued".
            Some(at.saturating_sub(REFRESH_AHEAD).max(1))
        }
    }
}

/// The connections of one protocol whose token expires, by the second of
/// their next step; `K` names a connection (its id).
#[derive(Debug)]
pub(crate) struct ExpiryQueue<K> {
    due: Mutex<BTreeSet<(u64, K)>>,
}

impl<K> Default for ExpiryQueue<K> {
    fn default() -> Self {
        Self {
            due: Mutex::new(BTreeSet::new()),
        }
    }
}

impl<K: Ord + Clone> ExpiryQueue<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u64, K)>> {
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection opened with this token lifetime.
    pub(crate) fn watch(&self, key: &K, expiry: &Expiry) {
        let mut due = self.lock();
        queue(&mut due, key, expiry);
    }

    /// The connection ended: its entry goes.
    pub(crate) fn forget(&self, key: &K, expiry: &Expiry) {
        let mut due = self.lock();
        let second = expiry.queued.swap(0, Relaxed);
        if second != 0 {
            due.remove(&(second, key.clone()));
        }
    }

    /// The client sent a fresh token, valid until `expires`.
    pub(crate) fn renew(&self, key: &K, expiry: &Expiry, expires: Option<u64>) {
        let mut due = self.lock();
        let second = expiry.queued.swap(0, Relaxed);
        if second != 0 {
            due.remove(&(second, key.clone()));
        }
        expiry.set(expires);
        queue(&mut due, key, expiry);
    }

    /// Takes the entries due by `now` (Unix seconds) out of the queue, to be
    /// looked up and passed to [`ExpiryQueue::step`] one by one.
    pub(crate) fn take_due(&self, now: u64) -> Vec<(u64, K)> {
        let mut due = self.lock();
        let mut taken = Vec::new();
        while due.first().is_some_and(|(second, _)| *second <= now) {
            taken.extend(due.pop_first());
        }
        taken
    }

    /// What a taken entry calls for, its connection's `expiry` in hand; the
    /// connection is queued again for its next step. An entry made stale
    /// by a renewal (which queued the connection afresh) calls for nothing.
    pub(crate) fn step(&self, (second, key): (u64, K), expiry: &Expiry, now: u64) -> Due {
        let mut due = self.lock();
        if expiry.queued.load(Relaxed) != second {
            return Due::Nothing;
        }
        expiry.queued.store(0, Relaxed);
        let what = expiry.check(now);
        if what != Due::Expired {
            queue(&mut due, &key, expiry);
        }
        what
    }

    /// Entries queued.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Queues `key` for its expiry's next step, if it has one (the lock held).
fn queue<K: Ord + Clone>(due: &mut BTreeSet<(u64, K)>, key: &K, expiry: &Expiry) {
    if let Some(second) = expiry.next_step() {
        due.insert((second, key.clone()));
        expiry.queued.store(second, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs one second of checks the way the server does: what each due
    /// connection is told.
    fn tick(q: &ExpiryQueue<u32>, conns: &[(u32, &Expiry)], now: u64) -> Vec<(u32, Due)> {
        let mut told = Vec::new();
        for entry in q.take_due(now) {
            let key = entry.1;
            if let Some((_, e)) = conns.iter().find(|(k, _)| *k == key) {
                let what = q.step(entry, e, now);
                if what != Due::Nothing {
                    told.push((key, what));
                }
            }
        }
        told
    }

    #[test]
    fn asks_once_then_kicks_at_exp() {
        let q = ExpiryQueue::default();
        let e = Expiry::new(Some(1_000));
        q.watch(&7, &e);
        let conns = [(7, &e)];
        assert!(tick(&q, &conns, 969).is_empty());
        assert_eq!(tick(&q, &conns, 970), [(7, Due::Refresh)]);
        assert!(tick(&q, &conns, 971).is_empty());
        assert!(tick(&q, &conns, 999).is_empty());
        assert_eq!(tick(&q, &conns, 1_000), [(7, Due::Expired)]);
        assert_eq!(q.len(), 0, "an expired connection is not queued again");
    }

    #[test]
    fn a_late_check_still_asks_then_kicks() {
        let q = ExpiryQueue::default();
        let e = Expiry::new(Some(1_000));
        q.watch(&1, &e);
        // The first check after a stall past `exp − 30`.
        assert_eq!(tick(&q, &[(1, &e)], 985), [(1, Due::Refresh)]);
        // After a stall past `exp` itself.
        assert_eq!(tick(&q, &[(1, &e)], 1_010), [(1, Due::Expired)]);
    }

    #[test]
    fn tokens_that_never_expire_are_not_queued() {
        let q = ExpiryQueue::default();
        let e = Expiry::new(None);
        q.watch(&1, &e);
        assert_eq!(q.len(), 0);
        assert!(tick(&q, &[(1, &e)], u64::MAX).is_empty());
    }

    #[test]
    fn a_renewed_token_moves_the_entry() {
        let q = ExpiryQueue::default();
        let e = Expiry::new(Some(1_000));
        q.watch(&1, &e);
        assert_eq!(tick(&q, &[(1, &e)], 970), [(1, Due::Refresh)]);
        q.renew(&1, &e, Some(2_000));
        assert_eq!(q.len(), 1);
        assert!(
            tick(&q, &[(1, &e)], 1_000).is_empty(),
            "the old exp no longer kicks"
        );
        assert_eq!(tick(&q, &[(1, &e)], 1_970), [(1, Due::Refresh)]);
        // A token without `exp` ends the watch.
        q.renew(&1, &e, None);
        assert_eq!(q.len(), 0);
        assert!(tick(&q, &[(1, &e)], 5_000).is_empty());
    }

    #[test]
    fn a_renewal_between_take_and_step_wins() {
        let q = ExpiryQueue::default();
        let e = Expiry::new(Some(1_000));
        q.watch(&1, &e);
        let taken = q.take_due(1_000);
        assert_eq!(taken.len(), 1);
        q.renew(&1, &e, Some(3_000));
        for entry in taken {
            assert_eq!(q.step(entry, &e, 1_000), Due::Nothing, "stale entry");
        }
        assert_eq!(q.len(), 1, "only the renewal's entry is left");
        assert_eq!(tick(&q, &[(1, &e)], 2_970), [(1, Due::Refresh)]);
    }

    #[test]
    fn a_connection_that_left_leaves_no_entry() {
        let q = ExpiryQueue::default();
        let (a, b) = (Expiry::new(Some(1_000)), Expiry::new(Some(1_000)));
        q.watch(&1, &a);
        q.watch(&2, &b);
        q.forget(&1, &a);
        assert_eq!(q.len(), 1);
        assert_eq!(tick(&q, &[(1, &a), (2, &b)], 970), [(2, Due::Refresh)]);
        q.forget(&2, &b);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn only_due_entries_are_taken() {
        let q = ExpiryQueue::default();
        let es: Vec<Expiry> = (0..100).map(|i| Expiry::new(Some(1_000 + i))).collect();
        for (i, e) in es.iter().enumerate() {
            q.watch(&(i as u32), e);
        }
        assert_eq!(q.take_due(979).len(), 10, "seconds 970 to 979");
        assert_eq!(q.len(), 90);
    }
}
