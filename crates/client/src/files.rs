//! File transfer over the native protocol (docs/protocol.md, "File
//! transfer"): [`Client::send_file`] uploads a file to a room or a user in
//! chunks, at most `window` unacknowledged; [`Client::receive_file`]
//! downloads one, acknowledging each chunk. Both survive reconnects: the
//! upload is offered again and goes on from the server's `next` (no
//! acknowledged chunk is sent twice), the download asks again from the
//! chunks it holds. The SHA-256 is checked on both sides.
//!
//! ```no_run
//! # async fn demo(client: switchboard_client::native::Client) -> Result<(), switchboard_client::files::FileError> {
//! use switchboard_client::files::{FileTarget, Transfer};
//! let sent = client
//!     .send_file(FileTarget::Room("team".into()), "report.pdf".as_ref(), Transfer::default())
//!     .await?;
//! let got = client
//!     .receive_file(&sent.transfer, "copy.pdf".as_ref(), Transfer::default())
//!     .await?;
//! assert_eq!(got.sha256, sent.sha256);
//! # Ok(()) }
//! ```

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_wire::{Message as WsMessage, Utf8Bytes};
use tokio::sync::mpsc;

use crate::native::{Client, ClientError, Command};

/// What the driver tells a transfer.
#[derive(Debug, Clone)]
pub(crate) enum Signal {
    /// Connected (and welcomed).
    Online,
    /// The connection ended.
    Offline,
    /// A `file_ack`, `file_complete` or `file_error` push.
    Push(Value),
    /// A chunk frame.
    Chunk(chunk::Chunk),
}

/// Without any acknowledgement or chunk for this long, a transfer asks
/// again (offer or `file_get`): a lost frame cannot stall it.
const STALL: Duration = Duration::from_secs(20);

/// Who a file is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileTarget {
    /// The members of a room.
    Room(String),
    /// A user.
    User(String),
}

/// Progress of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The transfer id.
    pub transfer: String,
    /// Chunks acknowledged (upload) or stored (download).
    pub chunks_done: u32,
    /// Chunks in all.
    pub chunks: u32,
    /// Bytes acknowledged or stored.
    pub bytes_done: u64,
    /// The file's size.
    pub size: u64,
}

/// Called on every chunk acknowledged or stored.
pub type OnProgress = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options of a transfer.
#[derive(Clone, Default)]
pub struct Transfer {
    /// The name recipients see (default: the file's name).
    pub name: Option<String>,
    /// The chunk size to ask for (default: the server's).
    pub chunk_size: Option<u32>,
    /// Progress callback.
    pub progress: Option<OnProgress>,
}

impl std::fmt::Debug for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transfer")
            .field("name", &self.name)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

/// A finished upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The transfer id (recipients download it).
    pub transfer: String,
    /// The file's SHA-256 (hex).
    pub sha256: String,
    /// Its size.
    pub size: u64,
    /// Its chunks.
    pub chunks: u32,
    /// Chunk frames sent, resends included.
    pub frames_sent: u64,
    /// Chunks sent again after a reconnect (none had been acknowledged).
    pub resent: u64,
    /// Chunks sent again although acknowledged before (always 0: the
    /// upload resumes from the server's `next`).
    pub resent_acknowledged: u64,
    /// Where each resume started (the server's `next`).
    pub resumed_at: Vec<u32>,
    /// Chunk frames the server received for it, and how many it already
    /// held (as it said in `file_complete`; `None` when the transfer was
    /// complete before this call).
    pub server_counts: Option<(u64, u64)>,
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The transfer id.
    pub transfer: String,
    /// The name its sender gave.
    pub name: String,
    /// Its size.
    pub size: u64,
    /// Its SHA-256 (hex), checked.
    pub sha256: String,
    /// Where each resume started (chunks held).
    pub resumed_at: Vec<u32>,
}

