//! Bundles held until a person decides ([`QuarantineStore`]): their records in the database,
//! their bytes as files beside it, `<home>/quarantine/<sha256 hex>.bundle`, named by content so
//! that a planted or altered file can never pass for a held one.

use rusqlite::params;
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use rhizome_core::Hash;
use rhizome_store::{BlobId, BlobSink, Held, QuarantineStore, Result as StoreResult, StoreError};

use crate::{classify, instance_col, key_col, run, SqliteStore};

/// The directory of held bundles, beside the database.
fn blob_dir(db: &Path) -> PathBuf {
    db.parent().unwrap_or(Path::new(".")).join("quarantine")
}

fn blob_path(db: &Path, id: &BlobId) -> PathBuf {
    blob_dir(db).join(format!("{id}.bundle"))
}

fn blob_error(what: &Path, e: std::io::Error) -> StoreError {
    StoreError::Blob {
        what: what.display().to_string(),
        detail: e.to_string(),
    }
}

/// A held bundle being written: a fresh file (created exclusively, never through a link),
/// hashed as it is written, renamed to its content hash when finished.
struct FileSink {
    file: File,
    temp: PathBuf,
    dir: PathBuf,
    hasher: Sha256,
}

impl Write for FileSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl BlobSink for FileSink {
    fn finish(self: Box<Self>) -> StoreResult<BlobId> {
        self.file
            .sync_all()
            .map_err(|e| blob_error(&self.temp, e))?;
        let id = BlobId(Hash::from_bytes(self.hasher.clone().finalize().into()));
        let path = self.dir.join(format!("{id}.bundle"));
        // On success the temporary name is gone, and the drop below removes nothing.
        std::fs::rename(&self.temp, &path).map_err(|e| blob_error(&path, e))?;
        Ok(id)
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        // Unfinished (an error part way): the partial file goes. After `finish` it was renamed.
        let _ = std::fs::remove_file(&self.temp);
    }
}

impl QuarantineStore for SqliteStore {
    fn blob_sink(&self) -> StoreResult<Box<dyn BlobSink>> {
        let dir = blob_dir(&self.path);
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|e| blob_error(&dir, e))?;
        let mut random = [0u8; 12];
        getrandom::fill(&mut random).map_err(|e| StoreError::Blob {
            what: dir.display().to_string(),
            detail: format!("no randomness for a temporary name: {e}"),
        })?;
        let temp = dir.join(format!(".incoming-{}", hex::encode(random)));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        // Held bundles may carry circle payloads: readable by the owner only.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&temp).map_err(|e| blob_error(&temp, e))?;
        Ok(Box::new(FileSink {
            file,
            temp,
            dir,
            hasher: Sha256::new(),
        }))
    }

    fn open_blob(&self, id: &BlobId) -> StoreResult<Box<dyn Read + Send>> {
        let path = blob_path(&self.path, id);
        let file = File::open(&path).map_err(|e| blob_error(&path, e))?;
        Ok(Box::new(file))
    }

    fn delete_blob(&self, id: &BlobId) -> StoreResult<()> {
        let path = blob_path(&self.path, id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(blob_error(&path, e)),
            _ => Ok(()),
        }
    }

    fn hold(&mut self, h: &Held) -> StoreResult<bool> {
        run(|| {
            let n = self.conn.execute(
            "INSERT OR IGNORE INTO quarantine (id, instance_id, public_key, name, events, feeds, invalid, arrived_at, file, blob, incomplete)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, '', ?9, ?10)",
            params![
                h.id,
                &h.instance_id.as_bytes()[..],
                &h.public_key.as_bytes()[..],
                h.name,
                h.events as i64,
                h.feeds as i64,
                h.invalid as i64,
                h.arrived_at as i64,
                h.blob.map(|b| b.0.as_bytes().to_vec()),
                h.incomplete
            ],
        ).map_err(|e| classify(&self.path, e))?;
            Ok(n == 1)
        })
    }

    fn held(&self) -> StoreResult<Vec<Held>> {
        run(|| {
            let mut stmt = self.conn.prepare(
            "SELECT id, instance_id, public_key, name, events, feeds, invalid, arrived_at, blob, incomplete FROM quarantine ORDER BY arrived_at, id",
        )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, i64>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, i64>(7)?,
                        r.get::<_, Option<Vec<u8>>>(8)?,
                        r.get::<_, Option<String>>(9)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(
                    |(id, inst, key, name, events, feeds, invalid, at, blob, incomplete)| {
                        Ok(Held {
                            id,
                            instance_id: instance_col(&inst, "quarantine.instance_id")?,
                            public_key: key_col(&key, "quarantine.public_key")?,
                            name,
                            events: events as u64,
                            feeds: feeds as u64,
                            invalid: invalid as u64,
                            arrived_at: at as u64,
                            blob: blob
                                .map(|b| crate::hash_col(&b, "quarantine.blob").map(BlobId))
                                .transpose()?,
                            incomplete,
                        })
                    },
                )
                .collect()
        })
    }

    fn release(&mut self, id: &str) -> StoreResult<bool> {
        run(|| {
            Ok(self
                .conn
                .execute("DELETE FROM quarantine WHERE id = ?1", [id])
                .map_err(|e| classify(&self.path, e))?
                == 1)
        })
    }
}
