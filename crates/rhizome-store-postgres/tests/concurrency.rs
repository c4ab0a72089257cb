//! Several connections (as hub processes behind a load balancer would have) import
//! overlapping, shuffled batches of the same events into one schema at once: the end has no
//! duplicate, no gap, no lost event, nothing pending, and the views of one clean import.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rhizome_core::InstanceId;
use rhizome_store::prelude::*;
use rhizome_store::Outcome;
use rhizome_store_postgres::PgStore;
use rhizome_store_sqlite::SqliteStore;
use std::sync::{Arc, Barrier};

#[test]
fn racing_importers_end_as_one_import() {
    let Some(url) = server("racing_importers_end_as_one_import") else {
        return;
    };
    let (events, whole) = rich(12, 3000, 11);
    // Every importer gets every event (withheld copies and whole ones), in its own order of
    // batches, so events often arrive before their predecessors.
    let all: Vec<_> = events.iter().chain(&whole).cloned().collect();

    let mut shared = scratch(&url);
    let at = with_schema(&url, &shared.schema().unwrap());
    const IMPORTERS: u64 = 4;
    let start = Arc::new(Barrier::new(IMPORTERS as usize));
    let workers: Vec<_> = (0..IMPORTERS)
        .map(|t| {
            let (at, all, start) = (at.clone(), all.clone(), start.clone());
            std::thread::spawn(move || {
                let mut store = PgStore::create(&at).unwrap();
                let carrier = InstanceId::of(&key(200 + t as u8).public_key());
                let mut rng = Rng(1000 + t);
                let mut batches = Vec::new();
                let mut rest = &all[..];
                while !rest.is_empty() {
                    let n = (20 + rng.below(300)).min(rest.len());
                    batches.push(rest[..n].to_vec());
                    rest = &rest[n..];
                }
                rng.shuffle(&mut batches);
                start.wait();
                let mut inserted = 0;
                for b in &batches {
                    let r = store.import_batch(b, Some(&carrier)).unwrap();
                    inserted += r.promoted as usize;
                    inserted += r
                        .outcomes
                        .iter()
                        .filter(|o| **o == Outcome::Inserted)
                        .count();
                }
                inserted
            })
        })
        .collect();
    let inserted: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();

    // One clean import, in order, on one connection; and the same on SQLite.
    let mut clean = scratch(&url);
    clean.import_batch(&all, None).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut lite = SqliteStore::open(&dir.path().join("rhizome.db")).unwrap();
    lite.import_batch(&all, None).unwrap();

    let stats = shared.stats().unwrap();
    assert_eq!(
        stats.events as usize,
        events.len(),
        "no event lost, none twice"
    );
    assert_eq!(
        inserted,
        events.len(),
        "each event inserted by exactly one importer"
    );
    assert_eq!(shared.pending_count().unwrap(), 0);
    assert_eq!(shared.clock().unwrap(), clean.clock().unwrap());
    assert_eq!(shared.clock().unwrap(), lite.clock().unwrap());
    assert_eq!(
        shared.view_digests().unwrap(),
        clean.view_digests().unwrap()
    );
    assert_eq!(shared.view_digests().unwrap(), lite.view_digests().unwrap());
    assert!(shared.forks().unwrap().is_empty());
    let mut withheld = 0;
    shared
        .for_each_event(None, &mut |e| {
            withheld += usize::from(e.unwrap().payload.is_none());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(withheld, 0, "every withheld payload was filled");
    assert!(shared.check_views().unwrap().ok());
    assert_same_reads(&lite, &shared, &all);
}
