//! The PostgreSQL store does what the SQLite store does, read for read, digest for digest,
//! and what only a server store has to do (schemas, migrations, blobs in the database).
//! Each test runs in a schema of its own on the server named by `RHIZOME_TEST_POSTGRES`.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rhizome_core::privacy::HostDeclaration;
use rhizome_core::sealed::plain;
use rhizome_core::{Clock, Hash, InstanceId, Seq};
use rhizome_store::prelude::*;
use rhizome_store::{Direction, Held, Identity, LocalAuthor, Outcome, StoreError, Trust};
use rhizome_store_postgres::{PgStore, SCHEMA_VERSION, SEQ_LIMIT};
use rhizome_store_sqlite::SqliteStore;
use serde_json::json;
use std::io::{Read, Write};

fn sqlite() -> (SqliteStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        SqliteStore::open(&dir.path().join("rhizome.db")).unwrap(),
        dir,
    )
}

/// The same batches into SQLite and PostgreSQL give the same outcomes, the same promotions
/// and then the same answer to every read, including byte-identical view digests; the same
/// holds after payloads fill in, after following and blocking, after a rebuild and a purge.
#[test]
fn same_batches_same_outcomes_and_reads_as_sqlite() {
    let Some(url) = server("same_batches_same_outcomes_and_reads_as_sqlite") else {
        return;
    };
    let mut pg = scratch(&url);
    let (mut lite, _dir) = sqlite();
    let (events, whole) = rich(5, 600, 7);
    // Fork evidence: another event at a held position, and one with a wrong prev.
    let eq = key(40);
    let forged = signed(&eq, 1, None, "POST", 1, json!({"text": "the other story"}));
    let wrong_prev = signed(
        &eq,
        2,
        Some(Hash::digest(b"x")),
        "POST",
        2,
        json!({"text": "?"}),
    );
    let carrier = InstanceId::of(&key(90).public_key());

    // Shuffled batches: events arrive before their predecessors, are parked and promoted.
    let mut batches: Vec<Vec<_>> = events.chunks(37).map(<[_]>::to_vec).collect();
    Rng(3).shuffle(&mut batches);
    batches.push(whole.clone());
    batches.push(vec![forged, wrong_prev]);
    batches.push(events[..50].to_vec());
    let (mut promoted, mut filled) = (0, 0);
    for batch in &batches {
        let a = lite.import_batch(batch, Some(&carrier)).unwrap();
        let b = pg.import_batch(batch, Some(&carrier)).unwrap();
        assert_eq!(a.outcomes, b.outcomes);
        assert_eq!(a.promoted, b.promoted);
        promoted += b.promoted;
        filled += b.outcomes.iter().filter(|o| **o == Outcome::Filled).count();
    }
    assert!(
        promoted > 100 && filled > 10,
        "{promoted} promoted, {filled} filled"
    );
    for d in pg.view_digests().unwrap() {
        assert!(
            d.rows > 0,
            "{} is empty: the test would not compare it",
            d.table
        );
    }
    assert_eq!(pg.pending_count().unwrap(), 0);
    assert!(pg.forks().unwrap().len() >= 2);
    assert!(pg.skipped().unwrap().iter().any(|s| s.reason == "schema"));
    assert!(pg
        .tag_counts()
        .unwrap()
        .iter()
        .any(|(t, _)| t == "nul\u{0}tag"));
    let about = |s: &dyn Store| {
        (40..45)
            .filter_map(|i| s.profile(&key(i).public_key()).unwrap())
            .filter(|p| p.about.as_deref() == Some("a\u{0}b"))
            .count()
    };
    assert!(
        about(&pg) > 0 && about(&pg) == about(&lite),
        "profiles with U+0000"
    );
    let all: Vec<_> = events.iter().chain(&whole).cloned().collect();
    assert_same_reads(&lite, &pg, &all);

    for s in [&mut lite as &mut dyn Store, &mut pg] {
        for i in 40..45 {
            assert!(s.follow(&key(i).public_key()).unwrap());
        }
        assert!(!s.follow(&key(41).public_key()).unwrap());
        assert!(s.unfollow(&key(44).public_key()).unwrap());
        assert!(s.block_author(&key(42).public_key()).unwrap());
    }
    assert!(!pg.timeline(None, None, 10).unwrap().is_empty());
    assert_same_reads(&lite, &pg, &all);

    let check = pg.check_views().unwrap();
    assert!(check.ok(), "{:?}", check.differences);
    assert_eq!(check.live, lite.check_views().unwrap().live);
    let before = pg.view_digests().unwrap();
    assert_eq!(pg.rebuild_views().unwrap(), lite.rebuild_views().unwrap());
    assert_eq!(pg.view_digests().unwrap(), before);
    assert!(
        pg.check_views().unwrap().ok(),
        "check_views twice on one connection"
    );

    let gone = key(43).public_key();
    assert_eq!(
        lite.purge_author(&gone).unwrap(),
        pg.purge_author(&gone).unwrap()
    );
    assert_eq!(pg.head(&gone).unwrap(), None);
    assert_same_reads(&lite, &pg, &all);
    // A purged feed takes its events again from seq 1.
    let again: Vec<_> = all
        .iter()
        .filter(|e| e.header.author == gone)
        .cloned()
        .collect();
    assert_eq!(
        lite.import_batch(&again, None).unwrap().outcomes,
        pg.import_batch(&again, None).unwrap().outcomes
    );
    assert_same_reads(&lite, &pg, &all);
}

