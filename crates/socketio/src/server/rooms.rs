//! A namespace's rooms and the sockets in each, held directly: a broadcast
//! walks a room's sockets without looking each one up.

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexSet;
use switchboard_wire::io::shrunk_capacity;

use super::namespace::{ById, HasId};
use super::socket::Socket;

/// Rooms by name, in two tables: a room is in one of them at most.
///
/// Most rooms (a user's personal room, a private conversation) hold one
/// socket: they map the name to the socket itself, 24 bytes a slot and no
/// set allocated. A room of several keeps its sockets in join order in one
/// dense array (a broadcast walks them in the order their connections
/// opened); a leave moves the last socket into the gap, and a room down to
/// one socket moves back to the first table.
pub(crate) struct Rooms<S = Socket> {
    single: HashMap<Arc<str>, S>,
    #[allow(clippy::box_collection, reason = "a slot of 24 bytes, not 72")]
    shared: HashMap<Arc<str>, Box<IndexSet<ById<S>>>>,
}

impl<S> Default for Rooms<S> {
    fn default() -> Self {
        Self {
            single: HashMap::new(),
            shared: HashMap::new(),
        }
    }
}

impl<S: HasId> Rooms<S> {
    /// The sockets in `room` (none for a room nobody is in).
    pub(crate) fn members(&self, room: &str) -> impl Iterator<Item = &S> {
        let one = self.single.get(room);
        let many = self
            .shared
            .get(room)
            .into_iter()
            .flat_map(|set| set.iter().map(|s| &s.0));
        one.into_iter().chain(many)
    }

    /// Adds `socket` to `room`; returns the room's shared name (`name()`
    /// makes it for a room nobody is in yet).
    pub(crate) fn add(
        &mut self,
        room: &str,
        name: impl FnOnce() -> Arc<str>,
        socket: &S,
    ) -> Arc<str> {
        if let Some(set) = self.shared.get_mut(room) {
            set.insert(ById(socket.clone()));
        }
        if let Some((key, _)) = self.shared.get_key_value(room) {
            return key.clone();
        }
        match self.single.get_key_value(room) {
            Some((key, first)) if first.id() == socket.id() => return key.clone(),
            Some(_) => {
                if let Some((key, first)) = self.single.remove_entry(room) {
                    let set = IndexSet::from([ById(first), ById(socket.clone())]);
                    self.shared.insert(key.clone(), Box::new(set));
                    return key;
                }
            }
            None => {}
        }
        let name = name();
        debug_assert_eq!(&*name, room);
        self.single.insert(name.clone(), socket.clone());
        name
    }

    /// Takes the socket `id` out of `room`; a room left empty is gone.
    pub(crate) fn remove(&mut self, room: &str, id: &str) {
        if self.single.get(room).is_some_and(|s| s.id() == id) {
            self.single.remove(room);
            if let Some(to) = shrunk_capacity(self.single.len(), self.single.capacity()) {
                self.single.shrink_to(to);
            }
            return;
        }
        let Some(set) = self.shared.get_mut(room) else {
            return;
        };
        set.swap_remove(id);
        if let Some(to) = shrunk_capacity(set.len(), set.capacity()) {
            set.shrink_to(to);
        }
        if set.len() <= 1
            && let Some((key, set)) = self.shared.remove_entry(room)
            && let Some(last) = set.into_iter().next()
        {
            self.single.insert(key, last.0);
            if let Some(to) = shrunk_capacity(self.shared.len(), self.shared.capacity()) {
                self.shared.shrink_to(to);
            }
        }
    }

    /// The names of the rooms someone is in.
    pub(crate) fn names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.single.keys().chain(self.shared.keys())
    }
}

#[cfg(test)]
mod tests {
    use super::{HasId, Rooms};
    use std::sync::Arc;

    impl HasId for Arc<str> {
        fn id(&self) -> &str {
            self
        }
    }

    fn ids<'a>(r: &'a Rooms<Arc<str>>, room: &str) -> Vec<&'a str> {
        r.members(room).map(|s| &**s).collect()
    }

    fn join(r: &mut Rooms<Arc<str>>, room: &str, socket: &str) -> Arc<str> {
        r.add(room, || Arc::from(room), &Arc::from(socket))
    }

    #[test]
    fn members_keep_join_order_and_a_leave_from_the_middle_keeps_the_rest() {
        let mut r = Rooms::default();
        for s in ["a", "b", "c", "d", "e", "b"] {
            join(&mut r, "room", s);
        }
        assert_eq!(
            ids(&r, "room"),
            ["a", "b", "c", "d", "e"],
            "joined once each, in order"
        );
        r.remove("room", "b");
        r.remove("room", "never");
        let mut left = ids(&r, "room");
        left.sort_unstable();
        assert_eq!(left, ["a", "c", "d", "e"]);
        for s in ["a", "e", "c"] {
            r.remove("room", s);
        }
        assert_eq!(ids(&r, "room"), ["d"]);
        assert!(
            r.shared.is_empty(),
            "a room of one is back in the first table"
        );
        r.remove("room", "d");
        assert!(ids(&r, "room").is_empty());
        assert_eq!(r.names().count(), 0, "the last one out empties the room");
    }

    #[test]
    fn a_room_is_in_one_table_and_keeps_its_first_name() {
        let mut r = Rooms::default();
        let first = join(&mut r, "x", "a");
        assert!(Arc::ptr_eq(&first, &join(&mut r, "x", "a")));
        assert!(r.shared.is_empty(), "joining twice adds nobody");
        let shared = join(&mut r, "x", "b");
        assert!(Arc::ptr_eq(&first, &shared), "the name moves with the room");
        assert!(r.single.is_empty() && r.shared.len() == 1);
        join(&mut r, "y", "a");
        let mut names: Vec<_> = r.names().map(|n| n.to_string()).collect();
        names.sort_unstable();
        assert_eq!(names, ["x", "y"]);
        r.remove("x", "a");
        assert_eq!(ids(&r, "x"), ["b"]);
        assert_eq!(ids(&r, "y"), ["a"]);
        assert!(r.shared.is_empty());
    }

    #[test]
    fn the_tables_give_their_room_back_after_a_wave_of_leaves() {
        let mut r = Rooms::default();
        for i in 0..5_000 {
            join(&mut r, &format!("personal{i}"), &format!("s{i}"));
            join(&mut r, "big", &format!("s{i}"));
        }
        let (single, big) = (r.single.capacity(), r.shared["big"].capacity());
        for i in 10..5_000 {
            r.remove(&format!("personal{i}"), &format!("s{i}"));
            r.remove("big", &format!("s{i}"));
        }
        assert!(single >= 5_000 && big >= 5_000);
        assert!(r.single.capacity() <= 256, "{}", r.single.capacity());
        assert!(r.shared["big"].capacity() <= 256);
        let mut left = ids(&r, "big");
        left.sort_unstable();
        assert_eq!(left.len(), 10);
        assert_eq!(ids(&r, "personal3"), ["s3"]);
    }

    #[test]
    fn a_slot_of_the_first_table_is_24_bytes() {
        // What every personal room costs in the table, beyond its name.
        assert_eq!(std::mem::size_of::<(Arc<str>, super::Socket)>(), 24);
    }
}
