//! Files sent through the server (docs/protocol.md, "File transfer"): a
//! sender offers a file to a room or a user, uploads it in chunks the server
//! writes to its file and acknowledges one by one, and recipients download
//! it once the SHA-256 of the whole matched. Both legs resume from the last
//! acknowledged chunk.
//!
//! The store is a directory: `ID.json` (what was offered, whether it is
//! complete) and `ID.data` (the bytes, chunk `i` at `i × chunk_size`). Its
//! chunks are written in order, so after a restart the data file's length
//! says how many it holds. Protocol adapters call [`Files`]; what a
//! connection may do with a room is theirs to check (see [`Target`]).

pub mod chunk;
mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use chunk::TransferId;
use store::Dir;

/// Settings of file transfers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FilesConfig {
    /// Where files are kept (`--data-dir`/files); `None`: a directory under
    /// the system's temporary directory, removed when the server stops.
    pub dir: Option<PathBuf>,
    /// Largest file.
    pub max_file_size: u64,
    /// Bytes of all files held (offered sizes, complete or not).
    pub max_storage: u64,
    /// How long a transfer is kept after its last chunk or download.
    pub ttl: Duration,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            dir: None,
            max_file_size: 1 << 30,
            max_storage: 10 << 30,
            ttl: Duration::from_secs(24 * 3600),
        }
    }
}

/// The chunk size unless the sender asks for another.
pub const DEFAULT_CHUNK: u32 = 32 << 10;
/// The smallest chunk size a sender may ask for.
pub const MIN_CHUNK: u32 = 1 << 10;
/// Chunks sent and not yet acknowledged, each way.
pub const WINDOW: u32 = 16;

/// Who a file is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The members of a room.
    Room(String),
    /// A user (every connection of theirs).
    User(String),
}

impl Target {
    /// The room the completion notice goes to (a user's personal room).
    pub fn room(&self) -> String {
        match self {
            Self::Room(r) => r.clone(),
            Self::User(u) => crate::relay::user_room(u),
        }
    }

    fn json(&self) -> Value {
        match self {
            Self::Room(r) => json!({"room": r}),
            Self::User(u) => json!({"user": u}),
        }
    }
}

/// A refusal or a failure, with its code (docs/protocol.md lists them):
/// a reply's error for requests, a `file_error` push for chunks and acks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FileError {
    /// `not_found`, `forbidden`, `out_of_order`, `bad_chunk`, …
    pub code: &'static str,
    /// For people.
    pub message: String,
    /// For `out_of_order`: the chunk the server expects.
    pub next: Option<u32>,
}

impl FileError {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            next: None,
        }
    }

    fn io(e: &std::io::Error) -> Self {
        tracing::error!(error = %e, "file store failed");
        Self::new("unavailable", "the file store failed; try again")
    }

    /// The `file_error` push about `transfer`.
    pub fn push(&self, transfer: &str) -> Value {
        let mut m = json!({"op": "file_error", "transfer": transfer, "code": self.code, "message": self.message});
        if let Some(next) = self.next {
            m["next"] = json!(next);
        }
        m
    }
}

/// What was offered (kept as `ID.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Meta {
    sender: String,
    to: Target,
    name: String,
    size: u64,
    sha256: String,
    chunk_size: u32,
    /// All chunks written and the digest matched.
    complete: bool,
    /// The completion notice was published.
    notified: bool,
}

impl Meta {
    fn chunks(&self) -> u32 {
        self.size.div_ceil(u64::from(self.chunk_size)) as u32
    }

    /// The length of chunk `index`.
    fn chunk_len(&self, index: u32) -> usize {
        let start = u64::from(index) * u64::from(self.chunk_size);
        (self.size - start).min(u64::from(self.chunk_size)) as usize
    }
}

/// One transfer.
struct Transfer {
    id: TransferId,
    meta: Meta,
    digest: [u8; 32],
    /// Chunks held (written in order).
    next: u32,
    /// The digest of the chunks held; `None` after a restart until needed.
    hasher: Option<Sha256>,
    touched: Instant,
    /// Chunk frames received, and how many of those the server already
    /// held (a sender resending acknowledged chunks).
    received: u64,
    duplicates: u64,
}

