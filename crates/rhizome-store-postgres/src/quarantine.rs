//! Bundles held until a person decides ([`QuarantineStore`]): their records, and their bytes
//! as blobs in the database (`blobs`, `blob_chunks`), so that every hub process behind a load
//! balancer reads the same ones.
//!
//! A blob is written through its own connection, in one transaction: chunks of
//! [`CHUNK_BYTES`] under a random upload id as the bytes come (memory stays bounded), then
//! the blob row named by the SHA-256 of all of them. A sink dropped unfinished, or a process
//! that dies, leaves nothing: the server rolls the transaction back. A reader streams the
//! chunks, one query each, from one snapshot, and checks the SHA-256 at the end.

use postgres::Client;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::sync::Arc;

use rhizome_core::Hash;
use rhizome_store::{BlobId, BlobSink, Held, QuarantineStore, Result as StoreResult, StoreError};

use crate::{classify, instance_col, key_col, text_col, u64_col, PgStore, Shared};

/// Bytes per stored chunk.
pub(crate) const CHUNK_BYTES: usize = 1 << 20;

fn blob_error(what: impl std::fmt::Display, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Blob {
        what: what.to_string(),
        detail: detail.to_string(),
    }
}

fn io_error(e: StoreError) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// A blob being written (see the module docs).
struct PgSink {
    client: Client,
    shared: Arc<Shared>,
    upload: [u8; 16],
    buf: Vec<u8>,
    next: i32,
    size: u64,
    hasher: Sha256,
}

impl PgSink {
    fn store_chunk(&mut self) -> StoreResult<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.client
            .execute(
                "INSERT INTO blob_chunks (upload, n, data) VALUES ($1, $2, $3)",
                &[&&self.upload[..], &self.next, &self.buf],
            )
            .map_err(|e| classify(&self.shared.location, &e))?;
        self.next += 1;
        self.buf.clear();
        Ok(())
    }
}

