//! A linear-time parser for `Sec-WebSocket-Extensions` (RFC 6455 §9.1).
//!
//! ```text
//! extension-list = 1#extension
//! extension      = token *( ";" param )
//! param          = token [ "=" ( token | quoted-string ) ]
//! ```
//!
//! Every byte is looked at once; there is no backtracking, so hostile values
//! (long whitespace runs, unclosed quotes full of backslashes) cost O(n).

/// One extension offer or response: a name and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionItem {
    /// Extension token, e.g. `permessage-deflate`.
    pub name: String,
    /// Parameters in order; quoted values are unescaped.
    pub params: Vec<(String, Option<String>)>,
}

/// The header value is not a valid extension list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed Sec-WebSocket-Extensions header")]
pub struct MalformedExtensions;

/// Most extensions accepted in one header, and most params per extension.
const MAX_ITEMS: usize = 32;
const MAX_PARAMS: usize = 16;

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Cursor<'a> {
    s: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.s.get(self.at), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn token(&mut self) -> Result<String, MalformedExtensions> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        if start == self.at {
            return Err(MalformedExtensions);
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.at]).into_owned())
    }

    fn quoted(&mut self) -> Result<String, MalformedExtensions> {
        self.at += 1; // opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(MalformedExtensions),
                Some(b'"') => {
                    self.at += 1;
                    break;
                }
                Some(b'\\') => {
                    let escaped = self
                        .s
                        .get(self.at + 1)
                        .copied()
                        .ok_or(MalformedExtensions)?;
                    out.push(escaped);
                    self.at += 2;
                }
                Some(b) => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
        // A quoted value must still be a token once unescaped (RFC 6455 §9.1).
        if out.is_empty() || !out.iter().copied().all(is_tchar) {
            return Err(MalformedExtensions);
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// Parses one or more header values (each a comma-separated list).
pub fn parse_extensions<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<ExtensionItem>, MalformedExtensions> {
    let mut items = Vec::new();
    for value in values {
        let mut c = Cursor { s: value, at: 0 };
        loop {
            c.skip_ws();
            match c.peek() {
                None => break,
                Some(b',') => {
                    c.at += 1;
                    continue;
                }
                Some(_) => {}
            }
            if items.len() == MAX_ITEMS {
                return Err(MalformedExtensions);
            }
            let name = c.token()?;
            let mut params = Vec::new();
            loop {
                c.skip_ws();
                match c.peek() {
                    None | Some(b',') => break,
                    Some(b';') => c.at += 1,
                    Some(_) => return Err(MalformedExtensions),
                }
                c.skip_ws();
                let key = c.token()?;
                c.skip_ws();
                let val = if c.peek() == Some(b'=') {
                    c.at += 1;
                    c.skip_ws();
                    Some(if c.peek() == Some(b'"') {
                        c.quoted()?
                    } else {
                        c.token()?
                    })
                } else {
                    None
                };
                if params.len() == MAX_PARAMS {
                    return Err(MalformedExtensions);
                }
                params.push((key, val));
            }
            items.push(ExtensionItem { name, params });
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<ExtensionItem>, MalformedExtensions> {
        parse_extensions([s.as_bytes()])
    }

    #[test]
    fn parses_offers_with_params_and_quotes() {
        let items = parse(
            "permessage-deflate; client_max_window_bits; server_max_window_bits=\"10\", \
             permessage-deflate",
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].name, "permessage-deflate");
        assert_eq!(
            items[0].params,
            vec![
                ("client_max_window_bits".into(), None),
                ("server_max_window_bits".into(), Some("10".into())),
            ]
        );
        assert!(items[1].params.is_empty());
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "permessage-deflate;",
            "a b",
            "x; y=\"unclosed",
            "x; =1",
            "x; y=\"a b\"",
            "x;y=\"\"",
        ] {
            assert_eq!(parse(bad), Err(MalformedExtensions), "{bad:?}");
        }
    }

    #[test]
    fn hostile_inputs_finish_quickly() {
        let ws = format!("permessage-deflate{}x", " ".repeat(200_000));
        assert!(parse(&ws).is_err());
        let quotes = format!("x; y=\"{}", "\\".repeat(200_001));
        assert!(parse(&quotes).is_err());
        let many = "a,".repeat(1000);
        assert!(parse(&many).is_err());
    }
}
