//! The outgoing byte queue: small frames coalesce into one buffer, large
//! payloads are queued as shared `Bytes` and written with vectored IO.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// Payloads up to this size are copied next to their header; larger ones are
/// queued by reference (no copy, shared with other recipients).
pub(crate) const COALESCE_MAX: usize = 1024;

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
        self.tail.extend_from_slice(s);
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

    /// Gives mutable room at the end of the coalescing buffer (for masking in place).
    pub(crate) fn tail_mut(&mut self) -> &mut BytesMut {
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

    /// Frees the buffers once everything is written (idle connections hold none).
    pub(crate) fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.tail = BytesMut::new();
            self.queue = None;
        }
    }
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
}
