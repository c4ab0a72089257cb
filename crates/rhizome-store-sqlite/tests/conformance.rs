//! The conformance suite every `Store` backend must pass. Each test takes a fresh store from
//! `backends()`; a PostgreSQL backend joins the list when it exists.
#![allow(clippy::unwrap_used)]

use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::sealed::plain;
use rhizome_core::{Hash, SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_store::{Identity, LocalAuthor, Outcome, Store, StoreError};
use rhizome_store_sqlite::SqliteStore;
use serde_json::json;
use std::ops::ControlFlow;

fn backends() -> Vec<(Box<dyn Store>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("rhizome.db")).unwrap();
    vec![(Box::new(store), dir)]
}

fn chain(sk: &SecretKey, n: u64) -> Vec<VerifiedEvent> {
    let mut prev = None;
    (1..=n)
        .map(|i| {
            let ev = sign(
                sk,
                Seq::new(i).unwrap(),
                prev,
                EventType::new("POST").unwrap(),
                Timestamp::new(1000 + i).unwrap(),
                Payload::new(json!({ "text": format!("post {i}") })).unwrap(),
            )
            .unwrap();
            prev = Some(ev.hash);
            ev
        })
        .collect()
}

#[test]
fn append_extends_feeds_and_reports_each_outcome() {
    for (mut store, _dir) in backends() {
        let sk = SecretKey::from_seed(&[1; 32]);
        let evs = chain(&sk, 5);
        assert_eq!(store.append(&evs[..3]).unwrap(), vec![Outcome::Inserted; 3]);
        // Duplicate, gap, then the right next one, in one call.
        let out = store
            .append(&[evs[1].clone(), evs[4].clone(), evs[3].clone()])
            .unwrap();
        assert_eq!(
            out,
            vec![
                Outcome::Duplicate,
                Outcome::Gap { head: 3 },
                Outcome::Inserted
            ]
        );
        assert_eq!(
            store.head(&sk.public_key()).unwrap(),
            Some((Seq::new(4).unwrap(), evs[3].hash))
        );

        // A different event at seq 2 is a fork; one at seq 5 with a wrong prev is refused.
        let other = chain(&sk, 2).pop().unwrap();
        let forged = sign(
            &sk,
            Seq::new(2).unwrap(),
            Some(evs[0].hash),
            EventType::new("POST").unwrap(),
            Timestamp::new(5).unwrap(),
            Payload::new(json!({"text": "equivocation"})).unwrap(),
        )
        .unwrap();
        assert_eq!(other, evs[1]);
        assert_eq!(
            store.append(&[forged]).unwrap(),
            vec![Outcome::Fork {
                existing: evs[1].hash
            }]
        );
        let wrong_prev = sign(
            &sk,
            Seq::new(5).unwrap(),
            Some(Hash::digest(b"elsewhere")),
            EventType::new("POST").unwrap(),
            Timestamp::new(5).unwrap(),
            Payload::new(json!({"text": "x"})).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            store.append(&[wrong_prev]).unwrap()[0],
            Outcome::PrevMismatch { .. }
        ));
        assert_eq!(store.stats().unwrap().events, 4);
    }
}

#[test]
fn stored_events_read_back_identically_and_verify() {
    for (mut store, _dir) in backends() {
        let a = SecretKey::from_seed(&[2; 32]);
        let b = SecretKey::from_seed(&[3; 32]);
        let mut all = chain(&a, 3);
        all.extend(chain(&b, 2));
        all.push(chain(&b, 3).pop().unwrap().without_payload());
        store.append(&all).unwrap();
        for ev in &all {
            let got = store.get(&ev.hash).unwrap().unwrap();
            assert_eq!(&got, &**ev);
            assert_eq!(got.to_line(), ev.to_line());
            got.verify().unwrap();
        }
        assert_eq!(store.get(&Hash::digest(b"none")).unwrap(), None);
        let mut seen = Vec::new();
        store
            .for_each_event(Some(&b.public_key()), &mut |e| {
                seen.push(e.unwrap().header.seq.get());
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(seen, vec![1, 2, 3]);
        let clock = store.clock().unwrap();
        assert_eq!(
            (clock.get(&a.public_key()), clock.get(&b.public_key())),
            (3, 3)
        );
        let prefix = &all[0].hash.to_hex()[..10];
        assert_eq!(store.find_by_prefix(prefix, 5).unwrap(), vec![all[0].hash]);
        assert_eq!(store.find_by_prefix("zz", 5).unwrap(), vec![]);
    }
}

#[test]
fn identity_and_authors() {
    for (mut store, _dir) in backends() {
        assert!(matches!(store.identity(), Err(StoreError::NotInitialized)));
        let inst = SecretKey::from_seed(&[4; 32]);
        let me = SecretKey::from_seed(&[5; 32]);
        let id = Identity {
            name: "school".into(),
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
        store.init(&id, &first).unwrap();
        assert!(matches!(
            store.init(&id, &first),
            Err(StoreError::AlreadyInitialized)
        ));
        assert!(matches!(
            store.add_author(&first),
            Err(StoreError::AuthorExists(_))
        ));
        let other = SecretKey::from_seed(&[6; 32]);
        store
            .add_author(&LocalAuthor {
                name: "bo".into(),
                public_key: other.public_key(),
                secret: plain(&other),
                is_default: false,
            })
            .unwrap();
        assert_eq!(store.author(None).unwrap().name, "ana");
        assert_eq!(
            store.author(Some("bo")).unwrap().public_key,
            other.public_key()
        );
        assert!(matches!(
            store.author(Some("cy")),
            Err(StoreError::UnknownAuthor(_))
        ));
        assert_eq!(store.identity().unwrap().name, "school");
        assert_eq!(store.authors().unwrap().len(), 2);
    }
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
}
