//! Plain TCP sockets taken out of the runtime's reactor while their
//! connections are parked ([`super::park`]).
//!
//! tokio keeps a readiness record for every socket it watches: 256 bytes on
//! x86-64, cache-line aligned, allocated on its own. A parked connection
//! needs none of what that record is for (fair scheduling, a waker per
//! direction, the runtime's budget); it only has to learn that its socket
//! became readable, writable or closed. So a server that parks a task takes
//! its socket out of tokio ([`MaybeTlsStream::detach`]) into a [`Watcher`]:
//! one epoll instance (mio) for all its detached sockets, itself watched by
//! the runtime as a single file descriptor and drained by one task, at the
//! cost of a slot in a shared slab (one waker and a few bits, 24 bytes) per
//! socket.
//! When the connection's task runs again and stays running, the socket
//! goes back to tokio ([`MaybeTlsStream::attach`]).
//!
//! A detached socket is still a complete stream: reads and writes are plain
//! non-blocking syscalls and a `Pending` one registers the caller's waker
//! with the watcher, so a task that reads a message or two and parks again
//! never touches the runtime's reactor at all.
//!
//! A socket is registered once, edge-triggered, for both directions
//! (registering makes epoll check its readiness at once), so waiting again
//! after a wake-up costs no `epoll_ctl`. A socket is waited on by the task
//! that owns it, so its slot keeps one waker for both directions and a bit
//! per direction saying whether it waits that way; a wait with another
//! waker replaces the stored one, and wakes it if it still waited the other
//! way (a waiter is never dropped, at worst woken for nothing).
//!
//! An event between a `WouldBlock` and the wait that follows it must not be
//! lost, and it can land two ways:
//! - it finds nobody waiting in its direction: the slot keeps a mark (see
//!   `Slot`), and the next wait in that direction finds it and tries the
//!   syscall again instead of waiting;
//! - it finds the waker of an earlier wait and wakes that one, which may
//!   wake nothing now (a parked connection's waker that already fired, a
//!   task that has ended). So the watcher counts the batches of events it
//!   dispatches, the syscall notes the count before it runs, and a wait
//!   whose slot has lost its waker while the count moved tries again.
//!
//! An event for a slot that has since been reused wakes (or marks) its new
//! owner spuriously, which every waker allows.
//!
//! [`MaybeTlsStream::detach`]: super::MaybeTlsStream::detach
//! [`MaybeTlsStream::attach`]: super::MaybeTlsStream::attach

use std::io::{self, IoSlice};
use std::net::{Shutdown, TcpStream};
use std::num::NonZeroU8;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Registry, Token};
use slab::Slab;
use tokio::io::ReadBuf;
use tokio::io::unix::AsyncFd;

use super::MaybeTlsStream;

/// Events taken from the epoll instance per call.
const BATCH: usize = 256;

/// Detached sockets watched now, in every watcher of the process.
static WATCHED: AtomicUsize = AtomicUsize::new(0);

/// Detached sockets watched now (each parked connection over plain TCP has
/// one), in every [`Watcher`] of the process.
pub fn watched() -> usize {
    WATCHED.load(Ordering::Relaxed)
}

/// Who waits on one detached socket: the waker of the latest wait, and per
/// direction whether it waits that way, or the *mark* that an event came
/// while nobody did. 24 bytes: the flags' niche lets the slab tell a vacant
/// entry apart without a tag word of its own.
#[derive(Debug, Default)]
struct Slot {
    /// Set while either direction waits.
    waker: Option<Waker>,
    flags: Flags,
}

#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

impl Direction {
    /// The bit saying a waiter waits this way.
    const fn waits(self) -> u8 {
        match self {
            Self::Read => 0x01,
            Self::Write => 0x02,
        }
    }

    /// The bit saying an event came this way while nobody waited.
    const fn mark(self) -> u8 {
        match self {
            Self::Read => 0x04,
            Self::Write => 0x08,
        }
    }
}

/// A [`Slot`]'s bits, over one that is always set so that zero is left for
/// the slab's vacant entries.
#[derive(Debug, Clone, Copy)]
struct Flags(NonZeroU8);

impl Flags {
    /// The bit every value has.
    const ALWAYS: u8 = 0x80;
    /// Either direction's waiting bit.
    const WAITS: u8 = 0x03;

    fn has(self, bit: u8) -> bool {
        self.0.get() & bit != 0
    }

