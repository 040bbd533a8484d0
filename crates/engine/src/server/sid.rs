//! Session ids, kept inline, and the session table keyed by them.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::socket::EngineSocket;

/// Characters of a session id: 15 random bytes in URL-safe base64.
const SID_LEN: usize = 20;

/// An Engine.IO session id, held in place: a session carries its 20 bytes
/// instead of a pointer to a separate allocation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Sid([u8; SID_LEN]);

impl Sid {
    /// A fresh random id.
    pub fn random() -> Self {
        use base64::Engine as _;
        let bytes: [u8; 15] = rand::random();
        let mut out = [0u8; SID_LEN];
        let written = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut out)
            .unwrap_or(0);
        debug_assert_eq!(written, SID_LEN);
        Self(out)
    }

    /// An id given as text, if it has the shape of one (20 URL-safe
    /// base64 characters).
    pub fn parse(s: &str) -> Option<Self> {
        let ok = |c: &u8| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_';
        let bytes: [u8; SID_LEN] = s.as_bytes().try_into().ok()?;
        bytes.iter().all(ok).then_some(Self(bytes))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // URL-safe base64 is ASCII; the fallback is never taken.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::ops::Deref for Sid {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Sid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A session in the table: hashed and compared by its id, so the table
/// holds one pointer per session and is looked up by `&str`.
pub(crate) struct ById<D>(pub(crate) Arc<EngineSocket<D>>);

impl<D> Hash for ById<D> {
    fn hash<S: Hasher>(&self, state: &mut S) {
        self.0.id().hash(state);
    }
}

impl<D> PartialEq for ById<D> {
    fn eq(&self, other: &Self) -> bool {
        self.0.id() == other.0.id()
    }
}

impl<D> Eq for ById<D> {}

impl<D> Borrow<str> for ById<D> {
    fn borrow(&self) -> &str {
        self.0.id()
    }
}

/// Live sessions by id.
pub(crate) type Sessions<D> = HashSet<ById<D>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sid_is_twenty_url_safe_characters_and_random() {
        let (a, b) = (Sid::random(), Sid::random());
        assert_eq!(a.len(), SID_LEN);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(format!("{a}"), a.as_str());
        assert_eq!(Sid::parse(&a), Some(a));
        for bad in ["", "short", "abcdefghij/klmnopqrs", "abcdefghijklmnopqrstu"] {
            assert_eq!(Sid::parse(bad), None, "{bad}");
        }
    }
}
