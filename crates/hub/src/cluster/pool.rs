//! Connections to Redis: a few kept open, and whether Redis is reachable.
//!
//! Calls are synchronous with short timeouts (the hub calls its store with a
//! room's lock held). While Redis is unreachable a call fails fast instead
//! of waiting for a connect timeout each time: one attempt per
//! [`RETRY_AFTER`] goes through, the others are refused at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use redis::{Client, Connection, RedisResult};

use crate::store::StoreError;

/// Connections kept open between calls.
const IDLE: usize = 16;
/// Time to open a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Time a command may take.
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// While Redis is down, one call per this interval tries to reconnect.
pub(crate) const RETRY_AFTER: Duration = Duration::from_millis(200);

pub(crate) struct Pool {
    client: Client,
    idle: Mutex<Vec<Connection>>,
    up: AtomicBool,
    /// When the last attempt to connect failed.
    failed_at: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("up", &self.is_up())
            .field("idle", &lock(&self.idle).len())
            .finish()
    }
}

impl Pool {
    /// A pool for `url` (`redis://host:port/db`); connects on first use.
    pub(crate) fn new(url: &str) -> Result<Self, StoreError> {
        let client =
            Client::open(url).map_err(|e| StoreError(format!("redis URL {url:?}: {e}")))?;
        Ok(Self {
            client,
            idle: Mutex::default(),
            // Optimistic until a call says otherwise.
            up: AtomicBool::new(true),
            failed_at: Mutex::default(),
        })
    }

    /// Whether the last call reached Redis.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// A new connection with timeouts set (for subscribers, which keep it).
    pub(crate) fn connect(&self) -> RedisResult<Connection> {
        let con = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
        con.set_read_timeout(Some(IO_TIMEOUT))?;
        con.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(con)
    }

    fn take(&self) -> Result<Connection, StoreError> {
        if let Some(con) = lock(&self.idle).pop() {
            return Ok(con);
        }
        if !self.is_up() {
            let mut failed_at = lock(&self.failed_at);
            if failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER) {
                return Err(StoreError("redis is unavailable".into()));
            }
            *failed_at = Some(Instant::now());
        }
        self.connect().map_err(|e| {
            self.down(&e);
            StoreError(format!("redis: {e}"))
        })
    }

    fn down(&self, e: &redis::RedisError) {
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(error = %e, "redis is unavailable");
        }
        *lock(&self.failed_at) = Some(Instant::now());
        lock(&self.idle).clear();
    }

    /// Marks Redis reachable (a call or a subscriber got through).
    pub(crate) fn mark_up(&self) {
        if !self.up.swap(true, Ordering::Relaxed) {
            tracing::info!("redis is reachable again");
        }
    }

    /// Runs `f` on a pooled connection. A failure of the connection (not
    /// of the command) drops it and marks Redis down.
    pub(crate) fn run<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut con = self.take()?;
        match f(&mut con) {
            Ok(v) => {
                self.mark_up();
                let mut idle = lock(&self.idle);
                if idle.len() < IDLE {
                    idle.push(con);
                }
                Ok(v)
            }
            Err(e) => {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_connection_refusal()
                {
                    self.down(&e);
                } else {
                    // The command failed (e.g. a script error): the
                    // connection is fine.
                    let mut idle = lock(&self.idle);
                    if idle.len() < IDLE {
                        idle.push(con);
                    }
                }
                Err(StoreError(format!("redis: {e}")))
            }
        }
    }
}