/// Why a transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The local file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server refused it (`forbidden`, `too_large`, `not_found`, …).
    #[error("{code}: {message}")]
    Refused {
        /// The error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// The downloaded bytes do not have the announced SHA-256.
    #[error("the SHA-256 of the received file does not match")]
    Checksum,
    /// The client stopped.
    #[error("the client is closed")]
    Closed,
}

impl From<ClientError> for FileError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Refused { code, message } => Self::Refused { code, message },
            _ => Self::Closed,
        }
    }
}

/// Whether a request failed in a way that asking again may fix.
fn transient(e: &ClientError) -> bool {
    matches!(e, ClientError::Disconnected | ClientError::Timeout)
}

/// The SHA-256 and size of a file.
fn digest(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((chunk::hex(&hasher.finalize()), size));
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
}

fn field_u32(v: &Value, k: &str) -> u32 {
    v.get(k)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0)
}

fn field_str(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_owned()
}

/// A push about `transfer`.
fn about<'a>(v: &'a Value, transfer: &str) -> Option<&'a str> {
    (v.get("transfer").and_then(Value::as_str) == Some(transfer))
        .then(|| v.get("op").and_then(Value::as_str).unwrap_or(""))
}

impl Client {
    fn watch(&self) -> Result<mpsc::UnboundedReceiver<Signal>, FileError> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.tx
            .send(Command::Watch(tx))
            .map_err(|_| FileError::Closed)?;
        Ok(rx)
    }

    fn frame(&self, m: WsMessage) -> Result<(), FileError> {
        self.tx
            .send(Command::Frame(m))
            .map_err(|_| FileError::Closed)
    }

    /// Lists the complete transfers for this connection's user or rooms
    /// (`[{transfer, name, size, sha256, from, to}…]`).
    pub async fn files(&self) -> Result<Vec<Value>, ClientError> {
        let v = self.request(json!({"op": "files"})).await?;
        Ok(v.get("files")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Uploads the file at `path` to `to`; resolves when the server has
    /// checked the whole file and announced it to its recipients.
    pub async fn send_file(
        &self,
        to: FileTarget,
        path: &Path,
        options: Transfer,
    ) -> Result<Sent, FileError> {
        let mut signals = self.watch()?;
        let (sha256, size) = {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || digest(&path))
                .await
                .map_err(|_| FileError::Closed)??
        };
        let name = options.name.clone().unwrap_or_else(|| {
            path.file_name()
                .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned())
        });
        let mut file = std::fs::File::open(path)?;
        let mut offer = json!({
            "op": "file_offer",
            "to": match &to {
                FileTarget::Room(r) => json!({"room": r}),
                FileTarget::User(u) => json!({"user": u}),
            },
            "name": name,
            "size": size,
            "sha256": sha256,
        });
        if let Some(c) = options.chunk_size {
            offer["chunk_size"] = json!(c);
        }
        let mut sent = Sent {
            transfer: String::new(),
            sha256,
            size,
            chunks: 0,
            frames_sent: 0,
            resent: 0,
            resent_acknowledged: 0,
            resumed_at: Vec::new(),
            server_counts: None,
        };
        // The highest chunk count the server ever acknowledged, and the
        // highest sent: what a resume may and may not send again.
        let (mut acked_ever, mut sent_ever) = (0u32, 0u32);
        let mut buf = Vec::new();
        loop {
            let answer = match self.request(offer.clone()).await {
                Ok(a) => a,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            let first = sent.transfer.is_empty();
            sent.transfer = field_str(&answer, "transfer");
            sent.chunks = field_u32(&answer, "chunks");
            let (chunk_size, window) = (
                field_u32(&answer, "chunk_size").max(1),
                field_u32(&answer, "window").max(1),
            );
            let next = field_u32(&answer, "next");
            if !first {
                sent.resumed_at.push(next);
            }
            offer["transfer"] = json!(sent.transfer);
            if answer.get("complete").and_then(Value::as_bool) == Some(true) {
                return Ok(sent);
            }
            let id = chunk::parse_id(&sent.transfer).ok_or_else(|| FileError::Refused {
                code: "bad_reply".into(),
                message: "the server's transfer id is not 32 hex characters".into(),
            })?;
            let (mut next_send, mut acked) = (next, next);
            let ended = loop {
                while next_send < sent.chunks && next_send - acked < window {
                    let at = u64::from(next_send) * u64::from(chunk_size);
                    let len = (size - at).min(u64::from(chunk_size)) as usize;
                    buf.resize(len, 0);
                    file.seek(SeekFrom::Start(at))?;
                    file.read_exact(&mut buf)?;
                    self.frame(WsMessage::Binary(chunk::encode(id, next_send, &buf)))?;
                    sent.frames_sent += 1;
                    if next_send < acked_ever {
                        sent.resent_acknowledged += 1;
                    } else if next_send < sent_ever {
                        sent.resent += 1;
                    }
                    next_send += 1;
                    sent_ever = sent_ever.max(next_send);
                }
                let signal = match tokio::time::timeout(STALL, signals.recv()).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return Err(FileError::Closed),
                    Err(_) => break Stall::Again,
                };
                let v = match signal {
                    Signal::Offline => break Stall::Again,
                    Signal::Push(v) => v,
                    Signal::Online | Signal::Chunk(_) => continue,
                };
                match about(&v, &sent.transfer) {
                    Some("file_ack") => {
                        let i = field_u32(&v, "chunk");
                        if i >= acked && i < next_send {
                            acked = i + 1;
                            acked_ever = acked_ever.max(acked);
                            if let Some(p) = &options.progress {
                                p(&Progress {
                                    transfer: sent.transfer.clone(),
                                    chunks_done: acked,
                                    chunks: sent.chunks,
                                    bytes_done: (u64::from(acked) * u64::from(chunk_size))
                                        .min(size),
                                    size,
                                });
                            }
                        }
                    }
                    Some("file_complete") => {
                        let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
                        sent.server_counts = Some((n("received"), n("duplicates")));
                        return Ok(sent);
                    }
                    Some("file_error") => match field_str(&v, "code").as_str() {
                        // Resume from where the server is.
                        "out_of_order" => break Stall::Again,
                        "unavailable" => break Stall::Later,
                        code => {
                            return Err(FileError::Refused {
                                code: code.to_owned(),
                                message: field_str(&v, "message"),
                            });
                        }
                    },
                    _ => {}
                }
            };
            if matches!(ended, Stall::Later) {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    /// Downloads `transfer` into `dest` (written to `dest` + `.part`, renamed
    /// once its SHA-256 matched).
    pub async fn receive_file(
        &self,
        transfer: &str,
        dest: &Path,
        options: Transfer,
    ) -> Result<Received, FileError> {
        let mut signals = self.watch()?;
        let part = {
            let mut p = dest.as_os_str().to_owned();
            p.push(".part");
            std::path::PathBuf::from(p)
        };
        let mut out = std::fs::File::create(&part)?;
        let mut hasher = Sha256::new();
        let mut have = 0u32;
        let mut got = Received {
            transfer: transfer.to_owned(),
            name: String::new(),
            size: 0,
            sha256: String::new(),
            resumed_at: Vec::new(),
        };
        let mut first = true;
        loop {
            let ask = json!({"op": "file_get", "transfer": transfer, "from": have});
            let answer = match self.request(ask).await {
                Ok(a) => a,
                Err(e) if transient(&e) => continue,
                Err(e) => return Err(e.into()),
            };
            if !first {
                got.resumed_at.push(have);
            }
            first = false;
            got.name = field_str(&answer, "name");
            got.size = answer.get("size").and_then(Value::as_u64).unwrap_or(0);
            got.sha256 = field_str(&answer, "sha256");
            let chunks = field_u32(&answer, "chunks");
            let chunk_size = u64::from(field_u32(&answer, "chunk_size"));
            while have < chunks {
                let signal = match tokio::time::timeout(STALL, signals.recv()).await {
                    Ok(Some(s)) => s,
                    Ok(None) => return Err(FileError::Closed),
                    Err(_) => break,
                };
                match signal {
                    Signal::Offline => break,
                    Signal::Chunk(c) if c.transfer.to_string() == transfer => {
                        if c.index > have {
                            break; // something was lost: ask again
                        }
                        if c.index < have {
                            continue; // from an earlier request
                        }
                        out.write_all(&c.data)?;
                        hasher.update(&c.data);
                        have += 1;
                        let ack = json!({"op": "file_ack", "transfer": transfer, "chunk": c.index});
                        self.frame(WsMessage::Text(Utf8Bytes::from(ack.to_string())))?;
                        if let Some(p) = &options.progress {
                            p(&Progress {
                                transfer: transfer.to_owned(),
                                chunks_done: have,
                                chunks,
                                bytes_done: (u64::from(have) * chunk_size).min(got.size),
                                size: got.size,
                            });
                        }
                    }
                    Signal::Push(v) if about(&v, transfer) == Some("file_error") => {
                        return Err(FileError::Refused {
                            code: field_str(&v, "code"),
                            message: field_str(&v, "message"),
                        });
                    }
                    _ => {}
                }
            }
            if have == chunks {
                break;
            }
        }
        out.sync_all()?;
        drop(out);
        if chunk::hex(&hasher.finalize()) != got.sha256 {
            let _ = std::fs::remove_file(&part);
            return Err(FileError::Checksum);
        }
        std::fs::rename(&part, dest)?;
        Ok(got)
    }
}

/// Why the sending loop stopped: offer again now, or after a pause.
enum Stall {
    Again,
    Later,
}

/// The chunk frame (the server's codec has the same layout; each side keeps
/// its own to stay within its layer).
pub(crate) mod chunk {
    use bytes::{BufMut, Bytes, BytesMut};

    const KIND: u8 = 0x01;
    const HEADER: usize = 21;

    /// A decoded chunk frame.
    #[derive(Debug, Clone)]
    pub(crate) struct Chunk {
        pub(crate) transfer: Id,
        pub(crate) index: u32,
        pub(crate) data: Bytes,
    }

    /// A transfer id's 16 bytes.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) struct Id(pub(crate) [u8; 16]);

    impl std::fmt::Display for Id {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&hex(&self.0))
        }
    }

    pub(crate) fn parse_id(s: &str) -> Option<Id> {
        if s.len() != 32 || !s.is_ascii() {
            return None;
        }
        let mut id = [0u8; 16];
        for (i, b) in id.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Id(id))
    }

    pub(crate) fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn decode(frame: &Bytes) -> Option<Chunk> {
        if frame.len() < HEADER || frame[0] != KIND {
            return None;
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&frame[1..17]);
        Some(Chunk {
            transfer: Id(id),
            index: u32::from_be_bytes([frame[17], frame[18], frame[19], frame[20]]),
            data: frame.slice(HEADER..),
        })
    }

    pub(crate) fn encode(id: Id, index: u32, data: &[u8]) -> Bytes {
        let mut b = BytesMut::with_capacity(HEADER + data.len());
        b.put_u8(KIND);
        b.put_slice(&id.0);
        b.put_u32(index);
        b.put_slice(data);
        b.freeze()
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn frames_round_trip_with_the_documented_layout() {
            let id = parse_id("00112233445566778899aabbccddeeff").unwrap();
            let f = encode(id, 258, b"xy");
            assert_eq!(f[0], 1);
            assert_eq!(&f[1..3], &[0x00, 0x11]);
            assert_eq!(&f[17..21], &[0, 0, 1, 2]);
            let c = decode(&f).unwrap();
            assert_eq!((c.transfer, c.index, &c.data[..]), (id, 258, &b"xy"[..]));
            assert_eq!(c.transfer.to_string(), "00112233445566778899aabbccddeeff");
            assert!(parse_id("0011").is_none());
            assert!(parse_id(&"é".repeat(16)).is_none());
            assert!(decode(&Bytes::from_static(&[1, 2, 3])).is_none());
        }
    }
}
