//! Exactly once, in order, across reconnects.
//!
//! Per room the client keeps the position `(epoch, offset)` of the last
//! message it delivered. A (re)join carries it as `since`; the server
//! answers with what was missed (or `recovered: false` and its current
//! position). Live messages that arrive while that join is in flight are
//! held back, then delivered after the missed ones; anything at or below the
//! last delivered offset of the same epoch is a duplicate and dropped.

use std::collections::HashMap;

/// What the tracker needs to know of a room message.
pub trait Positioned {
    /// The room log's epoch.
    fn epoch(&self) -> &str;
    /// Its offset in that log.
    fn offset(&self) -> u64;
}

/// A point in a room's log: after `offset` of `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The log's epoch.
    pub epoch: String,
    /// The last offset delivered.
    pub offset: u64,
}

/// The server's answer to a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinAnswer<M> {
    /// The room's epoch now.
    pub epoch: String,
    /// Its last offset now.
    pub offset: u64,
    /// Whether everything after `since` came in `missed`.
    pub recovered: bool,
    /// The messages after `since`, oldest first.
    pub missed: Vec<M>,
}

/// What a join answer means for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejoined<M> {
    /// Messages to deliver now, in order.
    pub deliver: Vec<M>,
    /// Messages may have been lost (the log no longer held them, or it is a
    /// new log): the application should refetch the room's state.
    pub gap: bool,
}

#[derive(Debug)]
struct Room<M> {
    presence: bool,
    since: Option<Since>,
    /// Live messages held back while a join is in flight.
    held: Option<Vec<M>>,
}

/// The rooms a client is in and where it is in each.
#[derive(Debug)]
pub struct Recovery<M> {
    rooms: HashMap<String, Room<M>>,
}

impl<M> Default for Recovery<M> {
    fn default() -> Self {
        Self {
            rooms: HashMap::new(),
        }
    }
}

impl<M: Positioned> Recovery<M> {
    /// A join of `room` is being sent: returns the `since` to send with it
    /// (none the first time). Live messages are held until
    /// [`Recovery::joined`].
    pub fn joining(&mut self, room: &str, presence: bool) -> Option<Since> {
        let r = self.rooms.entry(room.to_owned()).or_insert(Room {
            presence,
            since: None,
            held: None,
        });
        r.presence = presence;
        r.held = Some(Vec::new());
        r.since.clone()
    }