/// An offer: a new transfer, or one to resume (`transfer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Who it is for.
    pub to: Target,
    /// The file's name (metadata for recipients).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// The chunk size asked for.
    pub chunk_size: Option<u32>,
    /// The transfer to resume.
    pub transfer: Option<TransferId>,
}

/// The answer to an offer (the reply's fields) and, when the file was
/// empty or already complete but not announced, the notice to publish.
#[derive(Debug)]
pub struct Offered {
    /// The reply's fields.
    pub reply: Value,
    /// A notice to publish now ([`Files::notified`] after).
    pub notice: Option<Notice>,
}

/// A transfer's completion notice: the `file` message to publish.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The transfer.
    pub transfer: TransferId,
    /// The room to publish to.
    pub room: String,
    /// The sender (the message's `from`).
    pub from: String,
    /// `{transfer, name, size, sha256}`.
    pub data: Value,
    /// The `file_complete` push for the sender.
    pub complete: Value,
}

/// What a chunk did.
#[derive(Debug)]
pub struct Written {
    /// The `file_ack` push.
    pub ack: Value,
    /// The last chunk: the notice to publish.
    pub notice: Option<Notice>,
}

/// A download's description: the `file_get` reply's fields.
#[derive(Debug, Clone)]
pub struct Download {
    /// The transfer.
    pub transfer: TransferId,
    /// Its chunks.
    pub chunks: u32,
    /// The reply.
    pub reply: Value,
}

/// The file transfers of one server.
pub struct Files {
    dir: Dir,
    config: FilesConfig,
    transfers: Mutex<HashMap<TransferId, Arc<Mutex<Transfer>>>>,
    /// Offered bytes of every transfer held.
    reserved: AtomicU64,
    max_chunk: u32,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files")
            .field("transfers", &self.map().len())
            .finish()
    }
}

impl Files {
    /// The store; with a configured directory, the transfers it holds are
    /// loaded (an incomplete one resumes where its data file ends). The
    /// directory is made on first use: a failure then is an `unavailable`
    /// answer. `max_payload` bounds the chunk size.
    pub fn open(config: FilesConfig, max_payload: usize) -> Self {
        let dir = Dir::new(config.dir.as_deref());
        let files = Self {
            max_chunk: u32::try_from(max_payload.saturating_sub(chunk::HEADER))
                .unwrap_or(u32::MAX)
                .max(1),
            dir,
            config,
            transfers: Mutex::default(),
            reserved: AtomicU64::new(0),
        };
        for (id, meta, len) in files.dir.load() {
            files.insert_loaded(id, meta, len);
        }
        files
    }

    fn insert_loaded(&self, id: TransferId, meta: Meta, len: u64) {
        let Some(digest) = chunk::parse_digest(&meta.sha256) else {
            return self.dir.remove(id);
        };
        let held = (len / u64::from(meta.chunk_size)) as u32;
        let next = if meta.complete {
            if len != meta.size {
                return self.dir.remove(id);
            }
            meta.chunks()
        } else {
            held.min(meta.chunks().saturating_sub(1))
        };
        self.reserved.fetch_add(meta.size, Ordering::Relaxed);
        let t = Transfer {
            id,
            digest,
            next,
            hasher: None,
            touched: Instant::now(),
            received: 0,
            duplicates: 0,
            meta,
        };
        self.map().insert(id, Arc::new(Mutex::new(t)));
    }

