//! The hot paths allocate nothing per message: a server writing small
//! messages to connections that go idle between them (a room's broadcast
//! walks thousands in turn), and reading requests they answer. Counted by
//! this test binary's own global allocator, per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::IoSlice;

use bytes::Bytes;
use switchboard_wire::{Config, Connection, Message, OpCode, Role, Utf8Bytes};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// count is a const-initialised thread local (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made by this thread while `f` runs.
fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.get();
    f();
    ALLOCATIONS.get() - before
}

/// Writes all of `c`'s output to `sink` as a socket would take it.
fn write_out(c: &mut Connection, sink: &mut Vec<u8>) {
    while c.has_output() {
        let mut io = [IoSlice::new(&[]); 8];
        let n = c.output_slices(&mut io);
        let len: usize = io[..n].iter().map(|s| s.len()).sum();
        for s in &io[..n] {
            sink.extend_from_slice(s);
        }
        c.consume_output(len);
    }
}

#[test]
fn a_broadcast_to_idle_connections_allocates_nothing_per_delivery() {
    let mut members: Vec<Connection> = (0..100)
        .map(|_| Connection::new(Role::Server, Config::default(), None))
        .collect();
    // Encoded once, shared by every member (as a room's publish does).
    let frame = Utf8Bytes::try_from_bytes(Bytes::from(vec![b'x'; 150])).unwrap();
    let mut sink = Vec::with_capacity(1 << 20);
    let mut deliver = |members: &mut [Connection]| {
        for m in members {
            m.send(Message::Text(frame.clone())).unwrap();
            write_out(m, &mut sink);
            m.release_idle_buffers();
        }
        sink.clear();
    };
    // The first delivery makes the thread's spare buffer.
    deliver(&mut members);
    let n = allocations_in(|| {
        for _ in 0..10 {
            deliver(&mut members);
        }
    });
    assert_eq!(n, 0, "allocations in 1,000 deliveries");
    for m in &members {
        assert_eq!(m.buffer_capacity(), 0, "an idle member holds a buffer");
    }
}

#[test]
fn a_message_sent_to_an_idle_connection_takes_one_allocation_at_most() {
    // On a thread with no spare (its first message), the frame's header
    // and payload are sized together: one allocation, no reallocation.
    let mut c = Connection::new(Role::Server, Config::default(), None);
    let n = allocations_in(|| c.replies().send_slice(OpCode::Text, &[b'y'; 300]).unwrap());
    assert_eq!(n, 1);
}
