//! The worker's read buffer, lent to one connection at a time.
//!
//! A connection with nothing buffered reads into the worker's buffer and
//! answers its messages in place there
//! ([`Connection::next_event_with`](switchboard_wire::Connection::next_event_with)),
//! so what arrives is copied neither out of a scratch buffer nor into a
//! buffer of the connection's own. The buffer goes back to the worker when
//! the connection has been driven: a short partial frame left in it is
//! copied into the connection's own buffer; a long one (a large frame still
//! arriving) keeps the buffer, and the worker takes a fresh one next time.
//! An idle connection holds no read buffer either way.

use bytes::BytesMut;
use switchboard_wire::Connection;

/// The size of the lent buffer.
const LEND_SIZE: usize = 64 * 1024;

/// A partial frame up to this long is copied out when the buffer goes back;
/// a longer one keeps the buffer.
const COPY_OUT_MAX: usize = 4 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Lend {
    /// The worker's buffer while it is home; the connection's own (empty)
    /// buffer while the worker's is lent.
    buf: BytesMut,
    lent: bool,
}

impl Lend {
    /// Lends the buffer to `ws` if `ws` has nothing buffered, no room of its
    /// own to read into, and the buffer is home.
    pub(crate) fn lend_to(&mut self, ws: &mut Connection, room: usize) {
        let rbuf = ws.read_buffer();
        if self.lent || !rbuf.is_empty() || rbuf.capacity() >= room {
            return;
        }
        self.buf.clear();
        // Reuses the allocation unless a message split off it is still
        // alive somewhere (then this allocates a new one).
        self.buf.reserve(LEND_SIZE);
        std::mem::swap(rbuf, &mut self.buf);
        self.lent = true;
    }

    /// Takes the buffer back from `ws` after it was driven (a no-op if it
    /// was not lent).
    pub(crate) fn take_back(&mut self, ws: &mut Connection) {
        if !std::mem::take(&mut self.lent) {
            return;
        }
        let rbuf = ws.read_buffer();
        if rbuf.len() > COPY_OUT_MAX {
            // The connection keeps the worker's buffer; its own empty one
            // becomes the worker's.
            return;
        }
        self.buf.extend_from_slice(rbuf);
        rbuf.clear();
        std::mem::swap(rbuf, &mut self.buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_wire::{Config, Role};

    #[test]
    fn a_partial_frame_goes_back_with_the_connection_and_the_buffer_home() {
        let mut lend = Lend::default();
        let mut ws = Connection::new(Role::Server, Config::default(), None);
        lend.lend_to(&mut ws, 16 * 1024);
        assert!(ws.read_buffer().capacity() >= LEND_SIZE);
        let home = ws.read_buffer().as_ptr();
        // A short partial frame is copied out; the buffer comes home.
        ws.read_buffer().extend_from_slice(&[0x81, 0x85, 1, 2]);
        lend.take_back(&mut ws);
        assert_eq!(&ws.read_buffer()[..], &[0x81, 0x85, 1, 2]);
        assert!(ws.read_buffer().capacity() < LEND_SIZE);
        // Not lent again while the connection has input of its own.
        lend.lend_to(&mut ws, 16 * 1024);
        assert!(!lend.lent);
        // Once it is empty, the same allocation is lent again.
        ws.read_buffer().clear();
        lend.lend_to(&mut ws, 16 * 1024);
        assert_eq!(ws.read_buffer().as_ptr(), home);
        // A long partial frame keeps the buffer; the worker lends another.
        ws.read_buffer()
            .extend_from_slice(&vec![0u8; COPY_OUT_MAX + 1]);
        lend.take_back(&mut ws);
        assert_eq!(ws.read_buffer().len(), COPY_OUT_MAX + 1);
        assert_eq!(ws.read_buffer().as_ptr(), home);
        let mut other = Connection::new(Role::Server, Config::default(), None);
        lend.lend_to(&mut other, 16 * 1024);
        assert_ne!(other.read_buffer().as_ptr(), home);
        lend.take_back(&mut other);
        assert_eq!(other.read_buffer().len(), 0);
    }
}