    fn set(&mut self, bit: u8, on: bool) {
        let bits = if on {
            self.0.get() | bit
        } else {
            self.0.get() & !bit
        };
        self.0 = NonZeroU8::new(bits | Self::ALWAYS).unwrap_or(self.0);
    }
}

impl Default for Flags {
    fn default() -> Self {
        Self(NonZeroU8::new(Self::ALWAYS).unwrap_or(NonZeroU8::MAX))
    }
}

impl Slot {
    /// An event for reading, writing or both: the waiter is woken (once,
    /// whatever the directions it waited in); a direction nobody waits in
    /// keeps a mark.
    fn fire(&mut self, read: bool, write: bool, ready: &mut Vec<Waker>) {
        let mut wake = false;
        for (dir, fired) in [(Direction::Read, read), (Direction::Write, write)] {
            if !fired {
                continue;
            }
            if self.flags.has(dir.waits()) {
                self.flags.set(dir.waits(), false);
                wake = true;
            } else {
                self.flags.set(dir.mark(), true);
            }
        }
        if wake {
            let waker = if self.flags.has(Flags::WAITS) {
                self.waker.clone()
            } else {
                self.waker.take()
            };
            ready.extend(waker);
        }
    }

    /// A wait in `dir` by `waker` (what [`Detached::wait`] decides under
    /// the lock); `stale` is whether an event was dispatched since its
    /// syscall began on a slot it had waited on before. A waker this
    /// replaces while it still waited the other way goes to `evicted`.
    fn wait(
        &mut self,
        dir: Direction,
        waker: &Waker,
        stale: bool,
        evicted: &mut Option<Waker>,
    ) -> Wait {
        if self.flags.has(dir.mark()) {
            self.flags.set(dir.mark(), false);
            return Wait::Again;
        }
        let waited = self.flags.has(dir.waits());
        match &self.waker {
            // No event since the waker now there was stored: none came after
            // the syscall either.
            Some(w) if w.will_wake(waker) => {}
            Some(_) => {
                let old = self.waker.replace(waker.clone());
                let other = Flags::WAITS & !dir.waits();
                if self.flags.has(other) {
                    *evicted = old;
                }
            }
            None => self.waker = Some(waker.clone()),
        }
        self.flags.set(dir.waits(), true);
        // An event took the waker of an earlier wait. If it came in a batch
        // dispatched after the syscall began, what it woke may not be this
        // waiter: try again, with this waker stored.
        if !waited && stale {
            Wait::Again
        } else {
            Wait::Stored
        }
    }
}

/// What [`Detached::wait`] found.
enum Wait {
    /// The waker is stored: the caller returns `Pending`.
    Stored,
    /// An event came since the last wake-up: the caller tries again.
    Again,
}

#[derive(Debug)]
struct Lot {
    registry: Registry,
    slots: Mutex<Slab<Slot>>,
    /// Batches of events dispatched so far (wrapping), counted under the
    /// `slots` lock after the batch was taken from epoll: a syscall that read
    /// the count before it ran saw the data of every event in a batch
    /// counted by then.
    batches: AtomicU32,
}

