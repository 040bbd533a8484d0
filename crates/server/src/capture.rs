//! The capture format (docs/protocol.md, "Captures"): NDJSON, one JSON
//! object per line. A header first:
//!
//! ```json
//! {"capture":"switchboard","version":1,"protocol":"native","url":"ws://…/ws","started_at":"2026-…Z","rooms":["lobby"]}
//! ```
//!
//! then one line per WebSocket frame, in the order they passed:
//!
//! ```json
//! {"t":12.345,"dir":"in","type":"text","data":"{\"op\":\"welcome\",…}"}
//! {"t":15.002,"dir":"in","type":"binary","data":"AAEC"}
//! {"t":99.100,"dir":"out","type":"close","code":1000,"reason":""}
//! ```
//!
//! `t` is milliseconds since the capture started; `dir` is `in` for what
//! the server sent to the client, `out` for what the client sent. Text is a
//! JSON string, binary standard base64. Every line is written whole, so a
//! capture cut short is still valid NDJSON (a torn last line is skipped by
//! [`parse`]).
//!
//! `switchboard record` and the server's `POST /api/v1/record` write it;
//! `switchboard replay` reads it.

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

/// The `capture` field of the header.
pub const FORMAT: &str = "switchboard";
/// The format version this code writes and reads.
pub const VERSION: u64 = 1;

/// Which way a frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// From the server to the client.
    In,
    /// From the client to the server.
    Out,
}

impl Dir {
    fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

/// One frame of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Bytes),
    /// A close frame (`code` absent for a close without a code).
    Close {
        /// The close code.
        code: Option<u16>,
        /// The reason (may be empty).
        reason: String,
    },
}

/// The first line of a capture.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// `native`, `socketio` or `raw`.
    pub protocol: String,
    /// The URL recorded (`switchboard record`); absent for a server capture.
    pub url: Option<String>,
    /// When the capture started (RFC 3339): `t` counts from there.
    pub started_at: String,
    /// Rooms joined (record), or the room captured (server).
    pub rooms: Vec<String>,
    /// A server capture's target: `{"room": R}` or `{"socket": ID}`.
    pub target: Option<Value>,
}

impl Header {
    /// The header as a line (with its newline).
    pub fn line(&self) -> String {
        let mut v = json!({"capture": FORMAT, "version": VERSION, "protocol": self.protocol});
        if let Some(url) = &self.url {
            v["url"] = json!(url);
        }
        if let Some(target) = &self.target {
            v["target"] = target.clone();
        }
        v["started_at"] = json!(self.started_at);
        v["rooms"] = json!(self.rooms);
        let mut s = v.to_string();
        s.push('\n');
        s
    }
}

/// A text frame as a line.
pub fn text_line(t_ms: f64, dir: Dir, text: &str) -> String {
    let data = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
    line(t_ms, dir, "text", &format!(r#","data":{data}"#))
}

/// A binary frame as a line.
pub fn binary_line(t_ms: f64, dir: Dir, data: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    line(t_ms, dir, "binary", &format!(r#","data":"{b64}""#))
}

/// A close frame as a line.
pub fn close_line(t_ms: f64, dir: Dir, code: Option<u16>, reason: &str) -> String {
    let reason = serde_json::to_string(reason).unwrap_or_else(|_| "\"\"".into());
    let code = code.map_or_else(|| "null".to_owned(), |c| c.to_string());
    line(
        t_ms,
        dir,
        "close",
        &format!(r#","code":{code},"reason":{reason}"#),
    )
}

/// A WebSocket message as a line.
pub fn message_line(t_ms: f64, dir: Dir, m: &switchboard_wire::Message) -> String {
    match m {
        switchboard_wire::Message::Text(t) => text_line(t_ms, dir, t.as_str()),
        switchboard_wire::Message::Binary(b) => binary_line(t_ms, dir, b),
    }
}

fn line(t_ms: f64, dir: Dir, kind: &str, rest: &str) -> String {
    let t = if t_ms.is_finite() { t_ms.max(0.0) } else { 0.0 };
    format!(
        "{{\"t\":{t:.3},\"dir\":\"{}\",\"type\":\"{kind}\"{rest}}}\n",
        dir.as_str()
    )
}

/// A frame read back, with its time (milliseconds since the start).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Milliseconds since the capture started.
    pub t: f64,
    /// Which way it went.
    pub dir: Dir,
    /// The frame.
    pub frame: Frame,
}

/// Why a capture could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No header line, or not a switchboard capture.
    #[error("not a switchboard capture (no header line {{\"capture\":\"switchboard\",…}})")]
    NotACapture,
    /// A version this code does not read.
    #[error("capture version {0} is not supported (this reads version {VERSION})")]
    Version(u64),
    /// A line that is not a frame (its number, from 1).
    #[error("line {0}: {1}")]
    Line(usize, String),
}

/// Reads a capture. A last line that does not parse (a capture cut short
/// while it was written) is skipped; a bad line elsewhere is an error.
pub fn parse(text: &str) -> Result<(Header, Vec<Entry>), ParseError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, first) = lines.next().ok_or(ParseError::NotACapture)?;
    let h: Value = serde_json::from_str(first).map_err(|_| ParseError::NotACapture)?;
    if h["capture"] != FORMAT {
        return Err(ParseError::NotACapture);
    }
    match h["version"].as_u64() {
        Some(VERSION) => {}
        other => return Err(ParseError::Version(other.unwrap_or(0))),
    }
    let header = Header {
        protocol: h["protocol"].as_str().unwrap_or("raw").to_owned(),
        url: h["url"].as_str().map(str::to_owned),
        started_at: h["started_at"].as_str().unwrap_or_default().to_owned(),
        rooms: h["rooms"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_owned))
            .collect(),
        target: h.get("target").cloned(),
    };
    let rest: Vec<(usize, &str)> = lines.collect();
    let mut entries = Vec::with_capacity(rest.len());
    for (i, (n, l)) in rest.iter().enumerate() {
        match parse_line(l) {
            Ok(e) => entries.push(e),
            Err(_) if i + 1 == rest.len() => {}
            Err(e) => return Err(ParseError::Line(n + 1, e)),
        }
    }
    Ok((header, entries))
}