    fn map(&self) -> MutexGuard<'_, HashMap<TransferId, Arc<Mutex<Transfer>>>> {
        self.transfers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, id: TransferId) -> Result<Arc<Mutex<Transfer>>, FileError> {
        let t = self.map().get(&id).cloned();
        t.ok_or_else(|| FileError::new("not_found", "no such transfer"))
    }

    /// The largest chunk size.
    pub fn max_chunk(&self) -> u32 {
        self.max_chunk
    }

    /// A new transfer from `sender`, or one resumed. Whether the sender may
    /// send to the target is the caller's to check first.
    pub fn offer(&self, sender: &str, offer: Offer) -> Result<Offered, FileError> {
        if let Some(id) = offer.transfer {
            return self.resume(id, &offer);
        }
        if offer.size > self.config.max_file_size {
            return Err(FileError::new(
                "too_large",
                format!("files are at most {} bytes", self.config.max_file_size),
            ));
        }
        let chunk_size = match offer.chunk_size {
            None => DEFAULT_CHUNK.min(self.max_chunk),
            Some(c) if (MIN_CHUNK.min(self.max_chunk)..=self.max_chunk).contains(&c) => c,
            Some(_) => {
                return Err(FileError::new(
                    "bad_request",
                    format!(
                        "chunk_size must be {} to {}",
                        MIN_CHUNK.min(self.max_chunk),
                        self.max_chunk
                    ),
                ));
            }
        };
        let max = self.config.max_storage;
        let reserved = self
            .reserved
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                r.checked_add(offer.size).filter(|t| *t <= max)
            });
        if reserved.is_err() {
            return Err(FileError::new(
                "unavailable",
                "the server's file storage is full; try later",
            ));
        }
        let id = TransferId::random();
        let meta = Meta {
            sender: sender.to_owned(),
            to: offer.to,
            name: offer.name,
            size: offer.size,
            sha256: chunk::hex(&offer.sha256),
            chunk_size,
            complete: false,
            notified: false,
        };
        let mut t = Transfer {
            id,
            digest: offer.sha256,
            next: 0,
            hasher: Some(Sha256::new()),
            touched: Instant::now(),
            received: 0,
            duplicates: 0,
            meta,
        };
        if let Err(e) = self.dir.create(id, &t.meta) {
            self.reserved.fetch_sub(offer.size, Ordering::AcqRel);
            return Err(FileError::io(&e));
        }
        // An empty file is complete at once (or never).
        let notice = if t.meta.size == 0 {
            match self.finish(&mut t) {
                Ok(notice) => Some(notice),
                Err(e) => {
                    self.delete(id, t.meta.size);
                    return Err(e);
                }
            }
        } else {
            None
        };
        let reply = offered(&t);
        self.map().insert(id, Arc::new(Mutex::new(t)));
        Ok(Offered { reply, notice })
    }

    fn resume(&self, id: TransferId, offer: &Offer) -> Result<Offered, FileError> {
        let t = self.get(id)?;
        let mut t = lock(&t);
        if t.meta.size != offer.size || t.digest != offer.sha256 {
            return Err(FileError::new(
                "bad_request",
                "size and sha256 must be the offered ones",
            ));
        }
        t.touched = Instant::now();
        let notice = (t.meta.complete && !t.meta.notified).then(|| notice(&t));
        Ok(Offered {
            reply: offered(&t),
            notice,
        })
    }

    /// Writes a chunk (from a connection that knows the transfer's id: the
    /// sender, until it is complete).
    pub fn write(&self, c: &chunk::Chunk) -> Result<Written, FileError> {
        let t = self.get(c.transfer)?;
        let mut t = lock(&t);
        t.received += 1;
        t.touched = Instant::now();
        let ack =
            |i: u32| json!({"op": "file_ack", "transfer": c.transfer.to_string(), "chunk": i});
        if c.index < t.next || t.meta.complete {
            if c.index >= t.meta.chunks() {
                return Err(FileError::new("bad_chunk", "no such chunk"));
            }
            // Held already: acknowledged again, not written.
            t.duplicates += 1;
            return Ok(Written {
                ack: ack(c.index),
                notice: None,
            });
        }
        if c.index > t.next {
            return Err(FileError {
                next: Some(t.next),
                ..FileError::new("out_of_order", "chunks go in order; resume from next")
            });
        }
        if c.data.len() != t.meta.chunk_len(c.index) {
            return Err(FileError::new(
                "bad_chunk",
                format!(
                    "chunk {} must be {} bytes",
                    c.index,
                    t.meta.chunk_len(c.index)
                ),
            ));
        }
        if t.hasher.is_none() {
            let held = u64::from(t.next) * u64::from(t.meta.chunk_size);
            let hasher = self.dir.digest(t.id, held).map_err(|e| FileError::io(&e))?;
            t.hasher = Some(hasher);
        }
        let at = u64::from(c.index) * u64::from(t.meta.chunk_size);
        self.dir
            .write(t.id, at, &c.data)
            .map_err(|e| FileError::io(&e))?;
        if let Some(h) = t.hasher.as_mut() {
            h.update(&c.data);
        }
        t.next += 1;
        let notice = if t.next == t.meta.chunks() {
            match self.finish(&mut t) {
                Ok(n) => Some(n),
                Err(e) => {
                    let (id, size) = (t.id, t.meta.size);
                    drop(t);
                    self.delete(id, size);
                    return Err(e);
                }
            }
        } else {
            None
        };
        Ok(Written {
            ack: ack(c.index),
            notice,
        })
    }

    /// Every chunk is held: checks the digest and marks it complete.
    fn finish(&self, t: &mut Transfer) -> Result<Notice, FileError> {
        let digest = t.hasher.take().unwrap_or_default().finalize();
        if digest.as_slice() != t.digest {
            return Err(FileError::new(
                "checksum_mismatch",
                "the file's SHA-256 is not the offered one; the transfer is deleted",
            ));
        }
        self.dir.sync(t.id).map_err(|e| FileError::io(&e))?;
        t.meta.complete = true;
        self.dir
            .save(t.id, &t.meta)
            .map_err(|e| FileError::io(&e))?;
        tracing::debug!(transfer = %t.id, size = t.meta.size, "file complete");
        Ok(notice(t))
    }

    /// The completion notice was published.
    pub fn notified(&self, id: TransferId) {
        if let Ok(t) = self.get(id) {
            let mut t = lock(&t);
            t.meta.notified = true;
            if let Err(e) = self.dir.save(id, &t.meta) {
                tracing::warn!(error = %e, "could not save a transfer's state");
            }
        }
    }

    /// Starts a download of a complete transfer for a connection of `user`;
    /// `may_join` says whether it may join a room.
    pub fn download(
        &self,
        id: TransferId,
        from: u32,
        user: &str,
        may_join: impl FnOnce(&str) -> bool,
    ) -> Result<Download, FileError> {
        let t = self.get(id)?;
        let mut t = lock(&t);
        let allowed = t.meta.sender == user
            || match &t.meta.to {
                Target::User(u) => u == user,
                Target::Room(r) => may_join(r),
            };
        if !allowed {
            return Err(FileError::new("forbidden", "this file is not for you"));
        }
        if !t.meta.complete {
            return Err(FileError::new("not_ready", "the upload is not complete"));
        }
        let chunks = t.meta.chunks();
        if from > chunks {
            return Err(FileError::new("bad_request", "from is past the last chunk"));
        }
        t.touched = Instant::now();
        let mut reply = describe(&t);
        reply["from"] = json!(from);
        reply["window"] = json!(WINDOW);
        Ok(Download {
            transfer: id,
            chunks,
            reply,
        })
    }

    /// Chunk `index` of a complete transfer, as a chunk frame.
    pub fn read(&self, id: TransferId, index: u32) -> Result<Bytes, FileError> {
        let t = self.get(id)?;
        let (at, len) = {
            let mut t = lock(&t);
            if !t.meta.complete || index >= t.meta.chunks() {
                return Err(FileError::new("not_found", "no such chunk"));
            }
            t.touched = Instant::now();
            (
                u64::from(index) * u64::from(t.meta.chunk_size),
                t.meta.chunk_len(index),
            )
        };
        let mut frame = vec![0u8; chunk::HEADER + len];
        frame[..chunk::HEADER].copy_from_slice(&chunk::header(id, index));
        self.dir
            .read(id, at, &mut frame[chunk::HEADER..])
            .map_err(|e| FileError::io(&e))?;
        Ok(Bytes::from(frame))
    }

    /// Complete transfers for `user` or for one of `rooms`.
    pub fn list(&self, user: &str, rooms: &[&str]) -> Vec<Value> {
        let all: Vec<Arc<Mutex<Transfer>>> = self.map().values().cloned().collect();
        let mut list: Vec<Value> = all
            .iter()
            .filter_map(|t| {
                let t = lock(t);
                let mine = match &t.meta.to {
                    Target::User(u) => u == user,
                    Target::Room(r) => rooms.contains(&r.as_str()),
                };
                (t.meta.complete && mine).then(|| {
                    let mut d = describe(&t);
                    d["from"] = json!(t.meta.sender);
                    d["to"] = t.meta.to.json();
                    d
                })
            })
            .collect();
        list.sort_by(|a, b| a["transfer"].as_str().cmp(&b["transfer"].as_str()));
        list
    }

    /// Deletes a transfer: its sender may, and so may anyone holding the id
    /// of one not yet complete (the id is the sender's until then).
    pub fn cancel(&self, id: TransferId, user: &str) -> Result<(), FileError> {
        let t = self.get(id)?;
        let size = {
            let t = lock(&t);
            if t.meta.complete && t.meta.sender != user {
                return Err(FileError::new("forbidden", "only its sender may cancel it"));
            }
            t.meta.size
        };
        self.delete(id, size);
        Ok(())
    }

    fn delete(&self, id: TransferId, size: u64) {
        if self.map().remove(&id).is_some() {
            self.reserved.fetch_sub(size, Ordering::AcqRel);
        }
        self.dir.remove(id);
    }

    /// Deletes transfers untouched for the TTL; returns how many.
    pub fn expire(&self) -> usize {
        let ttl = self.config.ttl;
        let expired: Vec<(TransferId, u64)> = self
            .map()
            .values()
            .filter_map(|t| {
                let t = lock(t);
                (t.touched.elapsed() > ttl).then_some((t.id, t.meta.size))
            })
            .collect();
        for (id, size) in &expired {
            self.delete(*id, *size);
        }
        expired.len()
    }

    /// How often [`Files::expire`] is worth calling.
    pub fn sweep_every(&self) -> Duration {
        (self.config.ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
    }

    /// Chunk frames received for a transfer, and how many were held already.
    pub fn counts(&self, id: TransferId) -> Option<(u64, u64)> {
        let t = self.get(id).ok()?;
        let t = lock(&t);
        Some((t.received, t.duplicates))
    }
}