    /// The join was answered: what to deliver, in order.
    pub fn joined(&mut self, room: &str, answer: JoinAnswer<M>) -> Rejoined<M> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Rejoined {
                deliver: Vec::new(),
                gap: false,
            };
        };
        let held = r.held.take().unwrap_or_default();
        let had_position = r.since.is_some();
        let mut deliver = Vec::new();
        let gap = if answer.recovered {
            let mut last = r.since.as_ref().map_or(0, |s| s.offset);
            for m in answer.missed {
                if m.epoch() == answer.epoch && m.offset() > last {
                    last = m.offset();
                    deliver.push(m);
                }
            }
            r.since = Some(Since {
                epoch: answer.epoch,
                offset: last.max(answer.offset),
            });
            false
        } else {
            r.since = Some(Since {
                epoch: answer.epoch,
                offset: answer.offset,
            });
            had_position
        };
        let since = r.since.as_mut().unwrap_or_else(|| unreachable!());
        for m in held {
            if m.epoch() == since.epoch && m.offset() > since.offset {
                since.offset = m.offset();
                deliver.push(m);
            }
        }
        Rejoined { deliver, gap }
    }

    /// A join failed: the room is left.
    pub fn join_failed(&mut self, room: &str) {
        if self.rooms.get(room).is_some_and(|r| r.since.is_none()) {
            self.rooms.remove(room);
        } else if let Some(r) = self.rooms.get_mut(room) {
            r.held = None;
        }
    }

    /// The connection dropped before a join's answer: the room stays, to be
    /// joined again (with the position it had) on the next connection.
    pub fn interrupted(&mut self, room: &str) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.held = None;
        }
    }

    /// A live message: `Some` to deliver now, `None` when it is held back or
    /// a duplicate. Messages of rooms the client did not join (its personal
    /// room `user:<id>`) are delivered as they come, untracked.
    pub fn message(&mut self, room: &str, m: M) -> Option<M> {
        let Some(r) = self.rooms.get_mut(room) else {
            return Some(m);
        };
        if let Some(held) = &mut r.held {
            held.push(m);
            return None;
        }
        match &mut r.since {
            Some(since) if since.epoch == m.epoch() => {
                if m.offset() <= since.offset {
                    return None;
                }
                since.offset = m.offset();
            }
            // Another epoch: the room's log was reset; start over from it.
            _ => {
                r.since = Some(Since {
                    epoch: m.epoch().to_owned(),
                    offset: m.offset(),
                });
            }
        }
        Some(m)
    }

    /// The room was left.
    pub fn left(&mut self, room: &str) {
        self.rooms.remove(room);
    }

    /// Rooms to join again after a reconnect, with presence wanted or not.
    pub fn rooms(&self) -> Vec<(String, bool)> {
        let mut rooms: Vec<(String, bool)> = self
            .rooms
            .iter()
            .map(|(k, r)| (k.clone(), r.presence))
            .collect();
        rooms.sort();
        rooms
    }

    /// Where the client is in `room`.
    pub fn position(&self, room: &str) -> Option<&Since> {
        self.rooms.get(room)?.since.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Msg(&'static str, u64);

    impl Positioned for Msg {
        fn epoch(&self) -> &str {
            self.0
        }
        fn offset(&self) -> u64 {
            self.1
        }
    }

    fn answer(
        epoch: &'static str,
        offset: u64,
        recovered: bool,
        missed: &[u64],
    ) -> JoinAnswer<Msg> {
        JoinAnswer {
            epoch: epoch.into(),
            offset,
            recovered,
            missed: missed.iter().map(|&o| Msg(epoch, o)).collect(),
        }
    }

    fn offsets(v: &[Msg]) -> Vec<u64> {
        v.iter().map(|m| m.1).collect()
    }

    #[test]
    fn first_join_then_live_messages_once_each() {
        let mut r = Recovery::default();
        assert_eq!(r.joining("room", false), None);
        let j = r.joined("room", answer("e", 3, false, &[]));
        assert!(j.deliver.is_empty() && !j.gap, "a first join is no gap");
        assert_eq!(r.message("room", Msg("e", 4)), Some(Msg("e", 4)));
        assert_eq!(r.message("room", Msg("e", 4)), None, "duplicate");
        assert_eq!(r.message("room", Msg("e", 3)), None, "older");
        assert_eq!(
            r.message("user:me", Msg("e", 1)),
            Some(Msg("e", 1)),
            "not joined (a personal room): delivered untracked"
        );
        assert_eq!(
            r.position("room"),
            Some(&Since {
                epoch: "e".into(),
                offset: 4
            })
        );
    }

    #[test]
    fn a_rejoin_delivers_missed_then_held_live_messages_in_order_without_duplicates() {
        let mut r = Recovery::default();
        r.joining("room", true);
        r.joined("room", answer("e", 2, false, &[]));
        // Disconnected; back: the rejoin carries the position.
        let since = r.joining("room", true).unwrap();
        assert_eq!(
            since,
            Since {
                epoch: "e".into(),
                offset: 2
            }
        );
        // Live messages overtake the answer, one of them also in `missed`.
        assert_eq!(r.message("room", Msg("e", 5)), None);
        assert_eq!(r.message("room", Msg("e", 6)), None);
        let j = r.joined("room", answer("e", 5, true, &[3, 4, 5]));
        assert_eq!(offsets(&j.deliver), [3, 4, 5, 6]);
        assert!(!j.gap);
        assert_eq!(r.message("room", Msg("e", 6)), None);
        assert_eq!(r.message("room", Msg("e", 7)), Some(Msg("e", 7)));
        assert_eq!(r.rooms(), [("room".to_owned(), true)]);
    }

    #[test]
    fn a_lost_position_is_a_gap_and_continues_from_the_new_log() {
        let mut r = Recovery::default();
        r.joining("room", false);
        r.joined("room", answer("old", 9, false, &[]));
        r.joining("room", false);
        r.message("room", Msg("new", 2));
        let j = r.joined("room", answer("new", 1, false, &[]));
        assert!(j.gap, "the server no longer has what followed offset 9");
        assert_eq!(
            offsets(&j.deliver),
            [2],
            "held live messages of the new log"
        );
        assert_eq!(r.message("room", Msg("new", 3)), Some(Msg("new", 3)));
    }

    #[test]
    fn leaving_and_failed_joins_forget_the_room() {
        let mut r: Recovery<Msg> = Recovery::default();
        r.joining("a", false);
        r.join_failed("a");
        assert!(r.rooms().is_empty());
        r.joining("b", false);
        r.joined("b", answer("e", 0, false, &[]));
        r.joining("b", false);
        r.join_failed("b");
        assert_eq!(
            r.rooms().len(),
            1,
            "a failed rejoin keeps the position for the next try"
        );
        assert_eq!(r.message("b", Msg("e", 1)), Some(Msg("e", 1)));
        r.left("b");
        assert!(r.rooms().is_empty());
    }
}
