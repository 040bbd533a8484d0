//! How publications travel between nodes and sit in Redis streams.
//!
//! A broadcast is `"{offset} {epoch} "` followed by a body the publishing
//! node encoded: the append script (which assigns the offset) prefixes the
//! position, so the message never needs a second round trip. Body layout,
//! integers big-endian:
//!
//! ```text
//! volatile u8 | at (ms since 1970) u64 | room len u32 | room
//! | event len u32 | event | has-from u8 | [from len u32 | from] | data…
//! ```
//!
//! A stream entry has the id `{offset}-1` and the fields `t` (ms since
//! 1970), `e` (event), `d` (data) and, when published by a user, `f`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::hub::Publication;
use crate::log::Entry;

/// Milliseconds since 1970 (0 for earlier times).
pub(crate) fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The time `ms` milliseconds after 1970.
pub(crate) fn time(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

/// Encodes what the publishing node knows of a publication (all but its
/// position).
pub(crate) fn body(
    room: &str,
    event: &str,
    from: Option<&str>,
    data: &[u8],
    at: SystemTime,
    volatile: bool,
) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(32 + room.len() + event.len() + data.len());
    b.put_u8(u8::from(volatile));
    b.put_u64(millis(at));
    put_str(&mut b, room);
    put_str(&mut b, event);
    match from {
        Some(from) => {
            b.put_u8(1);
            put_str(&mut b, from);
        }
        None => b.put_u8(0),
    }
    b.put_slice(data);
    b.to_vec()
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_u32(u32::try_from(s.len()).unwrap_or(u32::MAX));
    b.put_slice(s.as_bytes());
}

fn get_str(b: &mut Bytes) -> Option<String> {
    if b.remaining() < 4 {
        return None;
    }
    let n = b.get_u32() as usize;
    if b.remaining() < n {
        return None;
    }
    String::from_utf8(b.split_to(n).to_vec()).ok()
}

/// Decodes a broadcast; `None` for anything malformed.
pub(crate) fn publication(message: Bytes) -> Option<Publication> {
    let space = |b: &Bytes| b.iter().position(|&c| c == b' ');
    let mut b = message;
    let n = space(&b)?;
    let offset: u64 = std::str::from_utf8(&b.split_to(n)).ok()?.parse().ok()?;
    b.advance(1);
    let n = space(&b)?;
    let epoch = String::from_utf8(b.split_to(n).to_vec()).ok()?;
    b.advance(1);
    if b.remaining() < 9 {
        return None;
    }
    let volatile = b.get_u8() == 1;
    let at = time(b.get_u64());
    let room = get_str(&mut b)?;
    let event = get_str(&mut b)?;
    if b.remaining() < 1 {
        return None;
    }
    let from = match b.get_u8() {
        1 => Some(get_str(&mut b)?),
        _ => None,
    };
    Some(Publication {
        room,
        epoch,
        entry: Entry {
            offset,
            at,
            event,
            data: b,
            from,
        },
        volatile,
    })
}

/// A stream entry as Redis returns it: id and flat field/value list.
pub(crate) type RawEntry = (String, Vec<Vec<u8>>);

/// Decodes a stream entry; `None` for anything malformed.
pub(crate) fn entry((id, fields): RawEntry) -> Option<Entry> {
    let offset = id.split_once('-')?.0.parse().ok()?;
    let (mut at, mut event, mut data, mut from) = (0, None, Bytes::new(), None);
    for kv in fields.chunks_exact(2) {
        match kv[0].as_slice() {
            b"t" => at = std::str::from_utf8(&kv[1]).ok()?.parse().ok()?,
            b"e" => event = Some(String::from_utf8(kv[1].clone()).ok()?),
            b"d" => data = Bytes::from(kv[1].clone()),
            b"f" => from = Some(String::from_utf8(kv[1].clone()).ok()?),
            _ => {}
        }
    }
    Some(Entry {
        offset,
        at: time(at),
        event: event?,
        data,
        from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broadcast_decodes_to_what_was_published() {
        let at = time(1_700_000_000_123);
        let body = super::body("room 1", "chat", Some("alice"), b"{\"x\":1}", at, true);
        let mut message = b"42 00ff ".to_vec();
        message.extend_from_slice(&body);
        let p = publication(Bytes::from(message)).unwrap();
        assert_eq!(p.room, "room 1");
        assert_eq!(p.epoch, "00ff");
        assert_eq!(p.entry.offset, 42);
        assert_eq!(p.entry.event, "chat");
        assert_eq!(p.entry.from.as_deref(), Some("alice"));
        assert_eq!(&p.entry.data[..], b"{\"x\":1}");
        assert_eq!(p.entry.at, at);
        assert!(p.volatile);

        let body = super::body("r", "e", None, b"", at, false);
        let mut message = b"1 e ".to_vec();
        message.extend_from_slice(&body);
        let p = publication(Bytes::from(message)).unwrap();
        assert_eq!((p.entry.from, p.volatile), (None, false));
    }

    #[test]
    fn malformed_broadcasts_are_refused_not_panicked_on() {
        for bad in [
            &b""[..],
            b"x e ",
            b"1 e",
            b"1 e \x00\x00",
            b"1 e \x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff",
        ] {
            assert!(
                publication(Bytes::copy_from_slice(bad)).is_none(),
                "{bad:?}"
            );
        }
    }
}
