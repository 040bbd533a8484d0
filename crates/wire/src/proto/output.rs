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
    /// Large payloads queued by reference; boxed because most connections
    /// never queue one, and an idle connection should stay small.
    #[allow(clippy::box_collection, reason = "8 bytes when idle instead of 32")]
    queue: Option<Box<VecDeque<Bytes>>>,
    tail: BytesMut,
    len: usize,
}

impl Output {
    pub(crate) fn push_slice(&mut self, s: &[u8]) {
        self.tail.extend_from_slice(s);
        self.len += s.len();
    }

    pub(crate) fn push_bytes(&mut self, b: Bytes) {
        if b.len() <= COALESCE_MAX {
            self.push_slice(&b);
            return;
        }
        self.seal_tail();
        self.len += b.len();
        self.queue.get_or_insert_default().push_back(b);
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

    /// Accounts for bytes appended through [`Output::tail_mut`].
    pub(crate) fn added(&mut self, n: usize) {
        self.len += n;
    }

    fn seal_tail(&mut self) {
        if !self.tail.is_empty() {
            let sealed = self.tail.split().freeze();
            self.queue.get_or_insert_default().push_back(sealed);
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills `dst` with the pending bytes in order; returns how many slices.
    pub(crate) fn slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let queued = self.queue.iter().flat_map(|q| q.iter()).map(|b| &b[..]);
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
        match self.queue.as_ref().and_then(|q| q.front()) {
            Some(b) => b,
            None => &self.tail[..],
        }
    }

    /// Drops `n` written bytes from the front.
    pub(crate) fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(queue) = self.queue.as_mut().filter(|q| !q.is_empty()) else {
                self.tail.advance(n);
                return;
            };
            let Some(front) = queue.front_mut() else {
                return;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            queue.pop_front();
        }
    }

    /// Bytes of buffer held for coalescing.
    pub(crate) fn capacity(&self) -> usize {
        self.tail.capacity()
    }

    /// Frees the buffers once everything is written (idle connections hold none).
    pub(crate) fn release_if_empty(&mut self) {
        if self.len == 0 {
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
        let mut all = Vec::new();
        while !o.is_empty() {
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
        }
        assert_eq!(all.len(), 2004);
        assert_eq!(&all[..2], b"ab");
        assert_eq!(&all[2002..], b"cd");
        o.release_if_empty();
        assert_eq!(o.tail.capacity(), 0);
    }
}