impl Lot {
    fn slots(&self) -> MutexGuard<'_, Slab<Slot>> {
        // Every critical section is a few field updates: a panic cannot
        // leave the slab inconsistent.
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, slots: &mut Slab<Slot>) -> usize {
        WATCHED.fetch_add(1, Ordering::Relaxed);
        slots.insert(Slot::default())
    }

    fn remove(&self, key: usize) {
        self.remove_locked(&mut self.slots(), key);
    }

    fn remove_locked(&self, slots: &mut Slab<Slot>, key: usize) {
        if slots.try_remove(key).is_some() {
            WATCHED.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Wakes whoever waits on the sockets of `events`.
    fn dispatch(&self, events: &Events, ready: &mut Vec<Waker>) {
        {
            let mut slots = self.slots();
            self.batches.fetch_add(1, Ordering::Release);
            for ev in events {
                let Some(slot) = slots.get_mut(ev.token().0) else {
                    continue;
                };
                let failed = ev.is_error();
                slot.fire(
                    ev.is_readable() || ev.is_read_closed() || failed,
                    ev.is_writable() || ev.is_write_closed() || failed,
                    ready,
                );
            }
        }
        // Outside the lock: a waker may detach or arm another socket.
        for w in ready.drain(..) {
            w.wake();
        }
    }
}

/// Watches detached sockets for their parked connections: one epoll
/// instance, drained by a task on the runtime that started it whenever the
/// runtime's reactor finds it readable. Cheap to clone; the task ends with
/// the runtime.
#[derive(Debug, Clone)]
pub struct Watcher {
    lot: Arc<Lot>,
}

impl Watcher {
    /// Starts a watcher on the current runtime.
    ///
    /// # Errors
    /// The epoll instance could not be created or registered.
    ///
    /// # Panics
    /// Outside a tokio runtime with IO enabled.
    pub fn start() -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let lot = Arc::new(Lot {
            registry: poll.registry().try_clone()?,
            slots: Mutex::new(Slab::new()),
            batches: AtomicU32::new(0),
        });
        // SAFETY: a `mio::Poll` owns its epoll fd from creation to drop and
        // `as_raw_fd` always returns that fd.
        let fd = unsafe { AsyncFd::register_with_interest(poll, tokio::io::Interest::READABLE) }?;
        tokio::spawn(drain(fd, Arc::downgrade(&lot)));
        Ok(Self { lot })
    }

    /// Sockets this watcher watches now.
    pub fn len(&self) -> usize {
        self.lot.slots().len()
    }

    /// Whether it watches none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A [`Watcher`] started on first use, on the runtime of that use: what a
/// server keeps to park its connections' sockets.
#[derive(Debug, Default)]
pub struct LazyWatcher(OnceLock<Option<Watcher>>);

impl LazyWatcher {
    /// None started yet.
    pub const fn new() -> Self {
        Self(OnceLock::new())
    }

    /// Where a connection's task stands, for its socket: a task about to
    /// park (`parking`) detaches it, one that keeps running attaches it
    /// again. Runs inside the runtime (a watcher that cannot start leaves
    /// sockets in the runtime's reactor).
    pub fn park_io(&self, stream: &mut MaybeTlsStream, parking: bool) {
        if !parking {
            stream.attach();
        } else if let Some(watcher) = self.0.get_or_init(|| Watcher::start().ok()) {
            stream.detach(watcher);
        }
    }

    /// Sockets the watcher watches now.
    pub fn len(&self) -> usize {
        self.0
            .get()
            .and_then(Option::as_ref)
            .map_or(0, Watcher::len)
    }

    /// Whether it watches none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The watcher's task: wakes the waiters of every socket that became ready,
/// until the watcher is gone.
async fn drain(mut fd: AsyncFd<mio::Poll>, lot: std::sync::Weak<Lot>) {
    let mut events = Events::with_capacity(BATCH);
    let mut ready: Vec<Waker> = Vec::new();
    loop {
        let Ok(mut guard) = fd.readable_mut().await else {
            return;
        };
        let Some(lot) = lot.upgrade() else {
            return;
        };
        match guard
            .get_inner_mut()
            .poll(&mut events, Some(Duration::ZERO))
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        // A partial batch emptied the ready list: wait for the next edge (a
        // newer one is not cleared by this).
        let drained = events.iter().count() < BATCH;
        if drained {
            guard.clear_ready();
        }
        drop(guard);
        lot.dispatch(&events, &mut ready);
        if !drained {
            // Many sockets woke at once: let their tasks run in between.
            tokio::task::yield_now().await;
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "detached socket is closed")
}

/// A non-blocking TCP socket outside the runtime's reactor.
#[derive(Debug, Default)]
pub struct Detached {
    /// `None` once the socket failed to leave or rejoin the runtime.
    socket: Option<TcpStream>,
    /// The watcher it belongs to.
    lot: Option<Arc<Lot>>,
    /// Its slot there, once something waited on it.
    key: Option<u32>,
}

impl Detached {
    /// A non-blocking socket that no reactor watches, to be watched by
    /// `watcher` when something waits on it.
    pub(crate) fn new(socket: TcpStream, watcher: &Watcher) -> Self {
        Self {
            socket: Some(socket),
            lot: Some(watcher.lot.clone()),
            key: None,
        }
    }

    /// The socket, for syscalls.
    pub(crate) fn socket(&self) -> io::Result<&TcpStream> {
        self.socket.as_ref().ok_or_else(closed)
    }

    /// The socket, no longer watched (to hand it back to the runtime).
    pub(crate) fn take(mut self) -> Option<TcpStream> {
        self.unwatch();
        self.socket.take()
    }

    /// Stops watching the socket and frees its slot (its wakers are
    /// dropped).
    fn unwatch(&mut self) {
        let (Some(key), Some(lot)) = (self.key.take(), &self.lot) else {
            return;
        };
        if let Some(socket) = &self.socket {
            let _ = lot.registry.deregister(&mut SourceFd(&socket.as_raw_fd()));
        }
        lot.remove(key as usize);
    }

    /// The watcher's batch count, read before a syscall (see [`Lot::batches`]).
    fn batches(&self) -> u32 {
        self.lot
            .as_ref()
            .map_or(0, |lot| lot.batches.load(Ordering::Acquire))
    }

    /// Has `waker` woken when the socket is ready for `dir`, or says to try
    /// again if an event may have come since the syscall that would block,
    /// which read the batch count `seen` before it ran.
    fn wait(&mut self, dir: Direction, waker: &Waker, seen: u32) -> io::Result<Wait> {
        let fd = self.socket()?.as_raw_fd();
        let lot = self.lot.as_ref().ok_or_else(closed)?;
        let mut evicted = None;
        let (key, key32) = {
            let mut slots = lot.slots();
            let moved = lot.batches.load(Ordering::Relaxed) != seen;
            let key = match self.key.map(|k| k as usize) {
                Some(key) if slots.contains(key) => key,
                _ => lot.insert(&mut slots),
            };
            // A slab that outgrew `u32` keys: the socket cannot be watched.
            let key32 = u32::try_from(key).map_err(|_| {
                lot.remove_locked(&mut slots, key);
                io::Error::other("too many detached sockets")
            })?;
            let fresh = self.key != Some(key32);
            let found = slots[key].wait(dir, waker, moved && !fresh, &mut evicted);
            if let Wait::Again = found {
                return Ok(Wait::Again);
            }
            (key, key32)
        };
        // Outside the lock: a waker may detach or arm another socket.
        if let Some(w) = evicted {
            w.wake();
        }
        if self.key == Some(key32) {
            return Ok(Wait::Stored);
        }
        // First wait on this slot: register for good, both directions.
        self.key = Some(key32);
        let interest = Interest::READABLE | Interest::WRITABLE;
        let registered = lot
            .registry
            .register(&mut SourceFd(&fd), Token(key), interest);
        if registered.is_err() {
            self.key = None;
            lot.remove(key);
        }
        registered.map(|()| Wait::Stored)
    }

    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let seen = self.batches();
            let socket = socket2::SockRef::from(self.socket()?);
            // SAFETY: `recv` only writes initialised bytes into the spare
            // part of the buffer, and never de-initialises any.
            let unfilled = unsafe { buf.unfilled_mut() };
            match socket.recv(unfilled) {
                Ok(n) => {
                    // SAFETY: `recv` initialised the first `n` bytes of
                    // `unfilled`, which start at the buffer's filled end.
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.wait(Direction::Read, cx.waker(), seen)? {
                        Wait::Stored => return Poll::Pending,
                        Wait::Again => {}
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    /// Sends at once; `WouldBlock` when the socket is full.
    pub(crate) fn send(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        super::stream::send(socket2::SockRef::from(self.socket()?), bufs)
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            let seen = self.batches();
            match self.send(bufs) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    match self.wait(Direction::Write, cx.waker(), seen)? {
                        Wait::Stored => return Poll::Pending,
                        Wait::Again => {}
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    pub(crate) fn shutdown(&self) -> io::Result<()> {
        match self.socket()?.shutdown(Shutdown::Write) {
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
            r => r,
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        self.unwatch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A watcher, a detached socket in it, its peer, and a waker that
    /// counts its wake-ups.
    struct Setup {
        watcher: Watcher,
        d: Detached,
        peer: TcpStream,
        count: Arc<Count>,
        waker: Waker,
    }

    fn setup() -> Setup {
        let watcher = Watcher::start().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        Setup {
            d: Detached::new(ours, &watcher),
            watcher,
            peer,
            waker: Waker::from(count.clone()),
            count,
        }
    }

    fn woken(count: &Count, n: usize) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while count.0.load(Ordering::SeqCst) < n {
            assert!(std::time::Instant::now() < deadline, "never woken");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn read(d: &mut Detached, cx: &mut Context<'_>) -> Poll<Vec<u8>> {
        let mut storage = [std::mem::MaybeUninit::uninit(); 64];
        let mut buf = ReadBuf::uninit(&mut storage);
        d.poll_read(cx, &mut buf)
            .map(|r| r.map(|()| buf.filled().to_vec()).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_waiting_reader_is_woken_by_data_and_by_the_peer_closing() {
        let mut t = setup();
        let mut cx = Context::from_waker(&t.waker);
        assert!(read(&mut t.d, &mut cx).is_pending());
        assert_eq!(t.watcher.len(), 1);
        assert!(watched() >= 1);

        t.peer.write_all(b"hello").unwrap();
        woken(&t.count, 1);
        assert_eq!(read(&mut t.d, &mut cx), Poll::Ready(b"hello".to_vec()));
        // Waiting again: data that comes in between is not missed.
        assert!(read(&mut t.d, &mut cx).is_pending());
        t.peer.write_all(b"again").unwrap();
        woken(&t.count, 2);
        assert_eq!(read(&mut t.d, &mut cx), Poll::Ready(b"again".to_vec()));

        assert!(read(&mut t.d, &mut cx).is_pending());
        drop(t.peer);
        woken(&t.count, 3);
        assert_eq!(read(&mut t.d, &mut cx), Poll::Ready(Vec::new()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn data_that_arrived_before_the_wait_wakes_at_once() {
        let mut t = setup();
        // Armed once, fired, then data arrives while nobody waits: the next
        // wait must see it although no new edge will come.
        let mut cx = Context::from_waker(&t.waker);
        assert!(read(&mut t.d, &mut cx).is_pending());
        t.peer.write_all(b"1").unwrap();
        woken(&t.count, 1);
        t.peer.write_all(b"2").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut buf = [0u8; 1];
        let socket = t.d.socket().unwrap();
        assert_eq!((&*socket).read(&mut buf).unwrap(), 1);
        // "2" is still unread and its event found nobody waiting: the next
        // wait says to read again instead of waiting (no new edge will come),
        // and that read gets it.
        let seen = t.d.batches();
        assert!(matches!(
            t.d.wait(Direction::Read, &t.waker, seen).unwrap(),
            Wait::Again
        ));
        assert_eq!(read(&mut t.d, &mut cx), Poll::Ready(b"2".to_vec()));
        // Then a wait is a wait again, with no `epoll_ctl`: the next byte
        // wakes it through the registration made at the start.
        assert!(read(&mut t.d, &mut cx).is_pending());
        t.peer.write_all(b"3").unwrap();
        woken(&t.count, 2);
        assert_eq!(read(&mut t.d, &mut cx), Poll::Ready(b"3".to_vec()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn an_event_that_woke_an_earlier_waiter_is_not_lost_to_the_next() {
        // A parked connection's waker waits on the socket; something else
        // resumes the connection, whose new task reads (`WouldBlock`), and
        // then data comes and its event wakes the old waker, which wakes
        // nothing any more. The new task's wait must try again.
        let mut t = setup();
        let mut cx = Context::from_waker(&t.waker);
        assert!(read(&mut t.d, &mut cx).is_pending());
        let seen = t.d.batches(); // the new task's read: `WouldBlock`
        t.peer.write_all(b"x").unwrap();
        woken(&t.count, 1); // the old waker took the event
        let later = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(later.clone());
        assert!(matches!(
            t.d.wait(Direction::Read, &waker, seen).unwrap(),
            Wait::Again
        ));
        let mut cx = Context::from_waker(&waker);
        assert_eq!(read(&mut t.d, &mut cx), Poll::Ready(b"x".to_vec()));

        // A read that began after that batch was dispatched saw its data:
        // the wait waits, and the next byte wakes the new waker.
        assert!(read(&mut t.d, &mut cx).is_pending());
        t.peer.write_all(b"y").unwrap();
        woken(&later, 1);
        assert_eq!(read(&mut t.d, &mut cx), Poll::Ready(b"y".to_vec()));
        let seen = t.d.batches();
        assert!(matches!(
            t.d.wait(Direction::Read, &t.waker, seen).unwrap(),
            Wait::Stored
        ));
        assert_eq!(t.count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_detached_socket_is_no_bigger_than_a_tokio_one() {
        // The stream of every idle connection: detaching must not grow it.
        assert!(std::mem::size_of::<Detached>() <= std::mem::size_of::<tokio::net::TcpStream>());
        assert_eq!(
            std::mem::size_of::<MaybeTlsStream>(),
            std::mem::size_of::<tokio::net::TcpStream>()
        );
    }

    #[test]
    fn a_slot_in_the_slab_takes_24_bytes() {
        // The shape of `slab`'s entry: the flags' niche holds the tag.
        #[allow(dead_code)]
        enum Entry {
            Vacant(usize),
            Occupied(Slot),
        }
        assert_eq!(std::mem::size_of::<Slot>(), 24);
        assert_eq!(std::mem::size_of::<Entry>(), 24);
    }

    #[test]
    fn one_waker_serves_both_directions_and_a_replaced_one_is_woken() {
        let a = Arc::new(Count(AtomicUsize::new(0)));
        let b = Arc::new(Count(AtomicUsize::new(0)));
        let (wa, wb) = (Waker::from(a.clone()), Waker::from(b.clone()));
        let mut slot = Slot::default();
        let mut evicted = None;
        let mut ready = Vec::new();
        // The same waker in both directions: one wake-up per event, and it
        // stays stored while the other direction still waits.
        assert!(matches!(
            slot.wait(Direction::Read, &wa, false, &mut evicted),
            Wait::Stored
        ));
        assert!(matches!(
            slot.wait(Direction::Write, &wa, false, &mut evicted),
            Wait::Stored
        ));
        assert!(evicted.is_none());
        slot.fire(true, false, &mut ready);
        assert_eq!(ready.len(), 1);
        assert!(slot.waker.is_some());
        slot.fire(false, true, &mut ready);
        assert_eq!(ready.len(), 2);
        assert!(slot.waker.is_none());
        // Both directions in one event: woken once.
        ready.clear();
        slot.wait(Direction::Read, &wa, false, &mut evicted);
        slot.wait(Direction::Write, &wa, false, &mut evicted);
        slot.fire(true, true, &mut ready);
        assert_eq!(ready.len(), 1);
        // An event nobody waited for marks its direction only.
        slot.fire(false, true, &mut ready);
        assert!(matches!(
            slot.wait(Direction::Read, &wa, false, &mut evicted),
            Wait::Stored
        ));
        assert!(matches!(
            slot.wait(Direction::Write, &wa, false, &mut evicted),
            Wait::Again
        ));
        // Another waker replaces the one waiting to read: that one is handed
        // back to be woken, and the new one gets either direction's event.
        assert!(matches!(
            slot.wait(Direction::Write, &wb, false, &mut evicted),
            Wait::Stored
        ));
        assert!(evicted.take().is_some_and(|w| w.will_wake(&wa)));
        ready.clear();
        slot.fire(true, false, &mut ready);
        assert!(ready.len() == 1 && ready[0].will_wake(&wb));
        // A replaced waker that waited only the same way is just dropped.
        slot.wait(Direction::Write, &wa, false, &mut evicted);
        assert!(evicted.is_none());
        // A slot waited on before, with an event dispatched since the
        // syscall, and no wait left in that direction: look again.
        assert!(matches!(
            slot.wait(Direction::Read, &wa, true, &mut evicted),
            Wait::Again
        ));
        assert!(matches!(
            slot.wait(Direction::Read, &wa, true, &mut evicted),
            Wait::Stored
        ));
        drop((a, b));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_blocked_writer_is_woken_once_the_peer_reads() {
        let mut t = setup();
        let mut cx = Context::from_waker(&t.waker);
        let chunk = vec![7u8; 64 << 10];
        let mut sent = 0;
        while let Poll::Ready(n) = t.d.poll_write(&mut cx, &[IoSlice::new(&chunk)]) {
            sent += n.unwrap();
        }
        let mut got = vec![0u8; sent];
        t.peer.read_exact(&mut got).unwrap();
        woken(&t.count, 1);
        assert!(matches!(
            t.d.poll_write(&mut cx, &[IoSlice::new(b"x")]),
            Poll::Ready(Ok(1))
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn taking_the_socket_back_frees_its_slot() {
        let mut t = setup();
        let mut cx = Context::from_waker(&t.waker);
        assert!(read(&mut t.d, &mut cx).is_pending());
        assert_eq!(t.watcher.len(), 1);
        let socket = t.d.take().unwrap();
        assert!(t.watcher.is_empty());
        t.peer.write_all(b"x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(t.count.0.load(Ordering::SeqCst), 0);
        let mut buf = [0u8; 1];
        assert_eq!((&socket).read(&mut buf).unwrap(), 1);
    }
}