/// A live view that differs from the log is reported, with the row, on the side that has it.
#[test]
fn check_views_reports_a_tampered_row() {
    let Some(url) = server("check_views_reports_a_tampered_row") else {
        return;
    };
    let mut pg = scratch(&url);
    pg.append(&chain(&key(1), 3)).unwrap();
    let schema = pg.schema().unwrap();
    admin(&url)
        .batch_execute(&format!("DELETE FROM {schema}.v_timeline WHERE seq = 2"))
        .unwrap();
    let check = pg.check_views().unwrap();
    assert!(!check.ok());
    assert_eq!(check.differences.len(), 1, "{:?}", check.differences);
    assert_eq!(check.differences[0].0, "v_timeline");
    assert_eq!(check.differences[0].1, "rebuilt");
    assert_ne!(check.live, check.rebuilt);
    pg.rebuild_views().unwrap();
    assert!(pg.check_views().unwrap().ok());
}

#[test]
fn append_reports_each_outcome_and_keeps_legacy_ids_atomically() {
    let Some(url) = server("append_reports_each_outcome_and_keeps_legacy_ids_atomically") else {
        return;
    };
    let mut pg = scratch(&url);
    let sk = key(1);
    let evs = chain(&sk, 5);
    assert_eq!(pg.append(&evs[..3]).unwrap(), vec![Outcome::Inserted; 3]);
    assert_eq!(
        pg.append(&[evs[1].clone(), evs[4].clone(), evs[3].clone()])
            .unwrap(),
        vec![
            Outcome::Duplicate,
            Outcome::Gap { head: 3 },
            Outcome::Inserted
        ]
    );
    // Append does not park: the gap is still a gap, nothing pending.
    assert_eq!(pg.pending_count().unwrap(), 0);
    assert_eq!(
        pg.head(&sk.public_key()).unwrap(),
        Some((Seq::new(4).unwrap(), evs[3].hash))
    );
    let forged = signed(
        &sk,
        2,
        Some(evs[0].hash),
        "POST",
        5,
        json!({"text": "other"}),
    );
    assert_eq!(
        pg.append(&[forged]).unwrap(),
        vec![Outcome::Fork {
            existing: evs[1].hash
        }]
    );
    let wrong = signed(
        &sk,
        5,
        Some(Hash::digest(b"x")),
        "POST",
        5,
        json!({"text": "x"}),
    );
    assert_eq!(
        pg.append(&[wrong]).unwrap(),
        vec![Outcome::PrevMismatch {
            head_hash: Some(evs[3].hash)
        }]
    );
    assert!(
        pg.forks().unwrap().is_empty(),
        "append keeps no fork evidence"
    );

    // Legacy: kept with its id only when inserted.
    assert_eq!(
        pg.append_legacy(&evs[4], "post:9").unwrap(),
        Outcome::Inserted
    );
    assert_eq!(
        pg.legacy("post:9").unwrap(),
        Some(evs[4].hash.as_bytes().to_vec())
    );
    assert_eq!(
        pg.append_legacy(&evs[4], "post:10").unwrap(),
        Outcome::Duplicate
    );
    assert_eq!(pg.legacy("post:10").unwrap(), None);
    // A filled payload through append_legacy is rolled back, as in SQLite.
    let b = key(2);
    let bev = chain(&b, 1).pop().unwrap();
    pg.append(&[bev.without_payload()]).unwrap();
    assert_eq!(pg.append_legacy(&bev, "x").unwrap(), Outcome::Filled);
    assert_eq!(pg.get(&bev.hash).unwrap().unwrap().payload, None);
    assert_eq!(pg.legacy("x").unwrap(), None);
    assert_eq!(
        pg.append(std::slice::from_ref(&bev)).unwrap(),
        vec![Outcome::Filled]
    );
    assert_eq!(
        pg.append(std::slice::from_ref(&bev)).unwrap(),
        vec![Outcome::Duplicate]
    );

    let who = key(3);
    pg.add_author_legacy(
        &LocalAuthor {
            name: "legacy \u{0} user".into(),
            public_key: who.public_key(),
            secret: plain(&who),
            is_default: false,
        },
        "user:1",
    )
    .unwrap();
    assert_eq!(
        pg.legacy("user:1").unwrap(),
        Some(who.public_key().as_bytes().to_vec())
    );
    assert_eq!(pg.authors().unwrap()[0].name, "legacy \u{0} user");
    assert_eq!(pg.max_seq(), SEQ_LIMIT);
    assert!(pg.size_on_disk().unwrap() > 0);
}

