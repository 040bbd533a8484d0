//! Streaming UTF-8 validation that fails on the first invalid byte, also when
//! a code point is split across frames or reads.

use simdutf8::compat::from_utf8;

/// Incremental validator: feed bytes in order, then [`Utf8Validator::finish`].
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// Bytes of an incomplete code point carried over from the last chunk.
    pending: [u8; 4],
    pending_len: u8,
}

/// The input is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// Validates the next chunk. Fails as soon as a byte makes the stream invalid,
    /// even if the code point it belongs to is not complete yet.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = self.pending_len as usize;
            let need = char_width(self.pending[0]).ok_or(InvalidUtf8)?;
            let take = (need - have).min(chunk.len());
            self.pending[have..have + take].copy_from_slice(&chunk[..take]);
            let filled = have + take;
            chunk = &chunk[take..];
            match from_utf8(&self.pending[..filled]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_none() => {
                    self.pending_len = filled as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(InvalidUtf8),
                None => {
                    let tail = &chunk[e.valid_up_to()..];
                    self.pending[..tail.len()].copy_from_slice(tail);
                    self.pending_len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// The stream ended: an incomplete code point is an error.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.pending_len != 0;
        self.pending_len = 0;
        if incomplete { Err(InvalidUtf8) } else { Ok(()) }
    }
}

fn char_width(first: u8) -> Option<usize> {
    match first {
        0x00..=0x7f => Some(1),
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

/// Validates a complete buffer.
pub fn validate(bytes: &[u8]) -> Result<(), InvalidUtf8> {
    simdutf8::basic::from_utf8(bytes)
        .map(|_| ())
        .map_err(|_| InvalidUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytewise(input: &[u8]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        for b in input {
            v.feed(std::slice::from_ref(b))?;
        }
        v.finish()
    }

    #[test]
    fn accepts_valid_text_fed_one_byte_at_a_time() {
        let text = "κόσμε 𝄞 héllo wörld 中文";
        assert_eq!(bytewise(text.as_bytes()), Ok(()));
    }

    #[test]
    fn fails_on_the_first_invalid_byte_before_the_end() {
        // "κόσμε" followed by a lone continuation byte, then more valid text.
        let mut input = "κόσμε".as_bytes().to_vec();
        input.push(0x80);
        let mut v = Utf8Validator::default();
        v.feed(&input[..input.len() - 1]).unwrap();
        assert_eq!(v.feed(&[0x80]), Err(InvalidUtf8));
    }

    #[test]
    fn rejects_a_bad_prefix_of_an_incomplete_code_point() {
        // 0xF4 0x90 is already out of range (> U+10FFFF) though incomplete.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xf4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
        // Surrogate prefix ED A0.
        let mut v = Utf8Validator::default();
        assert_eq!(v.feed(&[0xed, 0xa0]), Err(InvalidUtf8));
    }

    #[test]
    fn an_incomplete_code_point_at_the_end_fails_finish() {
        let mut v = Utf8Validator::default();
        v.feed(&[0xe2, 0x82]).unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn agrees_with_std_on_every_split() {
        let samples: [&[u8]; 5] = [
            "a€b𝄞c".as_bytes(),
            &[
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
            &[0xf0, 0x9f, 0x98, 0x80, 0xf0, 0x9f],
            &[0xc0, 0xaf],
            &[0x61, 0xf8, 0x88, 0x80, 0x80, 0x80],
        ];
        for s in samples {
            let expected = std::str::from_utf8(s).is_ok();
            for cut in 0..=s.len() {
                let mut v = Utf8Validator::default();
                let ok = v
                    .feed(&s[..cut])
                    .and_then(|_| v.feed(&s[cut..]))
                    .and_then(|_| v.finish());
                assert_eq!(ok.is_ok(), expected, "{s:?} cut at {cut}");
            }
        }
    }
}
