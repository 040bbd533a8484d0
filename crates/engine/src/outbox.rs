//! A session's queue of frames for the client, one pointer in place.

use std::collections::VecDeque;

use switchboard_wire::Message;

/// Frames waiting for the transport: a queue made by the first push and
/// given back by [`Outbox::release_if_empty`] (the sweep does it for quiet
/// sessions) or by [`Outbox::clear`]. It is 8 bytes in the session where a
/// `VecDeque` is 32, so an idle session's record is a malloc size class
/// smaller; a busy one pays one more small block while it stays busy.
#[derive(Debug, Default)]
#[allow(clippy::box_collection, reason = "8 bytes in every session, not 32")]
pub(crate) struct Outbox(Option<Box<VecDeque<Message>>>);

impl Outbox {
    pub(crate) fn push_back(&mut self, m: Message) {
        self.0.get_or_insert_default().push_back(m);
    }

    pub(crate) fn pop_front(&mut self) -> Option<Message> {
        self.0.as_mut()?.pop_front()
    }

    pub(crate) fn front(&self) -> Option<&Message> {
        self.0.as_ref()?.front()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.len())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&Message) -> bool) {
        if let Some(q) = &mut self.0 {
            q.retain(keep);
        }
    }

    /// Drops every frame and the queue's memory.
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }

    /// Gives the queue's memory back when no frame waits. A busy session
    /// then makes its queue again at most once per sweep tick. Keeping it one
    /// tick longer (to skip that allocation) was tried: during a wave of
    /// connections it kept a second's worth of handshakes' queues alive, and
    /// the heap's high-water mark stayed about 60 B per idle connection
    /// higher (10,000 idle Socket.IO connections, three runs each).
    pub(crate) fn release_if_empty(&mut self) {
        if self.is_empty() {
            self.0 = None;
        }
    }

    /// Whether the queue's memory is held (for tests).
    #[cfg(test)]
    fn holds_memory(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &'static str) -> Message {
        Message::Text(s.into())
    }

    #[test]
    fn first_in_first_out() {
        let mut q = Outbox::default();
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
        q.push_back(text("a"));
        q.push_back(text("b"));
        assert_eq!(q.len(), 2);
        assert_eq!(q.front(), Some(&text("a")));
        assert_eq!(q.pop_front(), Some(text("a")));
        assert_eq!(q.pop_front(), Some(text("b")));
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn memory_is_given_back_only_when_empty() {
        let mut q = Outbox::default();
        assert!(!q.holds_memory(), "nothing until the first push");
        q.push_back(text("a"));
        q.release_if_empty();
        assert!(q.holds_memory(), "a frame still waits");
        assert_eq!(q.pop_front(), Some(text("a")));
        assert!(q.holds_memory(), "kept while the session is busy");
        q.release_if_empty();
        assert!(!q.holds_memory());
        q.push_back(text("b"));
        q.clear();
        assert!(!q.holds_memory());
        assert!(q.is_empty());
    }

    #[test]
    fn retain_keeps_order() {
        let mut q = Outbox::default();
        q.retain(|_| false);
        for s in ["6", "4a", "6", "4b"] {
            q.push_back(text(s));
        }
        q.retain(|m| !matches!(m, Message::Text(t) if t.as_str() == "6"));
        assert_eq!(q.pop_front(), Some(text("4a")));
        assert_eq!(q.pop_front(), Some(text("4b")));
        assert!(q.is_empty());
    }

    #[test]
    fn one_pointer_in_place() {
        assert_eq!(size_of::<Outbox>(), size_of::<usize>());
    }
}