/// Seqs up to 2^53 - 1 are stored (parked here, as their predecessors are missing).
#[test]
fn seqs_up_to_two_to_the_53_are_kept() {
    let Some(url) = server("seqs_up_to_two_to_the_53_are_kept") else {
        return;
    };
    let mut pg = scratch(&url);
    let sk = key(5);
    let far = signed(
        &sk,
        SEQ_LIMIT,
        Some(Hash::digest(b"p")),
        "POST",
        1,
        json!({"text": "far"}),
    );
    let r = pg.import_batch(std::slice::from_ref(&far), None).unwrap();
    assert_eq!(r.outcomes, vec![Outcome::Gap { head: 0 }]);
    assert_eq!(pg.pending_count().unwrap(), 1);
    assert_eq!(
        pg.stored_hashes(&sk.public_key(), 0, u64::MAX).unwrap(),
        vec![]
    );
}

#[test]
fn identity_authors_and_host_declarations() {
    let Some(url) = server("identity_authors_and_host_declarations") else {
        return;
    };
    let mut pg = scratch(&url);
    assert!(matches!(pg.identity(), Err(StoreError::NotInitialized)));
    let inst = key(4);
    let me = key(5);
    let id = Identity {
        name: "hub".into(),
        public_key: inst.public_key(),
        secret: plain(&inst),
        created_at: 1,
    };
    let first = LocalAuthor {
        name: "ana".into(),
        public_key: me.public_key(),
        secret: plain(&me),
        is_default: true,
    };
    pg.init(&id, &first).unwrap();
    assert!(matches!(
        pg.init(&id, &first),
        Err(StoreError::AlreadyInitialized)
    ));
    assert!(matches!(
        pg.add_author(&first),
        Err(StoreError::AuthorExists(_))
    ));
    let bo = key(6);
    pg.add_author(&LocalAuthor {
        name: "bo".into(),
        public_key: bo.public_key(),
        secret: plain(&bo),
        is_default: false,
    })
    .unwrap();
    assert_eq!(pg.author(None).unwrap().name, "ana");
    assert_eq!(pg.author(Some("bo")).unwrap().public_key, bo.public_key());
    assert_eq!(pg.identity().unwrap().name, "hub");
    assert_eq!(pg.follows().unwrap().len(), 2, "local authors are followed");
    let iid = InstanceId::of(&inst.public_key());
    let d1 = HostDeclaration::sign(&me, iid, 10);
    let d2 = HostDeclaration::sign(&me, iid, 20);
    pg.add_local_host(&d1).unwrap();
    pg.add_local_host(&d2).unwrap();
    let hosts = pg.local_hosts().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].issued_at, 20);
    assert_eq!(pg.schema_version().unwrap(), SCHEMA_VERSION);
}