fn parse_line(l: &str) -> Result<Entry, String> {
    let v: Value = serde_json::from_str(l).map_err(|e| e.to_string())?;
    let t = v["t"].as_f64().ok_or("no time `t`")?;
    let dir = match v["dir"].as_str() {
        Some("in") => Dir::In,
        Some("out") => Dir::Out,
        _ => return Err("`dir` must be \"in\" or \"out\"".into()),
    };
    let frame = match v["type"].as_str() {
        Some("text") => Frame::Text(v["data"].as_str().ok_or("text without data")?.to_owned()),
        Some("binary") => {
            let b64 = v["data"].as_str().ok_or("binary without data")?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("binary data: {e}"))?;
            Frame::Binary(Bytes::from(bytes))
        }
        Some("close") => Frame::Close {
            code: v["code"].as_u64().and_then(|c| u16::try_from(c).ok()),
            reason: v["reason"].as_str().unwrap_or_default().to_owned(),
        },
        _ => return Err("`type` must be text, binary or close".into()),
    };
    Ok(Entry { t, dir, frame })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_back_as_written() {
        let header = Header {
            protocol: "native".into(),
            url: Some("ws://127.0.0.1:1/ws".into()),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            rooms: vec!["lobby".into()],
            target: None,
        };
        let mut text = header.line();
        text += &text_line(1.5, Dir::In, "{\"op\":\"welcome\"} ünïcödé \n\"");
        text += &binary_line(2.25, Dir::Out, &[0, 1, 2, 255]);
        text += &close_line(3.0, Dir::In, Some(4001), "kicked");
        text += &close_line(4.0, Dir::Out, None, "");
        text += "{\"t\":5.0,\"dir\":\"in\",\"type\":\"te"; // cut short
        let (h, entries) = parse(&text).unwrap();
        assert_eq!(h, header);
        assert_eq!(
            entries,
            vec![
                Entry {
                    t: 1.5,
                    dir: Dir::In,
                    frame: Frame::Text("{\"op\":\"welcome\"} ünïcödé \n\"".into())
                },
                Entry {
                    t: 2.25,
                    dir: Dir::Out,
                    frame: Frame::Binary(Bytes::from_static(&[0, 1, 2, 255]))
                },
                Entry {
                    t: 3.0,
                    dir: Dir::In,
                    frame: Frame::Close {
                        code: Some(4001),
                        reason: "kicked".into()
                    }
                },
                Entry {
                    t: 4.0,
                    dir: Dir::Out,
                    frame: Frame::Close {
                        code: None,
                        reason: String::new()
                    }
                },
            ]
        );
        for l in text.lines().take(5) {
            serde_json::from_str::<Value>(l).unwrap();
        }
    }

    #[test]
    fn other_files_are_refused() {
        assert_eq!(parse(""), Err(ParseError::NotACapture));
        assert_eq!(parse("{\"a\":1}\n"), Err(ParseError::NotACapture));
        assert_eq!(
            parse("{\"capture\":\"switchboard\",\"version\":2}\n"),
            Err(ParseError::Version(2))
        );
        let bad = "{\"capture\":\"switchboard\",\"version\":1}\nnope\n{\"t\":1,\"dir\":\"in\",\"type\":\"text\",\"data\":\"x\"}\n";
        assert!(matches!(parse(bad), Err(ParseError::Line(2, _))));
    }
}