impl Write for PgSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&bytes[..n]);
        self.hasher.update(&bytes[..n]);
        self.size += n as u64;
        if self.buf.len() == CHUNK_BYTES {
            self.store_chunk().map_err(io_error)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl BlobSink for PgSink {
    fn finish(mut self: Box<Self>) -> StoreResult<BlobId> {
        self.store_chunk()?;
        let id = BlobId(Hash::from_bytes(self.hasher.clone().finalize().into()));
        let location = self.shared.location.clone();
        let pg = |e: postgres::Error| classify(&location, &e);
        let inserted = self
            .client
            .execute(
                "INSERT INTO blobs (id, upload, size) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                &[&&id.0.as_bytes()[..], &&self.upload[..], &(self.size as i64)],
            )
            .map_err(pg)?;
        // The same bytes are stored already: this copy goes.
        let end = if inserted == 1 { "COMMIT" } else { "ROLLBACK" };
        self.client.batch_execute(end).map_err(pg)?;
        Ok(id)
    }
}

/// A stored blob being read (see the module docs).
struct PgBlobReader {
    client: Client,
    shared: Arc<Shared>,
    id: BlobId,
    upload: Vec<u8>,
    size: u64,
    next: i32,
    chunk: Vec<u8>,
    at: usize,
    read: u64,
    hasher: Sha256,
    done: bool,
}

impl Read for PgBlobReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.done {
                return Ok(0);
            }
            let row = self
                .client
                .query_opt(
                    "SELECT data FROM blob_chunks WHERE upload = $1 AND n = $2",
                    &[&self.upload, &self.next],
                )
                .map_err(|e| io_error(classify(&self.shared.location, &e)))?;
            match row {
                Some(r) => {
                    self.chunk = r.get(0);
                    self.at = 0;
                    self.next += 1;
                    self.read += self.chunk.len() as u64;
                    self.hasher.update(&self.chunk);
                }
                None => {
                    self.done = true;
                    let _ = self.client.batch_execute("ROLLBACK");
                    let sha: [u8; 32] = self.hasher.clone().finalize().into();
                    if self.read != self.size || sha != *self.id.0.as_bytes() {
                        return Err(io_error(blob_error(
                            format!("blob {}", self.id),
                            format!(
                                "damaged: {} bytes stored of {}, or their SHA-256 differs",
                                self.read, self.size
                            ),
                        )));
                    }
                }
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl QuarantineStore for PgStore {
    fn blob_sink(&self) -> StoreResult<Box<dyn BlobSink>> {
        let mut upload = [0u8; 16];
        getrandom::fill(&mut upload)
            .map_err(|e| blob_error("a new blob", format!("no randomness for its id: {e}")))?;
        let mut client = self.shared.client()?;
        client
            .batch_execute("BEGIN")
            .map_err(|e| classify(&self.shared.location, &e))?;
        Ok(Box::new(PgSink {
            client,
            shared: self.shared.clone(),
            upload,
            buf: Vec::with_capacity(CHUNK_BYTES),
            next: 0,
            size: 0,
            hasher: Sha256::new(),
        }))
    }

    fn open_blob(&self, id: &BlobId) -> StoreResult<Box<dyn Read + Send>> {
        let location = self.shared.location.clone();
        let pg = |e: postgres::Error| classify(&location, &e);
        let mut client = self.shared.client()?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .map_err(pg)?;
        let row = client
            .query_opt(
                "SELECT upload, size FROM blobs WHERE id = $1",
                &[&&id.0.as_bytes()[..]],
            )
            .map_err(pg)?
            .ok_or_else(|| blob_error(format!("blob {id}"), "no such blob is stored"))?;
        Ok(Box::new(PgBlobReader {
            upload: row.get(0),
            size: u64_col(row.get(1)),
            client,
            shared: self.shared.clone(),
            id: *id,
            next: 0,
            chunk: Vec::new(),
            at: 0,
            read: 0,
            hasher: Sha256::new(),
            done: false,
        }))
    }

    fn delete_blob(&self, id: &BlobId) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "WITH b AS (DELETE FROM blobs WHERE id = $1 RETURNING upload)
                 DELETE FROM blob_chunks WHERE upload IN (SELECT upload FROM b)",
                &[&&id.0.as_bytes()[..]],
            )?;
            Ok(())
        })
    }

    fn hold(&mut self, h: &Held) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "INSERT INTO quarantine (id, instance_id, public_key, name, events, feeds, invalid, arrived_at, blob, incomplete)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (id) DO NOTHING",
                &[
                    &h.id,
                    &&h.instance_id.as_bytes()[..],
                    &&h.public_key.as_bytes()[..],
                    &h.name.as_bytes(),
                    &(h.events as i64),
                    &(h.feeds as i64),
                    &(h.invalid as i64),
                    &(h.arrived_at as i64),
                    &h.blob.as_ref().map(|b| &b.0.as_bytes()[..]),
                    &h.incomplete.as_ref().map(|t| t.as_bytes()),
                ],
            )? == 1)
        })
    }

    fn held(&self) -> StoreResult<Vec<Held>> {
        self.with(|c| {
            c.query(
                "SELECT id, instance_id, public_key, name, events, feeds, invalid, arrived_at, blob, incomplete
                 FROM quarantine ORDER BY arrived_at, id",
                &[],
            )?
            .into_iter()
            .map(|r| {
                Ok(Held {
                    id: r.get(0),
                    instance_id: instance_col(r.get(1), "quarantine.instance_id")?,
                    public_key: key_col(r.get(2), "quarantine.public_key")?,
                    name: text_col(r.get(3), "quarantine.name")?,
                    events: u64_col(r.get(4)),
                    feeds: u64_col(r.get(5)),
                    invalid: u64_col(r.get(6)),
                    arrived_at: u64_col(r.get(7)),
                    blob: r
                        .get::<_, Option<&[u8]>>(8)
                        .map(|b| crate::hash_col(b, "quarantine.blob").map(BlobId))
                        .transpose()?,
                    incomplete: r
                        .get::<_, Option<Vec<u8>>>(9)
                        .map(|t| text_col(t, "quarantine.incomplete"))
                        .transpose()?,
                })
            })
            .collect()
        })
    }

    fn release(&mut self, id: &str) -> StoreResult<bool> {
        self.with(|c| Ok(c.execute("DELETE FROM quarantine WHERE id = $1", &[&id])? == 1))
    }
}