/// `sent` is merged, `acked` replaced, the newest host declaration wins, trust is kept: the
/// same as SQLite, call for call.
#[test]
fn peers_as_sqlite() {
    let Some(url) = server("peers_as_sqlite") else {
        return;
    };
    let mut pg = scratch(&url);
    let (mut lite, _dir) = sqlite();
    let peer = key(7);
    let pid = InstanceId::of(&peer.public_key());
    let (a, b) = (key(8).public_key(), key(9).public_key());
    let clock = |pairs: &[(rhizome_core::PublicKey, u64)]| {
        let mut c = Clock::new();
        for (k, s) in pairs {
            c.set(*k, Seq::new(*s).unwrap());
        }
        c
    };
    for s in [&mut lite as &mut dyn Store, &mut pg] {
        assert!(s.peer(&pid).unwrap().is_none());
        assert!(!s.set_trust(&pid, Trust::Trusted).unwrap());
        s.record_exchange(
            &peer.public_key(),
            "ship\u{0}1",
            Direction::Export,
            &clock(&[(a, 5)]),
            10,
            "usb",
        )
        .unwrap();
        s.record_exchange(
            &peer.public_key(),
            "ship",
            Direction::Export,
            &clock(&[(b, 2)]),
            11,
            "usb",
        )
        .unwrap();
        s.record_exchange(
            &peer.public_key(),
            "ship",
            Direction::Import,
            &clock(&[(a, 9)]),
            12,
            "usb",
        )
        .unwrap();
        s.record_exchange(
            &peer.public_key(),
            "ship",
            Direction::Import,
            &clock(&[(b, 1)]),
            13,
            "https",
        )
        .unwrap();
        assert!(s.set_trust(&pid, Trust::Trusted).unwrap());
        let hosts = [
            HostDeclaration::sign(&key(8), pid, 30),
            HostDeclaration::sign(&key(8), pid, 20),
            HostDeclaration::sign(&key(9), pid, 5),
        ];
        s.record_publications(&pid, Some("age1example"), &hosts)
            .unwrap();
        s.add_peer(&key(10).public_key(), "zeta", Trust::Blocked)
            .unwrap();
        assert!(s.block_author(&a).unwrap());
        assert!(!s.block_author(&a).unwrap());
        assert!(s.block_author(&b).unwrap());
        assert!(s.unblock_author(&b).unwrap());
        assert!(!s.unblock_author(&b).unwrap());
    }
    let show = |s: &dyn Store| serde_json::to_string(&s.peers().unwrap()).unwrap();
    assert_eq!(show(&pg), show(&lite));
    let p = pg.peer(&pid).unwrap().unwrap();
    assert_eq!((p.sent.get(&a), p.sent.get(&b)), (5, 2), "sent is merged");
    assert_eq!(
        (p.acked.get(&a), p.acked.get(&b)),
        (0, 1),
        "acked is replaced"
    );
    assert_eq!(p.trust, Trust::Trusted);
    assert_eq!(pg.peer_hosts(&pid).unwrap(), lite.peer_hosts(&pid).unwrap());
    assert_eq!(
        pg.blocked_authors().unwrap(),
        lite.blocked_authors().unwrap()
    );
    let schema = pg.schema().unwrap();
    let issued: i64 = admin(&url)
        .query_one(
            &format!("SELECT issued_at FROM {schema}.peer_hosts WHERE author = $1"),
            &[&&a.as_bytes()[..]],
        )
        .unwrap()
        .get(0);
    assert_eq!(issued, 30, "the newest declaration wins");
}

