//! The SQLite backend against the conformance suite of `rhizome-store-tests` (one `#[test]`
//! per case), then what only SQLite has: its file, `user_version`, its migrations and the
//! read-only open.
#![allow(clippy::unwrap_used)]

use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::privacy::Audience;
use rhizome_core::sealed::plain;
use rhizome_core::{SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_store::prelude::*;
use rhizome_store::{Identity, LocalAuthor, Outcome, StoreError};
use rhizome_store_sqlite::SqliteStore;
use rhizome_store_tests::Fresh;
use serde_json::json;

/// A fresh SQLite store in a temporary directory (removed after the store is closed).
fn sqlite() -> Fresh {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("rhizome.db")).expect("opening a new store");
    Fresh {
        store: Box::new(store),
        guard: Box::new(dir),
    }
}

rhizome_store_tests::conformance!(sqlite);

fn post(
    sk: &SecretKey,
    seq: u64,
    prev: Option<rhizome_core::Hash>,
    payload: serde_json::Value,
) -> VerifiedEvent {
    sign(
        sk,
        Seq::new(seq).unwrap(),
        prev,
        EventType::new("POST").unwrap(),
        Timestamp::new(1000 + seq).unwrap(),
        Payload::new(payload).unwrap(),
    )
    .unwrap()
}

#[test]
fn garbage_file_is_reported_as_corrupt_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rhizome.db");
    let garbage = b"this is not a database, just some bytes on a stick".repeat(100);
    std::fs::write(&path, &garbage).unwrap();
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rhizome.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).err().unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 999, .. }),
        "{err}"
    );
    let err = SqliteStore::open_read_only(&path).err().unwrap();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 999, .. }),
        "read-only open: {err}"
    );
}

/// A store from before schema 8 gets its profile view on open, filled from the log, and the
/// index of reshares by target (schema 10).
#[test]
fn schema_8_migration_fills_the_profile_view() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rhizome.db");
    let key = SecretKey::from_seed(&[6; 32]);
    let profile = sign(
        &key,
        Seq::FIRST,
        None,
        EventType::new("PROFILE").unwrap(),
        Timestamp::new(1_001).unwrap(),
        Payload::new(json!({"name": "Old"})).unwrap(),
    )
    .unwrap();
    {
        let mut store = SqliteStore::open(&path).unwrap();
        store.append(&[profile]).unwrap();
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        // Back to schema 7: migrations 8 to 10 undone.
        conn.execute_batch(
            "DROP TABLE v_profiles; ALTER TABLE quarantine DROP COLUMN incomplete;
             DROP INDEX v_timeline_target; PRAGMA user_version = 7;",
        )
        .unwrap();
    }
    let mut store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        rhizome_store_sqlite::SCHEMA_VERSION
    );
    assert_eq!(
        store.profile(&key.public_key()).unwrap().unwrap().name,
        "Old"
    );
    assert!(store.check_views().is_ok_and(|c| c.ok()));
    drop(store);
    // Migration 10 made the index that finds reshares by target, and the query uses it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT hash, author, ts FROM v_timeline
             WHERE target = x'00' AND kind = 'RESHARE' ORDER BY ts, hash",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|p| p.contains("v_timeline_target")),
        "reshares by target scan the timeline: {plan:?}"
    );
}

/// A store from before schema 6: the migration rebuilds the index of limited payloads from the
/// stored payloads.
#[test]
fn schema_6_migration_replays_the_limited_index() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rhizome.db");
    let author = SecretKey::from_seed(&[1; 32]);
    let member = SecretKey::from_seed(&[2; 32]).public_key();
    let public = post(&author, 1, None, json!({"text": "hello"}));
    let limited = post(
        &author,
        2,
        Some(public.hash),
        json!({"text": "secret", "audience": {"circle": "c", "members": [member]}}),
    );
    let broken = post(
        &author,
        3,
        Some(limited.hash),
        json!({"text": "odd", "audience": {"members": "everyone"}}),
    );
    let a = author.public_key();
    let expect = vec![
        (2, Audience::Limited(vec![member])),
        // Malformed: limited to the author alone, never public.
        (3, Audience::Limited(vec![])),
    ];
    {
        let mut store = SqliteStore::open(&path).unwrap();
        assert_eq!(
            store.append(&[public, limited, broken]).unwrap(),
            vec![Outcome::Inserted; 3]
        );
        assert_eq!(store.limited(&a, 1, 10).unwrap(), expect);
    }
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE limited; DROP TABLE local_hosts; DROP TABLE peer_hosts;
             ALTER TABLE peers DROP COLUMN age_recipient;
             ALTER TABLE quarantine DROP COLUMN blob; DROP TABLE blocked_instances;
             DROP TABLE v_profiles; ALTER TABLE quarantine DROP COLUMN incomplete;
             DROP INDEX v_timeline_target; PRAGMA user_version = 5;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        rhizome_store_sqlite::SCHEMA_VERSION
    );
    assert_eq!(store.limited(&a, 1, 10).unwrap(), expect);
}

/// A store opened read-only (a stick mounted read-only) reads everything and refuses writes
/// with `ReadOnly`, leaving the file as it was.
#[test]
fn read_only_open_reads_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rhizome.db");
    let author = SecretKey::from_seed(&[1; 32]);
    let first = post(&author, 1, None, json!({"text": "one"}));
    let second = post(&author, 2, Some(first.hash), json!({"text": "two"}));
    {
        let mut store = SqliteStore::open(&path).unwrap();
        let inst = SecretKey::from_seed(&[9; 32]);
        store
            .init(
                &Identity {
                    name: "stick".into(),
                    public_key: inst.public_key(),
                    secret: plain(&inst),
                    created_at: 1,
                },
                &LocalAuthor {
                    name: "ana".into(),
                    public_key: author.public_key(),
                    secret: plain(&author),
                    is_default: true,
                },
            )
            .unwrap();
        store.append(std::slice::from_ref(&first)).unwrap();
    }
    let bytes = std::fs::read(&path).unwrap();

    let mut store = SqliteStore::open_read_only(&path).unwrap();
    assert_eq!(store.identity().unwrap().name, "stick");
    assert_eq!(store.get(&first.hash).unwrap().as_ref(), Some(&*first));
    assert_eq!(store.clock().unwrap().get(&author.public_key()), 1);
    let err = store.append(&[second]).err().unwrap();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "append: {err}");
    let err = store.follow(&author.public_key()).err().unwrap();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "follow: {err}");
    drop(store);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file changed");

    // An empty file is no instance, and stays empty.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let err = SqliteStore::open_existing(&empty).err().unwrap();
    assert!(matches!(err, StoreError::NotInitialized), "{err}");
    assert_eq!(std::fs::read(&empty).unwrap(), b"");
}
