//! Connection state recovery: broadcasts kept with offsets, and the sessions
//! of sockets whose connection dropped, for `max_disconnection_duration`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::frames::Frames;

/// Recovery settings (the reference server's `connectionStateRecovery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecoveryConfig {
    /// How long a dropped socket's session and the broadcasts it may miss are
    /// kept (default 2 minutes).
    pub max_disconnection_duration: Duration,
    /// Skip middlewares when a session is recovered (default true).
    pub skip_middlewares: bool,
    /// Most broadcasts kept per namespace, whatever their age (default
    /// 100,000): memory stays bounded under any publish rate.
    pub max_packets: usize,
    /// Most bytes of broadcasts kept per namespace (default 64 MiB).
    pub max_bytes: usize,
    /// Most bytes replayed to one reconnecting socket (default 4 MiB, half
    /// the session's default `max_buffered`); a socket that missed more
    /// starts afresh (`recovered: false`) instead of overflowing at once.
    pub max_replay_bytes: usize,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            max_disconnection_duration: Duration::from_secs(120),
            skip_middlewares: true,
            max_packets: 100_000,
            max_bytes: 64 << 20,
            max_replay_bytes: 4 << 20,
        }
    }
}

impl RecoveryConfig {
    /// Sets how long dropped sessions and broadcasts are kept.
    pub fn max_disconnection_duration(mut self, d: Duration) -> Self {
        self.max_disconnection_duration = d;
        self
    }

    /// Sets whether middlewares are skipped for recovered sessions.
    pub fn skip_middlewares(mut self, skip: bool) -> Self {
        self.skip_middlewares = skip;
        self
    }

    /// Sets the most bytes of broadcasts kept per namespace.
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// Sets the most broadcasts kept per namespace.
    pub fn max_packets(mut self, n: usize) -> Self {
        self.max_packets = n;
        self
    }
}

struct Stored {
    offset: u64,
    at: Instant,
    rooms: Vec<Arc<str>>,
    except: Vec<Arc<str>>,
    frames: Frames,
}

/// A dropped socket's state.
pub(crate) struct Persisted {
    pub(crate) sid: Arc<str>,
    pub(crate) rooms: Vec<Arc<str>>,
    pub(crate) at: Instant,
    pub(crate) data: Option<super::socket::SocketData>,
}

pub(crate) struct Recovery {
    pub(crate) config: RecoveryConfig,
    /// Prefix of every offset: offsets of another process never match.
    epoch: Box<str>,
    /// Key of the private ids (`pid`s): a socket's pid is derived from its
    /// id, so sockets do not store it.
    key: [u8; 32],
    log: Mutex<Log>,
    sessions: Mutex<Sessions>,
}

/// Dropped sessions by pid, and their pids in the order they were kept.
#[derive(Default)]
struct Sessions {
    by_pid: HashMap<Arc<str>, Persisted>,
    order: VecDeque<(Instant, Arc<str>)>,
}

impl Sessions {
    /// Drops the sessions kept longer than `max`, oldest first (O(1)
    /// amortized per session); returns whether any went.
    fn expire(&mut self, max: Duration) -> bool {
        let mut any = false;
        while let Some((at, _)) = self.order.front()
            && at.elapsed() > max
        {
            if let Some((at, old)) = self.order.pop_front()
                && self.by_pid.get(&old).is_some_and(|s| s.at == at)
            {
                self.by_pid.remove(&old);
            }
            any = true;
        }
        any
    }
}

struct Log {
    next: u64,
    packets: VecDeque<Stored>,
    bytes: usize,
}

