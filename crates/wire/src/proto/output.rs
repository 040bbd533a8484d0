//! The outgoing byte queue: small frames coalesce into one buffer, large
//! payloads are queued as shared `Bytes` and written with vectored IO.
//!
//! An idle connection holds no buffer ([`Output::release_if_empty`]). The
//! buffer it gives back becomes its thread's spare, and the next connection
//! of that thread that has something to send takes it: a broadcast written
//! to thousands of idle connections in turn, or a request answered on one
//! that was quiet, allocates nothing per message.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// Payloads up to this size are copied next to their header; larger ones are
/// queued by reference (no copy, shared with other recipients).
pub(crate) const COALESCE_MAX: usize = 1024;

/// A coalescing buffer given back with less room than this is not kept as
/// the thread's spare (it would have to grow for most frames).
const SPARE_MIN: usize = 64;

/// Nor one with more than this: it bounds what each thread holds.
const SPARE_MAX: usize = 16 << 10;

thread_local! {
    /// The thread's spare coalescing buffer: empty, whole, owned by no one.
    static SPARE_TAIL: Cell<Option<BytesMut>> = const { Cell::new(None) };
}

#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Large payloads queued by reference, with their byte count; boxed
    /// because most connections never queue one, and an idle connection
    /// should stay small.
    queue: Option<Box<Queue>>,
    tail: BytesMut,
}

/// Sealed chunks waiting to be written, ahead of the tail.
#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    /// Their unwritten bytes.
    bytes: usize,
}

impl Output {
    pub(crate) fn push_slice(&mut self, s: &[u8]) {
        self.reserve(s.len());
        self.tail.extend_from_slice(s);
    }

    /// Makes room for `additional` more coalesced bytes at once (a frame's
    /// header and its payload: one allocation, not one and a reallocation).
    /// A tail with no buffer takes the thread's spare first.
    pub(crate) fn reserve(&mut self, additional: usize) {
        // Without a buffer of its own to reclaim (`reserve` would do that),
        // the tail takes the spare.
        if self.tail.capacity() == 0
            && !self.tail.try_reclaim(additional)
            && let Some(spare) = take_spare()
        {
            self.tail = spare;
        }
        self.tail.reserve(additional);
    }

    /// How many of a frame's bytes go into the coalescing buffer: its
    /// header, and its payload unless that is queued by reference.
    pub(crate) fn coalesced_len(head: usize, payload: usize) -> usize {
        if payload <= COALESCE_MAX {
            head + payload
        } else {
            head
        }
    }

    pub(crate) fn push_bytes(&mut self, b: Bytes) {
        if b.len() <= COALESCE_MAX {
            self.push_slice(&b);
            return;
        }
        self.seal_tail();
        self.enqueue(b);
    }

    fn enqueue(&mut self, b: Bytes) {
        let queue = self.queue.get_or_insert_default();
        queue.bytes += b.len();
        queue.chunks.push_back(b);
    }

    /// A borrowed payload: a small one is copied next to its header, a
    /// large one into its own buffer, queued like a shared one (written with
    /// the header by one vectored write, which the kernel takes faster than
    /// one contiguous copy of it).
    pub(crate) fn push_borrowed(&mut self, s: &[u8]) {
        if s.len() <= COALESCE_MAX {
            self.push_slice(s);
        } else {
            self.push_bytes(Bytes::copy_from_slice(s));
        }
    }

    /// Gives mutable room at the end of the coalescing buffer (for masking
    /// in place), with room for `additional` more bytes.
    pub(crate) fn tail_mut(&mut self, additional: usize) -> &mut BytesMut {
        self.reserve(additional);
        &mut self.tail
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let sealed = self.tail.split().freeze();
            self.enqueue(sealed);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.tail.len() + self.queue.as_ref().map_or(0, |q| q.bytes)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `dst` with the pending bytes in order; returns how many slices.
    pub(crate) fn slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let queued = self
            .queue
            .iter()
            .flat_map(|q| q.chunks.iter())
            .map(|b| &b[..]);
        for b in queued.chain(std::iter::once(&self.tail[..])) {
            if n == dst.len() {
                break;
            }
            if !b.is_empty() {
                dst[n] = IoSlice::new(b);
                n += 1;
            }
        }
        n
    }

    /// The first contiguous chunk (for streams without vectored writes).
    pub(crate) fn first_chunk(&self) -> &[u8] {
        match self.queue.as_ref().and_then(|q| q.chunks.front()) {
            Some(b) => b,
            None => &self.tail[..],
        }
    }

    /// Drops `n` written bytes from the front.
    pub(crate) fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let Some(queue) = self.queue.as_mut().filter(|q| !q.chunks.is_empty()) else {
                self.tail.advance(n);
                return;
            };
            let Some(front) = queue.chunks.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                queue.bytes -= n;
                return;
            }
            n -= front.len();
            queue.bytes -= front.len();
            queue.chunks.pop_front();
        }
    }

    /// Bytes of buffer held for coalescing.
    pub(crate) fn capacity(&self) -> usize {
        self.tail.capacity()
    }

    /// Frees the buffers once everything is written (idle connections hold
    /// none); the coalescing buffer becomes the thread's spare if it has none.
    pub(crate) fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.queue = None;
            keep_spare(std::mem::take(&mut self.tail));
        }
    }
}

