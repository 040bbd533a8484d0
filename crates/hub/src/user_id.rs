//! User ids as the hub keeps them.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A user id in shared text. The text may be longer than the id: an adapter
/// that keeps a string ending with the id anyway (a user's personal room,
/// `user:<id>`) lends it, and one allocation serves both. Compared, hashed
/// and borrowed as the id alone.
#[derive(Clone)]
pub struct UserId {
    text: Arc<str>,
    /// Where the id starts in `text`.
    start: u32,
}

impl UserId {
    /// The id `id`.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self {
            text: id.into(),
            start: 0,
        }
    }

    /// The id that follows `prefix` in `text`; `None` unless `text` starts
    /// with `prefix`.
    pub fn after(text: Arc<str>, prefix: &str) -> Option<Self> {
        if !text.starts_with(prefix) {
            return None;
        }
        let start = u32::try_from(prefix.len()).ok()?;
        Some(Self { text, start })
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        self.text.get(self.start as usize..).unwrap_or_default()
    }

    /// The whole shared text: the id, or the longer string that ends with it.
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }

    /// Where the id starts in [`UserId::text`].
    pub(crate) fn start(&self) -> u32 {
        self.start
    }
}

impl std::ops::Deref for UserId {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for UserId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl Hash for UserId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialEq for UserId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for UserId {}

impl std::fmt::Debug for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Arc<str>> for UserId {
    fn from(id: Arc<str>) -> Self {
        Self::new(id)
    }
}

impl From<&Arc<str>> for UserId {
    fn from(id: &Arc<str>) -> Self {
        Self::new(id.clone())
    }
}

impl From<&str> for UserId {
    fn from(id: &str) -> Self {
        Self::new(id)
    }
}

impl From<String> for UserId {
    fn from(id: String) -> Self {
        Self::new(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn an_id_lent_by_a_longer_string_is_the_id_alone() {
        let room: Arc<str> = Arc::from("user:alice");
        let lent = UserId::after(room.clone(), "user:").unwrap();
        assert_eq!(lent.as_str(), "alice");
        assert!(Arc::ptr_eq(lent.text(), &room), "no copy");
        assert_eq!(lent, UserId::from("alice"));
        let mut users = HashMap::new();
        users.insert(lent, 1);
        assert_eq!(users.get("alice"), Some(&1));
        assert_eq!(UserId::after(room, "room:"), None);
        assert_eq!(format!("{}", UserId::from("bob")), "bob");
    }
}
