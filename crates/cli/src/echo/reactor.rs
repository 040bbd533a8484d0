//! The echo server's thread-per-core reactor: each worker thread owns an
//! epoll instance (mio), its own `SO_REUSEPORT` listener and a slab of
//! connections, and drives the sans-IO WebSocket core directly.
//!
//! No task, waker or timer exists per connection: an idle connection costs
//! its slab entry (the socket and the protocol state, about 150 bytes) and
//! the kernel's socket. Time-based work is per worker: one FIFO of deadlines
//! for handshakes and drains (every entry of a queue has the same duration,
//! so pushing in time order keeps it sorted) and one heartbeat sweep per
//! ping interval.

use std::collections::VecDeque;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use super::conn::{EchoConn, Settings, Step};
use super::lend::Lend;
use crate::listen;

const LISTENER: Token = Token(usize::MAX);

/// A request head must arrive within this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// After our side is done, the peer gets this long to close.
const LINGER: Duration = Duration::from_secs(2);

/// Received bytes go through this per-worker buffer unless a partial frame is
/// pending.
const READ_SCRATCH: usize = 64 * 1024;

/// After `accept` fails (out of descriptors), wait this long before retrying.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Takes over a connection the reactor does not serve, with the bytes
/// already read from it.
pub(crate) type Handoff = Box<dyn Fn(std::net::TcpStream, Vec<u8>) + Send + Sync>;

/// How the reactor runs.
pub(crate) struct ReactorConfig {
    pub(crate) settings: Settings,
    /// Heartbeat period; `None` sends no pings.
    pub(crate) ping_interval: Option<Duration>,
    /// Where [`Step::Handoff`] connections go (without one they are closed).
    pub(crate) handoff: Option<Handoff>,
}

/// Runs `workers` reactor threads on `addr` until Ctrl-C or SIGTERM.
pub(crate) fn serve(addr: SocketAddr, workers: usize, config: ReactorConfig) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let accepted = Arc::new(AtomicU64::new(0));
    let first = listen::bind_reuseport(addr)?;
    let bound = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers.max(1) {
        listeners.push(listen::bind_reuseport(bound)?);
    }
    tracing::info!(addr = %bound, workers = listeners.len(), "listening");
    for (i, listener) in listeners.into_iter().enumerate() {
        let config = Arc::clone(&config);
        let accepted = Arc::clone(&accepted);
        std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                let mut worker = match Worker::new(listener, &config, &accepted) {
                    Ok(w) => w,
                    Err(e) => {
                        tracing::error!(error = %e, "worker failed to start");
                        std::process::exit(1);
                    }
                };
                if let Err(e) = worker.run() {
                    tracing::error!(error = %e, "worker failed");
                    std::process::exit(1);
                }
            })?;
    }
    listen::wait_for_shutdown(&accepted)
}

struct Worker<'a> {
    poll: Poll,
    listener: TcpListener,
    conns: Slab<EchoConn>,
    config: &'a ReactorConfig,
    accepted: &'a AtomicU64,
    scratch: Box<[MaybeUninit<u8>]>,
    /// The read buffer lent to the connection being driven.
    lend: Lend,
    /// Connections still in their handshake, by deadline (with their serial:
    /// a slab key is reused once its connection is gone).
    handshakes: VecDeque<(Instant, usize, u32)>,
    /// Connections draining after their close, by deadline.
    drains: VecDeque<(Instant, usize, u32)>,
    /// Numbers the connections this worker accepted.
    serial: u32,
    /// Connections whose read budget ran out: driven again after this round.
    again: Vec<usize>,
    next_sweep: Option<Instant>,
    accept_retry: Option<Instant>,
}