fn lock(t: &Mutex<Transfer>) -> MutexGuard<'_, Transfer> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// `{transfer, name, size, sha256, chunk_size, chunks}`.
fn describe(t: &Transfer) -> Value {
    json!({
        "transfer": t.id.to_string(),
        "name": t.meta.name,
        "size": t.meta.size,
        "sha256": t.meta.sha256,
        "chunk_size": t.meta.chunk_size,
        "chunks": t.meta.chunks(),
    })
}

fn offered(t: &Transfer) -> Value {
    json!({
        "transfer": t.id.to_string(),
        "chunk_size": t.meta.chunk_size,
        "chunks": t.meta.chunks(),
        "next": t.next,
        "window": WINDOW,
        "complete": t.meta.complete,
    })
}

fn notice(t: &Transfer) -> Notice {
    let transfer = t.id.to_string();
    Notice {
        transfer: t.id,
        room: t.meta.to.room(),
        from: t.meta.sender.clone(),
        data: json!({
            "transfer": transfer,
            "name": t.meta.name,
            "size": t.meta.size,
            "sha256": t.meta.sha256,
        }),
        complete: json!({
            "op": "file_complete",
            "transfer": transfer,
            "received": t.received,
            "duplicates": t.duplicates,
        }),
    }
}

#[cfg(test)]
mod tests;
