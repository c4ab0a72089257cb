//! Bulk import ([`ImportStore`], [`ImportSession`]): long write transactions taking many
//! batches, events parked in `pending` until their predecessors arrive, and fork evidence.

use rusqlite::{params, OptionalExtension};

use rhizome_core::{Event, InstanceId, PublicKey, VerifiedEvent};
use rhizome_store::{
    BatchResult, ImportSession, ImportStore, Outcome, Result as StoreResult, Store,
};

use crate::log::append_in;
use crate::{classify, run, Result, SqliteStore};

impl ImportStore for SqliteStore {
    fn begin_import(
        &mut self,
        carrier: Option<&InstanceId>,
    ) -> StoreResult<Box<dyn ImportSession + '_>> {
        let path = self.path.clone();
        Ok(Box::new(ImportTx {
            tx: self.write_tx()?,
            path,
            carrier: carrier.copied(),
            events: 0,
        }))
    }

    fn reader(&self) -> StoreResult<Box<dyn Store>> {
        let reader = SqliteStore::open(&self.path)?;
        // Each page is read about once: a large cache would only hold memory.
        reader.set_cache_kib(READER_CACHE_KIB)?;
        Ok(Box::new(reader))
    }

    fn bulk_mode(&mut self, on: bool) -> StoreResult<()> {
        self.set_cache_kib(if on {
            IMPORT_CACHE_KIB
        } else {
            crate::DEFAULT_CACHE_KIB
        })
    }
}

/// Page cache of a reader's connection (see `reader`).
const READER_CACHE_KIB: u32 = 2048;

/// Page cache of the writer's connection during an import: the largest part of its memory.
/// On B6 (BENCHMARKS.md) 48 MiB writes as fast as the default 64 MiB and peaks 18 MB lower;
/// 32 MiB is 10% slower.
const IMPORT_CACHE_KIB: u32 = 48 * 1024;

/// One write transaction that takes import batches one after another; nothing is durable until
/// [`ImportSession::commit`], and dropping it rolls everything back.
///
/// Why: a bundle sorted by author inserts into the hash index and the timeline at random
/// places, so each commit rewrites most of their pages (to the WAL, then to the database). A
/// commit every 4,096 events wrote about 8 KiB per event; committing tens of thousands at once
/// writes each such page once for many events (BENCHMARKS.md, B6).
struct ImportTx<'a> {
    tx: rusqlite::Transaction<'a>,
    path: std::path::PathBuf,
    carrier: Option<InstanceId>,
    events: usize,
}

impl ImportSession for ImportTx<'_> {
    fn add(&mut self, events: &[VerifiedEvent]) -> StoreResult<BatchResult> {
        run(|| {
            let (tx, path, carrier) = (&self.tx, &self.path, self.carrier.as_ref());
            let outcomes = append_in(tx, path, events)?;
            let mut touched = std::collections::BTreeSet::new();
            for (ev, outcome) in events.iter().zip(&outcomes) {
                touched.insert(ev.header.author);
                record_side_effects(tx, ev, outcome, carrier)?;
            }
            let mut promoted = 0;
            for author in touched {
                promoted += promote_pending(tx, path, &author, carrier)?;
            }
            self.events += events.len();
            Ok(BatchResult { outcomes, promoted })
        })
    }

    fn events(&self) -> usize {
        self.events
    }

    fn commit(self: Box<Self>) -> StoreResult<()> {
        self.tx.commit().map_err(|e| classify(&self.path, e))
    }
}

fn record_side_effects(
    tx: &rusqlite::Transaction<'_>,
    ev: &VerifiedEvent,
    outcome: &Outcome,
    carrier: Option<&InstanceId>,
) -> Result<()> {
    let (author, seq) = (&ev.header.author.as_bytes()[..], ev.header.seq.get() as i64);
    let (kind, held) = match outcome {
        Outcome::Gap { .. } => {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO pending (author, seq, hash, line) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![author, seq, &ev.hash.as_bytes()[..], ev.to_line()])?;
            return Ok(());
        }
        Outcome::Fork { existing } => ("same_seq", *existing),
        Outcome::PrevMismatch { head_hash: Some(h) } => ("prev_mismatch", *h),
        _ => return Ok(()),
    };
    tx.prepare_cached(
        "INSERT OR IGNORE INTO forks (author, seq, hash, held, kind, carrier, line) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        author,
        seq,
        &ev.hash.as_bytes()[..],
        &held.as_bytes()[..],
        kind,
        carrier.map(|c| c.as_bytes().to_vec()),
        ev.to_line()
    ])?;
    Ok(())
}

/// Moves parked events of `author` into the log while they extend it.
fn promote_pending(
    tx: &rusqlite::Transaction<'_>,
    path: &std::path::Path,
    author: &PublicKey,
    carrier: Option<&InstanceId>,
) -> Result<u64> {
    let mut promoted = 0;
    loop {
        let head: i64 = tx
            .prepare_cached("SELECT head_seq FROM feeds WHERE author = ?1")?
            .query_row([&author.as_bytes()[..]], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        let lines: Vec<(i64, Vec<u8>, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT seq, hash, line FROM pending WHERE author = ?1 AND seq <= ?2 ORDER BY seq, hash",
            )?
            .query_map(params![&author.as_bytes()[..], head + 1], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if lines.is_empty() {
            return Ok(promoted);
        }
        let mut progressed = false;
        for (seq, hash, line) in lines {
            tx.prepare_cached("DELETE FROM pending WHERE author = ?1 AND seq = ?2 AND hash = ?3")?
                .execute(params![&author.as_bytes()[..], seq, hash])?;
            // Parked lines were verified on the way in; verify again rather than trust a table.
            let Ok(ev) = Event::parse(&line).and_then(Event::verify) else {
                continue;
            };
            let outcome = append_in(tx, path, std::slice::from_ref(&ev))?;
            if let Some(o) = outcome.first() {
                if *o == Outcome::Inserted {
                    promoted += 1;
                    progressed = true;
                }
                record_side_effects(tx, &ev, o, carrier)?;
            }
        }
        if !progressed {
            return Ok(promoted);
        }
    }
}
