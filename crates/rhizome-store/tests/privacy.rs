//! The store's side of circle privacy: the index of limited payloads (kept on insert, on a
//! payload filled in later, and rebuilt by the schema-6 migration), and payload filling.
#![allow(clippy::unwrap_used)]

use rhizome_core::event::{sign, EventType, Payload};
use rhizome_core::privacy::Audience;
use rhizome_core::{SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_store::{Outcome, SqliteStore, Store};
use serde_json::json;

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
fn limited_payloads_are_indexed_filled_and_migrated() {
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
    {
        let mut store = SqliteStore::open(&path).unwrap();
        // The limited event arrives withheld first: nothing to index yet.
        let withheld = limited.without_payload();
        assert_eq!(
            store.append(&[public.clone(), withheld]).unwrap(),
            vec![Outcome::Inserted; 2]
        );
        assert_eq!(store.limited(&a, 1, 10).unwrap(), vec![]);
        // Its payload arrives: filled, indexed; a second copy is a plain duplicate.
        let out = store
            .import_batch(&[limited.clone(), broken.clone()], None)
            .unwrap();
        assert_eq!(out.outcomes, vec![Outcome::Filled, Outcome::Inserted]);
        let out = store
            .import_batch(std::slice::from_ref(&limited), None)
            .unwrap();
        assert_eq!(out.outcomes, vec![Outcome::Duplicate]);
        let expect = vec![
            (2, Audience::Limited(vec![member])),
            // Malformed: limited to the author alone, never public.
            (3, Audience::Limited(vec![])),
        ];
        assert_eq!(store.limited(&a, 1, 10).unwrap(), expect);
        assert!(store.check_views().unwrap().ok());
    }
    // A store from before schema 6: the migration rebuilds the index from the payloads.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE v_profiles; DROP TABLE limited; DROP TABLE local_hosts; DROP TABLE peer_hosts;
             ALTER TABLE peers DROP COLUMN age_recipient; PRAGMA user_version = 5;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.limited(&a, 1, 10).unwrap(),
        vec![
            (2, Audience::Limited(vec![member])),
            (3, Audience::Limited(vec![])),
        ]
    );
}
