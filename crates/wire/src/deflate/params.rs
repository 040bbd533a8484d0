//! permessage-deflate negotiation (RFC 7692 §7).

use super::header::{ExtensionItem, MalformedExtensions, parse_extensions};

/// The extension token.
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Local permessage-deflate preferences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// Compression level 0–9.
    pub level: u32,
    /// Messages shorter than this are sent uncompressed.
    pub threshold: usize,
    /// As a server: always ask clients not to keep context (saves memory per
    /// connection at some cost in ratio).
    pub server_no_context_takeover: bool,
    /// As a server: ask clients to reset their context per message.
    pub client_no_context_takeover: bool,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            level: 1,
            threshold: 64,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
        }
    }
}

impl DeflateConfig {
    /// Sets the compression level (0–9).
    pub fn level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// Sets the size under which messages go out uncompressed.
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// As a server, always reset the compression context after each message.
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }
}

/// The parameters both sides agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compression context after each message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context after each message.
    pub client_no_context_takeover: bool,
    /// LZ77 window of the server's compressor (8–15).
    pub server_max_window_bits: u8,
    /// LZ77 window of the client's compressor (8–15).
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// Why a response (as a client) could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// The header does not parse.
    #[error(transparent)]
    Malformed(#[from] MalformedExtensions),
    /// The server answered with an extension we did not offer.
    #[error("server selected an extension that was not offered: {0}")]
    NotOffered(String),
    /// A parameter that is unknown, repeated or has a bad value.
    #[error("invalid permessage-deflate parameter: {0}")]
    BadParam(String),
}

fn window_bits(v: Option<&str>) -> Option<u8> {
    let v = v?;
    // No leading zeros or signs: 1*DIGIT with value 8..=15.
    if v.is_empty() || v.len() > 2 || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

/// Reads one item's params strictly; `None` if any is unknown, repeated or bad.
/// `client_max_window_bits` with no value yields `Some(None)` in its slot.
fn read_params(item: &ExtensionItem) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    for (key, val) in &item.params {
        let val = val.as_deref();
        let dup = match key.as_str() {
            "server_no_context_takeover" if val.is_none() => {
                std::mem::replace(&mut p.server_no_context_takeover, true)
            }
            "client_no_context_takeover" if val.is_none() => {
                std::mem::replace(&mut p.client_no_context_takeover, true)
            }
            "server_max_window_bits" => {
                let bits = window_bits(val).ok_or_else(|| key.clone())?;
                p.server_max_window_bits.replace(bits).is_some()
            }
            "client_max_window_bits" => {
                let bits = match val {
                    None => None,
                    Some(_) => Some(window_bits(val).ok_or_else(|| key.clone())?),
                };
                p.client_max_window_bits.replace(bits).is_some()
            }
            _ => return Err(key.clone()),
        };
        if dup {
            return Err(key.clone());
        }
    }
    Ok(p)
}

#[derive(Debug, Default)]
struct Parsed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<Option<u8>>,
}

/// Server side: picks the first acceptable permessage-deflate offer and
/// returns the agreed params with the response header value. Offers with
/// unknown, repeated or out-of-range params are declined (the next is tried).
pub fn accept_offer<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    config: &DeflateConfig,
) -> Result<Option<(DeflateParams, String)>, MalformedExtensions> {
    let items = parse_extensions(values)?;
    for item in items.iter().filter(|i| i.name == EXTENSION_NAME) {
        let Ok(p) = read_params(item) else { continue };
        let params = DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover
                || config.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover
                || config.client_no_context_takeover,
            server_max_window_bits: p.server_max_window_bits.unwrap_or(15),
            client_max_window_bits: p.client_max_window_bits.flatten().unwrap_or(15),
        };
        let mut response = String::from(EXTENSION_NAME);
        if params.server_no_context_takeover {
            response.push_str("; server_no_context_takeover");
        }
        if params.client_no_context_takeover {
            response.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = p.server_max_window_bits {
            response.push_str(&format!("; server_max_window_bits={bits}"));
        }
        if let Some(Some(bits)) = p.client_max_window_bits {
            response.push_str(&format!("; client_max_window_bits={bits}"));
        }
        return Ok(Some((params, response)));
    }
    Ok(None)
}

