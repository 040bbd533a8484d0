//! A node's presence as it is written to Redis, and read back.
//!
//! Each node keeps one key, `{prefix}node:{id}`, holding its
//! [`LocalPresence`] as JSON, with a TTL of `presence_ttl` refreshed every
//! third of it; the sorted set `{prefix}nodes` scores each node by its last
//! refresh. A node that dies stops refreshing: its key expires and its users
//! go offline on every other node by themselves, with no cleanup to run.
//!
//! ```json
//! {"rooms": {"ROOM": [["USER", CONNECTIONS, SINCE_MS], …]},
//!  "users": {"USER": [CONNECTIONS, "INFO JSON TEXT" | null]}}
//! ```

use std::collections::{HashMap, HashSet};
use std::time::SystemTime;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::codec::{millis, time};
use crate::remote::{LocalPresence, RemoteView};

/// Most users remembered as "last seen elsewhere".
const MAX_LAST_SEEN: usize = 100_000;

pub(crate) fn encode(p: &LocalPresence) -> String {
    let rooms: Map<String, Value> = p
        .rooms
        .iter()
        .map(|(room, users)| {
            let users = users
                .iter()
                .map(|(u, n, since)| json!([u, n, millis(*since)]))
                .collect();
            (room.clone(), Value::Array(users))
        })
        .collect();
    let users: Map<String, Value> = p
        .users
        .iter()
        .map(|(u, n, info)| {
            let info = info
                .as_ref()
                .map(|i| Value::String(String::from_utf8_lossy(i).into_owned()));
            (u.clone(), json!([n, info]))
        })
        .collect();
    json!({"rooms": rooms, "users": users}).to_string()
}

/// Decodes a node's presence; what is malformed in it is skipped.
pub(crate) fn decode(text: &str) -> LocalPresence {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let count = |v: &Value| v.as_u64().and_then(|n| usize::try_from(n).ok());
    let rooms = v["rooms"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(room, users)| {
            let users = users
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| {
                    Some((
                        u[0].as_str()?.to_owned(),
                        count(&u[1])?,
                        time(u[2].as_u64()?),
                    ))
                })
                .collect();
            (room.clone(), users)
        })
        .collect();
    let users = v["users"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(user, u)| {
            let info = u[1].as_str().map(|s| Bytes::from(s.to_owned()));
            Some((user.clone(), count(&u[0])?, info))
        })
        .collect();
    LocalPresence { rooms, users }
}

/// Builds successive [`RemoteView`]s, remembering when users who were
/// online elsewhere were last seen.
#[derive(Debug, Default)]
pub(crate) struct Merger {
    online: HashSet<String>,
    last_seen: HashMap<String, SystemTime>,
}

impl Merger {
    /// The view of `nodes`; users online in the previous view and in none
    /// of these were last seen `now`.
    pub(crate) fn view(&mut self, nodes: Vec<LocalPresence>, now: SystemTime) -> RemoteView {
        let mut view = RemoteView::default();
        for node in nodes {
            view.add(node);
        }
        for user in self.online.drain() {
            if !view.users.contains_key(&user) {
                self.last_seen.insert(user, now);
            }
        }
        self.online.extend(view.users.keys().cloned());
        for user in view.users.keys() {
            self.last_seen.remove(user);
        }
        if self.last_seen.len() > MAX_LAST_SEEN {
            // Forget the longest gone.
            let mut by_age: Vec<SystemTime> = self.last_seen.values().copied().collect();
            by_age.sort_unstable();
            let cut = by_age[by_age.len() - MAX_LAST_SEEN / 2];
            self.last_seen.retain(|_, t| *t >= cut);
        }
        view.last_seen.clone_from(&self.last_seen);
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_round_trips_through_json() {
        let since = time(1_700_000_000_000);
        let p = LocalPresence {
            rooms: vec![("r".into(), vec![("alice".into(), 2, since)])],
            users: vec![
                ("alice".into(), 2, Some(Bytes::from_static(b"{\"n\":1}"))),
                ("bob".into(), 1, None),
            ],
        };
        let mut back = decode(&encode(&p));
        back.users.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(back, p);
        assert_eq!(decode("not json"), LocalPresence::default());
    }

    #[test]
    fn users_gone_from_every_node_are_last_seen_when_noticed() {
        let since = time(1_700_000_000_000);
        let node = |users: &[&str]| LocalPresence {
            rooms: vec![(
                "r".into(),
                users.iter().map(|u| ((*u).to_owned(), 1, since)).collect(),
            )],
            users: users.iter().map(|u| ((*u).to_owned(), 1, None)).collect(),
        };
        let mut m = Merger::default();
        let t1 = time(1_700_000_001_000);
        let v = m.view(vec![node(&["a", "b"]), node(&["b"])], t1);
        assert_eq!(v.users["b"].0, 2);
        assert_eq!(v.rooms["r"]["b"].0, 2);
        assert!(v.last_seen.is_empty());
        let t2 = time(1_700_000_002_000);
        let v = m.view(vec![node(&["b"])], t2);
        assert_eq!(v.last_seen.get("a"), Some(&t2));
        assert!(!v.in_room("r", "a"));
        let v = m.view(vec![node(&["a"])], time(1_700_000_003_000));
        assert!(!v.last_seen.contains_key("a"), "online again");
        assert_eq!(v.last_seen.get("b"), Some(&time(1_700_000_003_000)));
    }
}