impl Frames {
    fn size(&self) -> usize {
        self.text.as_bytes().len() + self.binary.iter().map(|b| b.len()).sum::<usize>()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Recovery {
    pub(crate) fn new(config: RecoveryConfig) -> Self {
        let epoch: u32 = rand::random();
        Self {
            config,
            epoch: format!("{epoch:08x}-").into_boxed_str(),
            key: rand::random(),
            log: Mutex::new(Log {
                next: 1,
                packets: VecDeque::new(),
                bytes: 0,
            }),
            sessions: Mutex::default(),
        }
    }

    /// The private id of socket `sid`: HMAC-SHA1 under this process's key,
    /// 20 URL-safe characters. Only the socket's own client learns it (in its
    /// CONNECT reply) and presents it to recover the session.
    pub(crate) fn pid(&self, sid: &str) -> String {
        use base64::Engine as _;
        use sha1::{Digest, Sha1};
        let mut inner_key = [0x36u8; 64];
        let mut outer_key = [0x5cu8; 64];
        for (i, k) in self.key.iter().enumerate() {
            inner_key[i] ^= k;
            outer_key[i] ^= k;
        }
        let inner = Sha1::new()
            .chain_update(inner_key)
            .chain_update(sid)
            .finalize();
        let mac = Sha1::new()
            .chain_update(outer_key)
            .chain_update(inner)
            .finalize();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac[..15])
    }

    fn format(&self, n: u64) -> String {
        format!("{}{n}", self.epoch)
    }

    fn parse(&self, offset: &str) -> Option<u64> {
        offset.strip_prefix(&*self.epoch)?.parse().ok()
    }

    /// Assigns the next offset, builds the frames with it, keeps them, and
    /// hands them to `deliver` before the next offset can be assigned: every
    /// client receives offsets in order (a client that saw offset k+1 before
    /// k would never get k back after a reconnect).
    pub(crate) fn record(
        &self,
        rooms: Vec<Arc<str>>,
        except: Vec<Arc<str>>,
        build: impl FnOnce(String) -> Frames,
        deliver: impl FnOnce(&Frames),
    ) {
        let now = Instant::now();
        let mut log = lock(&self.log);
        let offset = log.next;
        log.next += 1;
        let frames = build(self.format(offset));
        let size = frames.size();
        while log
            .packets
            .front()
            .is_some_and(|p| now.duration_since(p.at) > self.config.max_disconnection_duration)
            || (!log.packets.is_empty()
                && (log.packets.len() >= self.config.max_packets
                    || log.bytes + size > self.config.max_bytes))
        {
            if let Some(p) = log.packets.pop_front() {
                log.bytes -= p.frames.size();
            }
        }
        log.bytes += size;
        deliver(&frames);
        log.packets.push_back(Stored {
            offset,
            at: now,
            rooms,
            except,
            frames,
        });
    }

    /// Keeps a dropped socket's session under its private id.
    pub(crate) fn persist(&self, session: Persisted) {
        let pid: Arc<str> = Arc::from(self.pid(&session.sid));
        let mut sessions = lock(&self.sessions);
        sessions.expire(self.config.max_disconnection_duration);
        sessions.order.push_back((session.at, pid.clone()));
        sessions.by_pid.insert(pid, session);
    }

    /// Drops the kept sessions that can no longer be recovered (the server
    /// calls this periodically: after many disconnections at once, their
    /// memory is not held until the next one).
    pub(crate) fn expire(&self) {
        let max = self.config.max_disconnection_duration;
        let mut sessions = lock(&self.sessions);
        if sessions.expire(max) {
            // After a burst, give back the tables' room too.
            if sessions.by_pid.capacity() > 4 * sessions.by_pid.len().max(16) {
                sessions.by_pid.shrink_to_fit();
            }
            if sessions.order.capacity() > 4 * sessions.order.len().max(16) {
                sessions.order.shrink_to_fit();
            }
        }
    }

    /// Sessions kept now (expired ones included until [`Recovery::expire`]).
    #[cfg(test)]
    fn kept(&self) -> usize {
        lock(&self.sessions).by_pid.len()
    }

    /// Takes back the session kept under `pid`, unless it expired.
    pub(crate) fn take(&self, pid: &str) -> Option<Persisted> {
        let session = lock(&self.sessions).by_pid.remove(pid)?;
        (session.at.elapsed() <= self.config.max_disconnection_duration).then_some(session)
    }

    /// Runs `attach` with the log locked, passing the broadcasts `session`
    /// missed after `offset` (`None` when the log no longer holds them all,
    /// or there is no session). Broadcasts are delivered under the same lock,
    /// so what `attach` queues (the replay, the CONNECT reply) goes out
    /// before any later broadcast, and none falls between the replay and
    /// live delivery.
    pub(crate) fn locked<T>(
        &self,
        session: Option<(&Persisted, &str)>,
        attach: impl FnOnce(Option<Vec<Frames>>) -> T,
    ) -> T {
        let log = lock(&self.log);
        let missed = session.and_then(|(session, offset)| {
            let n = self.parse(offset)?;
            let first = log.packets.front().map_or(log.next, |p| p.offset);
            if n >= log.next || n + 1 < first {
                return None;
            }
            let member = |r: &Arc<str>| *r == session.sid || session.rooms.contains(r);
            let missed: Vec<Frames> = log
                .packets
                .iter()
                .filter(|p| p.offset > n)
                .filter(|p| p.rooms.is_empty() || p.rooms.iter().any(member))
                .filter(|p| !p.except.iter().any(member))
                .map(|p| p.frames.clone())
                .collect();
            let size: usize = missed.iter().map(Frames::size).sum();
            (size <= self.config.max_replay_bytes).then_some(missed)
        });
        attach(missed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dropped(sid: &str) -> Persisted {
        Persisted {
            sid: Arc::from(sid),
            rooms: vec![Arc::from("room")],
            at: Instant::now(),
            data: None,
        }
    }

    #[test]
    fn expired_sessions_go_without_a_later_disconnection() {
        let rec = Recovery::new(
            RecoveryConfig::default().max_disconnection_duration(Duration::from_millis(20)),
        );
        for i in 0..100 {
            rec.persist(dropped(&format!("s{i}")));
        }
        assert_eq!(rec.kept(), 100);
        rec.expire();
        assert_eq!(rec.kept(), 100, "none is older than the limit yet");
        std::thread::sleep(Duration::from_millis(30));
        rec.expire();
        assert_eq!(rec.kept(), 0);
        let pid = rec.pid("s1");
        assert!(rec.take(&pid).is_none());
    }

    #[test]
    fn a_kept_session_is_taken_back_once() {
        let rec = Recovery::new(RecoveryConfig::default());
        rec.persist(dropped("s1"));
        rec.expire();
        let pid = rec.pid("s1");
        assert_eq!(rec.take(&pid).map(|s| s.sid), Some(Arc::from("s1")));
        assert!(rec.take(&pid).is_none());
    }
}