/// Held bundles live in the database, in chunks, whole or not at all.
#[test]
fn blobs_are_stored_in_chunks_whole_or_not_at_all() {
    let Some(url) = server("blobs_are_stored_in_chunks_whole_or_not_at_all") else {
        return;
    };
    let mut pg = scratch(&url);
    let schema = pg.schema().unwrap();
    let mut db = admin(&url);
    let count = |db: &mut postgres::Client, t: &str| -> i64 {
        db.query_one(&format!("SELECT count(*) FROM {schema}.{t}"), &[])
            .unwrap()
            .get(0)
    };
    let bytes: Vec<u8> = (0..3_500_000u32).map(|i| (i % 251) as u8).collect();
    let mut sink = pg.blob_sink().unwrap();
    for part in bytes.chunks(70_001) {
        sink.write_all(part).unwrap();
    }
    let id = sink.finish().unwrap();
    assert_eq!(id.0, Hash::digest(&bytes));
    assert_eq!(count(&mut db, "blob_chunks"), 4, "1 MiB chunks");
    let mut back = Vec::new();
    pg.open_blob(&id).unwrap().read_to_end(&mut back).unwrap();
    assert!(back == bytes);
    // The same bytes again: one copy.
    let mut sink = pg.blob_sink().unwrap();
    sink.write_all(&bytes).unwrap();
    assert_eq!(sink.finish().unwrap(), id);
    assert_eq!(count(&mut db, "blob_chunks"), 4);
    assert_eq!(count(&mut db, "blobs"), 1);
    // Unfinished: nothing stays.
    let mut sink = pg.blob_sink().unwrap();
    sink.write_all(&[7u8; 2_500_000]).unwrap();
    drop(sink);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(count(&mut db, "blob_chunks"), 4);
    // Another process (connection) reads it too.
    let other = PgStore::create(&with_schema(&url, &schema)).unwrap();
    let mut back = Vec::new();
    other
        .open_blob(&id)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back.len(), bytes.len());
    // Damage is found.
    db.batch_execute(&format!(
        "UPDATE {schema}.blob_chunks SET data = 'x'::bytea WHERE n = 1"
    ))
    .unwrap();
    let err = other
        .open_blob(&id)
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    pg.delete_blob(&id).unwrap();
    pg.delete_blob(&id).unwrap();
    assert_eq!(count(&mut db, "blob_chunks"), 0);
    assert!(matches!(
        pg.open_blob(&id).err().unwrap(),
        StoreError::Blob { .. }
    ));

    let held = Held {
        id: "0123456789abcdef".into(),
        instance_id: InstanceId::of(&key(7).public_key()),
        public_key: key(7).public_key(),
        name: "ship \u{0}".into(),
        events: 10,
        feeds: 2,
        invalid: 1,
        arrived_at: 99,
        blob: Some(id),
        incomplete: Some("trailer invalid: \u{0}".into()),
    };
    assert!(pg.hold(&held).unwrap());
    assert!(!pg.hold(&held).unwrap());
    let list = pg.held().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, held.name);
    assert_eq!(list[0].blob, Some(id));
    assert_eq!(list[0].incomplete, held.incomplete);
    assert!(pg.release(&held.id).unwrap());
    assert!(!pg.release(&held.id).unwrap());
}