/// Keeps `buf` as the thread's spare if no sealed chunk still shares its
/// allocation, it is of a useful size, and the thread has none.
fn keep_spare(mut buf: BytesMut) {
    // Asking for one byte more than the empty view has moves it back to the
    // start of its allocation, without allocating or copying, when `buf`
    // owns that alone. (A view still at the start had nothing written
    // through it: not worth keeping.)
    if !buf.try_reclaim(buf.capacity() + 1) || !(SPARE_MIN..=SPARE_MAX).contains(&buf.capacity()) {
        return;
    }
    // Not while the thread is being torn down (its locals are gone).
    let _ = SPARE_TAIL.try_with(|spare| match spare.take() {
        Some(held) => spare.set(Some(held)),
        None => spare.set(Some(buf)),
    });
}

fn take_spare() -> Option<BytesMut> {
    SPARE_TAIL.try_with(Cell::take).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_coalesced_and_queued_chunks() {
        let mut o = Output::default();
        o.push_slice(b"ab");
        o.push_bytes(Bytes::from(vec![b'x'; 2000]));
        o.push_slice(b"cd");
        // The length counts the queue and the tail, whatever is sealed.
        assert_eq!(o.len(), 2004);
        let mut all = Vec::new();
        while !o.is_empty() {
            let before = o.len();
            let mut io = [IoSlice::new(&[]); 4];
            let n = o.slices(&mut io);
            // Write only 3 bytes at a time to exercise partial consumption.
            let chunk: Vec<u8> = io[..n]
                .iter()
                .flat_map(|s| s.iter().copied())
                .take(3)
                .collect();
            all.extend_from_slice(&chunk);
            o.consume(chunk.len());
            assert_eq!(o.len(), before - chunk.len());
        }
        assert_eq!(all.len(), 2004);
        assert_eq!(&all[..2], b"ab");
        assert_eq!(&all[2002..], b"cd");
        o.release_if_empty();
        assert_eq!(o.tail.capacity(), 0);
    }

    /// Writes everything `o` holds, as a driver would, and releases it.
    fn write_all(o: &mut Output) {
        o.consume(o.len());
        o.release_if_empty();
    }

    #[test]
    fn a_released_buffer_is_the_next_connections_spare() {
        // Each test runs on its own thread: the spare starts empty.
        let (mut a, mut b) = (Output::default(), Output::default());
        a.reserve(200);
        a.push_slice(&[7; 150]);
        let buffer = a.tail.as_ptr();
        write_all(&mut a);
        assert_eq!(a.capacity(), 0, "an idle connection holds no buffer");
        // Another connection of the thread writes into the same allocation.
        b.push_slice(&[1; 100]);
        assert_eq!(b.tail.as_ptr(), buffer);
        write_all(&mut b);
        a.push_slice(&[2; 20]);
        assert_eq!(a.tail.as_ptr(), buffer);
        assert_eq!(&a.tail[..], &[2; 20]);
    }

    #[test]
    fn a_buffer_still_shared_with_a_sealed_chunk_is_not_kept() {
        let mut o = Output::default();
        o.push_slice(&[1; 100]);
        // A large payload seals the tail: the sealed chunk shares its buffer.
        o.push_bytes(Bytes::from(vec![2; COALESCE_MAX + 1]));
        let sealed = o.queue.as_ref().and_then(|q| q.chunks.front()).cloned();
        write_all(&mut o);
        assert!(take_spare().is_none(), "kept while a chunk of it lives");
        drop(sealed);
        // Too small or too large: not kept either.
        let mut small = Output::default();
        small.push_slice(&[1; 2]);
        write_all(&mut small);
        assert!(take_spare().is_none());
        let mut large = Output::default();
        large.push_slice(&vec![3; SPARE_MAX + 1]);
        write_all(&mut large);
        assert!(take_spare().is_none());
    }

    #[test]
    fn the_thread_keeps_one_spare() {
        let (mut a, mut b) = (Output::default(), Output::default());
        a.push_slice(&[1; 100]);
        b.push_slice(&[2; 300]);
        let first = a.tail.as_ptr();
        write_all(&mut a);
        write_all(&mut b);
        // The first given back stays; the second is freed.
        let spare = take_spare().expect("a spare");
        assert_eq!(spare.as_ptr(), first);
        assert!(spare.is_empty());
        assert!(take_spare().is_none());
    }

    #[test]
    fn a_frame_gets_its_room_at_once() {
        assert_eq!(Output::coalesced_len(2, 150), 152);
        assert_eq!(Output::coalesced_len(4, COALESCE_MAX), COALESCE_MAX + 4);
        assert_eq!(Output::coalesced_len(4, COALESCE_MAX + 1), 4);
    }
}