impl<'a> Worker<'a> {
    fn new(
        listener: std::net::TcpListener,
        config: &'a ReactorConfig,
        accepted: &'a AtomicU64,
    ) -> io::Result<Self> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::from_std(listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        Ok(Self {
            poll,
            listener,
            conns: Slab::new(),
            config,
            accepted,
            scratch: Box::new_uninit_slice(READ_SCRATCH),
            lend: Lend::default(),
            handshakes: VecDeque::new(),
            drains: VecDeque::new(),
            serial: 0,
            again: Vec::new(),
            next_sweep: config.ping_interval.map(|p| Instant::now() + p),
            accept_retry: None,
        })
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self.timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in &events {
                match event.token() {
                    LISTENER => self.accept(),
                    Token(key) => self.drive(key),
                }
            }
            for key in std::mem::take(&mut self.again) {
                self.drive(key);
            }
            self.on_time(Instant::now());
        }
    }

    /// How long the next poll may wait: until the earliest deadline, or not
    /// at all when some connection has input left.
    fn timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.handshakes.front().map(|d| d.0),
            self.drains.front().map(|d| d.0),
            self.next_sweep,
            self.accept_retry,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(next.saturating_duration_since(Instant::now()))
    }

    fn accept(&mut self) {
        loop {
            let stream = match self.listener.accept() {
                Ok((stream, _peer)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: the pending connections
                    // stay queued; try again shortly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    self.accept_retry = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            };
            self.accepted.fetch_add(1, Ordering::Relaxed);
            let _ = stream.set_nodelay(true);
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            self.serial = self.serial.wrapping_add(1);
            let mut conn = EchoConn::new(stream, self.serial);
            if let Err(e) =
                self.poll
                    .registry()
                    .register(&mut conn.stream, Token(key), Interest::READABLE)
            {
                tracing::warn!(error = %e, "registering a connection failed");
                continue;
            }
            entry.insert(conn);
            self.handshakes
                .push_back((Instant::now() + HANDSHAKE_TIMEOUT, key, self.serial));
            // The request may already be here (edge-triggered: no event
            // would come for bytes that arrived before registration).
            self.drive(key);
        }
    }

    fn drive(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let step = conn.drive(&self.config.settings, &mut self.scratch, &mut self.lend);
        self.apply(key, step);
    }

    fn apply(&mut self, key: usize, step: Step) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let writable = match step {
            Step::Wait { writable } => writable,
            Step::Again => {
                self.again.push(key);
                conn.write_interest
            }
            Step::Drain => {
                self.drains
                    .push_back((Instant::now() + LINGER, key, conn.serial));
                false
            }
            Step::Close => {
                let mut conn = self.conns.remove(key);
                let _ = self.poll.registry().deregister(&mut conn.stream);
                return;
            }
            Step::Handoff => {
                let mut conn = self.conns.remove(key);
                let _ = self.poll.registry().deregister(&mut conn.stream);
                let read = conn.take_handoff();
                if let Some(handoff) = &self.config.handoff {
                    handoff(conn.stream.into(), read);
                }
                return;
            }
        };
        if writable != conn.write_interest {
            let interest = if writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(key), interest)
                .is_err()
            {
                self.apply(key, Step::Close);
                return;
            }
            conn.write_interest = writable;
        }
    }

    fn on_time(&mut self, now: Instant) {
        self.expire(Deadline::Handshake, now);
        self.expire(Deadline::Drain, now);
        if self.accept_retry.is_some_and(|at| at <= now) {
            self.accept_retry = None;
            self.accept();
        }
        if let (Some(at), Some(every)) = (self.next_sweep, self.config.ping_interval)
            && at <= now
        {
            self.next_sweep = Some(now + every);
            // Most connections need nothing from the reactor after their
            // heartbeat; only the others are applied.
            let changed: Vec<(usize, Step)> = self
                .conns
                .iter_mut()
                .filter_map(|(key, conn)| {
                    let step = conn.heartbeat();
                    let same = step
                        == Step::Wait {
                            writable: conn.write_interest,
                        };
                    (!same).then_some((key, step))
                })
                .collect();
            for (key, step) in changed {
                self.apply(key, step);
            }
        }
    }

    /// Ends the connections whose `kind` deadline has passed: only the
    /// connection the deadline was queued for (same serial), and only while
    /// it is still in the phase the deadline was for.
    fn expire(&mut self, kind: Deadline, now: Instant) {
        loop {
            let queue = match kind {
                Deadline::Handshake => &mut self.handshakes,
                Deadline::Drain => &mut self.drains,
            };
            let Some(&(at, key, serial)) = queue.front() else {
                return;
            };
            if at > now {
                return;
            }
            queue.pop_front();
            let due = self.conns.get(key).is_some_and(|c| {
                c.serial == serial
                    && match kind {
                        Deadline::Handshake => c.is_handshaking(),
                        Deadline::Drain => c.is_draining(),
                    }
            });
            if due {
                self.apply(key, Step::Close);
            }
        }
    }
}

/// The two per-worker deadline queues.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// The request head must arrive in time.
    Handshake,
    /// The peer must close in time after our side finished.
    Drain,
}
