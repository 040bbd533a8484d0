//! The directory of file transfers: `ID.json` and `ID.data` per transfer.
//! Files are opened per operation, so a transfer holds no descriptor
//! between chunks.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::{Meta, TransferId};

pub(super) struct Dir {
    /// The configured directory.
    configured: Option<PathBuf>,
    /// Without one: a temporary directory, made on first use and removed
    /// when dropped.
    temp: OnceLock<tempfile::TempDir>,
}

impl Dir {
    pub(super) fn new(path: Option<&Path>) -> Self {
        Self {
            configured: path.map(Path::to_owned),
            temp: OnceLock::new(),
        }
    }

    fn root(&self) -> std::io::Result<&Path> {
        if let Some(p) = &self.configured {
            return Ok(p);
        }
        if let Some(t) = self.temp.get() {
            return Ok(t.path());
        }
        let made = tempfile::Builder::new()
            .prefix("switchboard-files-")
            .tempdir()?;
        Ok(self.temp.get_or_init(|| made).path())
    }

    fn meta_path(&self, id: TransferId) -> std::io::Result<PathBuf> {
        Ok(self.root()?.join(format!("{id}.json")))
    }

    fn data_path(&self, id: TransferId) -> std::io::Result<PathBuf> {
        Ok(self.root()?.join(format!("{id}.data")))
    }

    /// The transfers held: id, what was offered, the data file's length.
    pub(super) fn load(&self) -> Vec<(TransferId, Meta, u64)> {
        let Some(path) = &self.configured else {
            return Vec::new();
        };
        let Ok(entries) = fs::read_dir(path) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(TransferId::parse)
            else {
                continue;
            };
            let meta = fs::read(entry.path())
                .ok()
                .and_then(|b| serde_json::from_slice::<Meta>(&b).ok());
            let Some(meta) = meta.filter(|m| m.chunk_size > 0) else {
                tracing::warn!(transfer = %id, "unreadable transfer state; removed");
                self.remove(id);
                continue;
            };
            let len = fs::metadata(path.join(format!("{id}.data"))).map_or(0, |m| m.len());
            found.push((id, meta, len));
        }
        found
    }

    /// A new transfer: its state and an empty data file.
    pub(super) fn create(&self, id: TransferId, meta: &Meta) -> std::io::Result<()> {
        if let Some(p) = &self.configured {
            fs::create_dir_all(p)?;
        }
        File::create(self.data_path(id)?)?;
        self.save(id, meta)
    }

    /// Replaces the state file (written aside, then renamed).
    pub(super) fn save(&self, id: TransferId, meta: &Meta) -> std::io::Result<()> {
        let tmp = self.root()?.join(format!("{id}.json.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(meta).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        fs::rename(tmp, self.meta_path(id)?)
    }

    pub(super) fn write(&self, id: TransferId, at: u64, data: &[u8]) -> std::io::Result<()> {
        let f = OpenOptions::new().write(true).open(self.data_path(id)?)?;
        f.write_all_at(data, at)
    }

    /// Flushes the data to the disk.
    pub(super) fn sync(&self, id: TransferId) -> std::io::Result<()> {
        File::open(self.data_path(id)?)?.sync_all()
    }

    pub(super) fn read(&self, id: TransferId, at: u64, buf: &mut [u8]) -> std::io::Result<()> {
        File::open(self.data_path(id)?)?.read_exact_at(buf, at)
    }

    /// The digest of the first `len` bytes of the data.
    pub(super) fn digest(&self, id: TransferId, len: u64) -> std::io::Result<Sha256> {
        let mut f = File::open(self.data_path(id)?)?.take(len);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(hasher);
            }
            hasher.update(&buf[..n]);
        }
    }

    pub(super) fn remove(&self, id: TransferId) {
        if let (Ok(data), Ok(meta)) = (self.data_path(id), self.meta_path(id)) {
            let _ = fs::remove_file(data);
            let _ = fs::remove_file(meta);
        }
    }
}