/// Client side: the offer we send. Two alternatives in order of preference:
/// context takeover kept (better ratio), then, for servers that only accept
/// clients which reset their context per message, `client_no_context_takeover`.
/// A server picks the first it accepts, so most keep the first.
pub fn client_offer(config: &DeflateConfig) -> String {
    let mut first = format!("{EXTENSION_NAME}; client_max_window_bits");
    if config.server_no_context_takeover {
        first.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        first.push_str("; client_no_context_takeover");
        return first;
    }
    let fallback = format!("{first}; client_no_context_takeover");
    format!("{first}, {fallback}")
}

/// Client side: validates the server's response to [`client_offer`].
pub fn accept_response<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    config: &DeflateConfig,
) -> Result<Option<DeflateParams>, NegotiationError> {
    let items = parse_extensions(values)?;
    let mut agreed = None;
    for item in &items {
        if item.name != EXTENSION_NAME || agreed.is_some() {
            return Err(NegotiationError::NotOffered(item.name.clone()));
        }
        let p = read_params(item).map_err(NegotiationError::BadParam)?;
        if config.server_no_context_takeover && !p.server_no_context_takeover {
            return Err(NegotiationError::BadParam(
                "server_no_context_takeover missing".into(),
            ));
        }
        let client_bits = match p.client_max_window_bits {
            None => 15,
            Some(Some(bits)) => bits,
            Some(None) => return Err(NegotiationError::BadParam("client_max_window_bits".into())),
        };
        agreed = Some(DeflateParams {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover
                || config.client_no_context_takeover,
            server_max_window_bits: p.server_max_window_bits.unwrap_or(15),
            client_max_window_bits: client_bits,
        });
    }
    Ok(agreed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(s: &str) -> Option<(DeflateParams, String)> {
        accept_offer([s.as_bytes()], &DeflateConfig::default()).unwrap()
    }

    #[test]
    fn accepts_a_plain_offer() {
        let (p, resp) = offer("permessage-deflate").unwrap();
        assert_eq!(p, DeflateParams::default());
        assert_eq!(resp, "permessage-deflate");
    }

    #[test]
    fn honours_window_bits_and_no_context_takeover() {
        let (p, resp) = offer(
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8; \
             client_no_context_takeover",
        )
        .unwrap();
        assert_eq!(p.server_max_window_bits, 9);
        assert_eq!(p.client_max_window_bits, 8);
        assert!(p.client_no_context_takeover);
        assert!(resp.contains("server_max_window_bits=9"));
        assert!(resp.contains("client_no_context_takeover"));
    }

    #[test]
    fn declines_bad_offers_and_takes_the_next() {
        for bad in [
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=08",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; unknown_param",
            "permessage-deflate; server_no_context_takeover=1",
        ] {
            assert_eq!(offer(bad), None, "{bad}");
            let (p, _) = offer(&format!(
                "{bad}, permessage-deflate; client_max_window_bits"
            ))
            .unwrap();
            assert_eq!(p, DeflateParams::default(), "{bad}");
        }
        assert_eq!(offer("x-webkit-deflate-frame"), None);
    }

    #[test]
    fn client_validates_the_response() {
        let cfg = DeflateConfig::default();
        let ok = accept_response(
            [&b"permessage-deflate; client_max_window_bits=10"[..]],
            &cfg,
        );
        assert_eq!(ok.unwrap().unwrap().client_max_window_bits, 10);
        assert!(accept_response([&b"permessage-deflate; foo"[..]], &cfg).is_err());
        assert!(accept_response([&b"other-ext"[..]], &cfg).is_err());
        assert!(accept_response([&b"permessage-deflate, permessage-deflate"[..]], &cfg).is_err());
        assert_eq!(
            accept_response(std::iter::empty::<&[u8]>(), &cfg).unwrap(),
            None
        );
    }
}