/// A schema written by a newer Rhizome is refused, by `create` and `connect` alike.
#[test]
fn newer_schema_is_refused() {
    let Some(url) = server("newer_schema_is_refused") else {
        return;
    };
    let pg = scratch(&url);
    let schema = pg.schema().unwrap();
    admin(&url)
        .batch_execute(&format!("UPDATE {schema}.rhizome_schema SET version = 99"))
        .unwrap();
    let at = with_schema(&url, &schema);
    for err in [
        PgStore::create(&at).err().unwrap(),
        PgStore::connect(&at).err().unwrap(),
    ] {
        assert!(
            matches!(err, StoreError::NewerSchema { found: 99, supported } if supported == SCHEMA_VERSION),
            "{err}"
        );
    }
}

/// `connect` writes nothing to a schema without a store, and needs an instance; `create`
/// makes the tables; processes creating at once migrate once.
#[test]
fn connect_needs_an_instance_and_create_migrates_once() {
    let Some(url) = server("connect_needs_an_instance_and_create_migrates_once") else {
        return;
    };
    // An empty schema of our own (the scratch store's, emptied).
    let pg = scratch(&url);
    let schema = pg.schema().unwrap();
    let mut db = admin(&url);
    db.batch_execute(&format!(
        "DROP SCHEMA {schema} CASCADE; CREATE SCHEMA {schema}"
    ))
    .unwrap();
    let at = with_schema(&url, &schema);
    let tables = |db: &mut postgres::Client| -> i64 {
        db.query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1",
            &[&schema],
        )
        .unwrap()
        .get(0)
    };
    assert!(matches!(
        PgStore::connect(&at).err().unwrap(),
        StoreError::NotInitialized
    ));
    assert_eq!(tables(&mut db), 0, "connect wrote nothing");
    let racers: Vec<_> = (0..4)
        .map(|_| {
            let at = at.clone();
            std::thread::spawn(move || PgStore::create(&at).map(|s| s.schema_version().unwrap()))
        })
        .collect();
    for r in racers {
        assert_eq!(r.join().unwrap().unwrap(), SCHEMA_VERSION);
    }
    assert!(tables(&mut db) > 10);
    assert!(matches!(
        PgStore::connect(&at).err().unwrap(),
        StoreError::NotInitialized
    ));
    let mut s = PgStore::create(&at).unwrap();
    s.init(
        &Identity {
            name: "hub".into(),
            public_key: key(1).public_key(),
            secret: plain(&key(1)),
            created_at: 1,
        },
        &LocalAuthor {
            name: "ana".into(),
            public_key: key(2).public_key(),
            secret: plain(&key(2)),
            is_default: true,
        },
    )
    .unwrap();
    assert_eq!(
        PgStore::connect(&at).unwrap().identity().unwrap().name,
        "hub"
    );
    // A search path naming no existing schema is a clear error.
    let err = PgStore::create(&with_schema(&url, "rhizome_no_such_schema"))
        .err()
        .unwrap();
    assert!(
        matches!(&err, StoreError::Unavailable { detail, .. } if detail.contains("search path")),
        "{err}"
    );
}

/// The store's readers see what the writer committed; a callback that calls the store again
/// gets an error, not a panic.
#[test]
fn readers_and_reentrant_calls() {
    let Some(url) = server("readers_and_reentrant_calls") else {
        return;
    };
    let mut pg = scratch(&url);
    let evs = chain(&key(1), 1200);
    pg.append(&evs).unwrap();
    let reader = pg.reader().unwrap();
    assert_eq!(reader.stats().unwrap().events, 1200);
    let mut n = 0;
    pg.for_each_event(None, &mut |e| {
        e.unwrap();
        n += 1;
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, 1200, "every page visited");
    let mut inner = None;
    let pgr = &pg;
    pgr.write_range(&key(1).public_key(), 1, 1, &|_| false, &mut |_| {
        inner = Some(pgr.stats().map(|s| s.events));
        Ok(())
    })
    .unwrap();
    assert_eq!(
        inner.unwrap().unwrap(),
        1200,
        "write_range releases the connection"
    );
}
