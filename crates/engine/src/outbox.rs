//! A session's queue of frames for the client, one pointer in place.

use std::collections::VecDeque;

use switchboard_wire::Message;

/// Frames waiting for the transport: a queue made by the first push and
/// given back by [`Outbox::release_if_idle`] once the session is quiet (the
/// sweep asks at every tick) or by [`Outbox::clear`]. It is 8 bytes in the
/// session where a `VecDeque` is 32, so an idle session's record is a malloc
/// size class smaller; a busy one pays one more small block while it stays
/// busy.
#[derive(Debug, Default)]
pub(crate) struct Outbox(Option<Box<Queue>>);

#[derive(Debug, Default)]
struct Queue {
    frames: VecDeque<Message>,
    /// A frame was pushed since the last [`Outbox::release_if_idle`].
    pushed: bool,
}

impl Outbox {
    pub(crate) fn push_back(&mut self, m: Message) {
        let q = self.0.get_or_insert_default();
        q.frames.push_back(m);
        q.pushed = true;
    }

    pub(crate) fn pop_front(&mut self) -> Option<Message> {
        self.0.as_mut()?.frames.pop_front()
    }

    pub(crate) fn front(&self) -> Option<&Message> {
        self.0.as_ref()?.frames.front()
    }

    pub(crate) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |q| q.frames.len())
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn retain(&mut self, keep: impl FnMut(&Message) -> bool) {
        if let Some(q) = &mut self.0 {
            q.frames.retain(keep);
        }
    }

    /// Drops every frame and the queue's memory.
    pub(crate) fn clear(&mut self) {
        self.0 = None;
    }

    /// Gives the queue's memory back when no frame waits and none was pushed
    /// since the last call: a session that gets messages more often than it
    /// is asked keeps its queue (no allocation per message), a quiet one
    /// holds none after two calls.
    pub(crate) fn release_if_idle(&mut self) {
        let Some(q) = &mut self.0 else {
            return;
        };
        if std::mem::take(&mut q.pushed) || !q.frames.is_empty() {
            return;
        }
        self.0 = None;
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
    fn memory_is_given_back_only_when_empty_and_quiet() {
        let mut q = Outbox::default();
        assert!(!q.holds_memory(), "nothing until the first push");
        q.push_back(text("a"));
        q.release_if_idle();
        assert!(q.holds_memory(), "a frame still waits");
        q.release_if_idle();
        assert!(q.holds_memory(), "a frame still waits");
        assert_eq!(q.pop_front(), Some(text("a")));
        q.release_if_idle();
        assert!(
            !q.holds_memory(),
            "empty, and nothing pushed since the last ask"
        );
        q.push_back(text("b"));
        q.clear();
        assert!(!q.holds_memory());
        assert!(q.is_empty());
    }

    #[test]
    fn a_session_busy_between_asks_keeps_its_queue() {
        let mut q = Outbox::default();
        q.push_back(text("a"));
        assert_eq!(q.pop_front(), Some(text("a")));
        // Sent before the ask: kept, as more are likely to follow.
        q.release_if_idle();
        assert!(q.holds_memory());
        for s in ["b", "c"] {
            q.push_back(text(s));
            assert_eq!(q.pop_front(), Some(text(s)));
            q.release_if_idle();
            assert!(q.holds_memory(), "busy at every ask");
        }
        // A whole interval quiet: given back.
        q.release_if_idle();
        assert!(!q.holds_memory());
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
