//! Faults: an unreachable server, refused credentials, and a connection killed in the middle
//! of an import give `StoreError::Unavailable` with a clear message and never a password;
//! an interrupted import leaves only whole batches, and a rerun ends where one clean import
//! does.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rhizome_core::bundle::Exporter;
use rhizome_core::{Clock, InstanceId};
use rhizome_store::prelude::*;
use rhizome_store::StoreError;
use rhizome_store_postgres::PgStore;
use rhizome_store_sqlite::SqliteStore;
use rhizome_sync::{import_bundle, ImportError, ImportOptions, Status};
use std::str::FromStr;
use std::time::{Duration, Instant};

fn unavailable(err: StoreError, password: &str) -> (String, String) {
    let text = err.to_string();
    assert!(!text.contains(password), "the password shows: {text}");
    assert!(
        !format!("{err:?}").contains(password),
        "the password shows: {err:?}"
    );
    match err {
        StoreError::Unavailable { location, detail } => (location, detail),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Needs no server: nothing listens on port 1.
#[test]
fn unreachable_server_is_unavailable_without_the_password() {
    let t = Instant::now();
    let err = PgStore::connect("postgres://hub:sekret-pw@127.0.0.1:1/rhizome")
        .err()
        .unwrap();
    let (location, detail) = unavailable(err, "sekret-pw");
    assert_eq!(location, "postgres://hub@127.0.0.1:1/rhizome");
    assert!(detail.contains("error connecting to server: "), "{detail}");
    assert!(detail.to_lowercase().contains("refused"), "{detail}");
    assert!(t.elapsed() < Duration::from_secs(10));
    // A malformed URL says so, without its password either.
    let err = PgStore::create("postgres://hub:sekret-pw@127.0.0.1:notaport/x")
        .err()
        .unwrap();
    let (location, detail) = unavailable(err, "sekret-pw");
    assert!(detail.contains("malformed database URL"), "{detail}");
    assert!(
        location.starts_with("postgres://hub@127.0.0.1"),
        "{location}"
    );
    let err = PgStore::create("host=127.0.0.1 port=1 user=hub password=sekret-pw")
        .err()
        .unwrap();
    unavailable(err, "sekret-pw");
}

fn server_at(url: &str, user: &str, password: &str, db: &str) -> String {
    let c = postgres::Config::from_str(url).unwrap();
    let host = match &c.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => "127.0.0.1".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{user}:{password}@{host}:{port}/{db}")
}

#[test]
fn refused_credentials_and_missing_database_are_unavailable() {
    let Some(url) = server("refused_credentials_and_missing_database_are_unavailable") else {
        return;
    };
    let who = server_at(&url, "rhizome_no_such_role", "sekret-pw", "test");
    let (location, detail) = unavailable(PgStore::connect(&who).err().unwrap(), "sekret-pw");
    assert!(location.contains("rhizome_no_such_role@"), "{location}");
    assert!(detail.contains("rhizome_no_such_role"), "{detail}");
    let user = postgres::Config::from_str(&url)
        .unwrap()
        .get_user()
        .unwrap_or("postgres")
        .to_string();
    let db = server_at(&url, &user, "sekret-pw", "rhizome_no_such_database");
    let (_, detail) = unavailable(PgStore::create(&db).err().unwrap(), "sekret-pw");
    assert!(detail.contains("rhizome_no_such_database"), "{detail}");
}

/// A bundle of `feeds` x `per_feed` posts, as a SQLite instance exports it.
fn bundle(feeds: u8, per_feed: u64) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let mut source = SqliteStore::open(&dir.path().join("rhizome.db")).unwrap();
    for f in 0..feeds {
        source.append(&chain(&key(100 + f), per_feed)).unwrap();
    }
    let instance = key(99);
    let exporter = Exporter {
        instance_id: InstanceId::of(&instance.public_key()),
        public_key: instance.public_key(),
        name: "source".into(),
        age_recipient: None,
    };
    let plan = rhizome_sync::plan_export(&source, exporter, Clock::new(), None, 0).unwrap();
    let mut out = Vec::new();
    rhizome_sync::write_bundle(&source, &plan, &instance, &mut out, &mut |_| {}).unwrap();
    out
}

fn import(store: &mut PgStore, bytes: &[u8]) -> Result<rhizome_sync::ImportReport, ImportError> {
    let opts = ImportOptions {
        now: 1,
        method: "usb".into(),
    };
    import_bundle(store, std::io::BufReader::new(bytes), &opts, &mut |_| {})
}

/// `pg_terminate_backend` on the importing connection part way: a clear error; the batches
/// committed before stay whole; a rerun through a new connection finishes, and the store ends
/// exactly as after one clean import (same clock, same view digests, nothing pending).
#[test]
fn connection_killed_mid_import_then_rerun_ends_as_one_clean_import() {
    let Some(url) = server("connection_killed_mid_import_then_rerun_ends_as_one_clean_import")
    else {
        return;
    };
    let (feeds, per_feed) = (30u8, 2000u64);
    let total = u64::from(feeds) * per_feed;
    let bytes = bundle(feeds, per_feed);

    let mut victim = scratch(&url);
    let schema = victim.schema().unwrap();
    let pid = victim.backend_pid().unwrap() as i32;
    let killer = {
        let url = url.clone();
        let schema = schema.clone();
        std::thread::spawn(move || -> i64 {
            let mut db = admin(&url);
            let started = Instant::now();
            loop {
                let n: i64 = db
                    .query_one(&format!("SELECT count(*) FROM {schema}.events"), &[])
                    .unwrap()
                    .get(0);
                if n > 0 {
                    let killed: bool = db
                        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
                        .unwrap()
                        .get(0);
                    assert!(killed);
                    return n;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "import never began"
                );
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let err = import(&mut victim, &bytes).expect_err("the import was killed");
    let seen_at_kill = killer.join().unwrap();
    assert!((seen_at_kill as u64) < total, "the kill came after the end");
    let ImportError::Store(err) = err else {
        panic!("expected a store error, got {err}");
    };
    let (location, detail) = unavailable(err, "sekret");
    assert!(location.starts_with("postgres://"), "{location}");
    assert!(
        detail.contains("terminat")
            || detail.contains("closed the connection")
            || detail.contains("communicat"),
        "{detail}"
    );
    // The next call on the same handle connects again, and sees the batches committed.
    let kept_seen = victim.stats().unwrap().events;

    let mut db = admin(&url);
    let kept: i64 = db
        .query_one(&format!("SELECT count(*) FROM {schema}.events"), &[])
        .unwrap()
        .get(0);
    assert!(kept > 0 && (kept as u64) < total, "{kept} of {total} kept");
    assert_eq!(kept_seen, kept as u64);
    eprintln!("killed: {kept} of {total} events kept ({detail})");
    // Only whole batches: every feed's events are a prefix 1..=head, and heads match.
    let gaps: i64 = db
        .query_one(
            &format!(
                "SELECT count(*) FROM {schema}.feeds f WHERE f.head_seq <>
                   (SELECT count(*) FROM {schema}.events e WHERE e.feed_id = f.feed_id)
                 OR f.head_seq <> coalesce((SELECT max(seq) FROM {schema}.events e WHERE e.feed_id = f.feed_id), 0)"
            ),
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(gaps, 0);

    let mut rerun = PgStore::create(&with_schema(&url, &schema)).unwrap();
    let report = import(&mut rerun, &bytes).unwrap();
    assert_eq!(report.status, Status::Complete);
    assert_eq!(report.new + report.duplicate, total);
    assert_eq!(report.new, total - kept as u64);

    let mut clean = scratch(&url);
    let report = import(&mut clean, &bytes).unwrap();
    assert_eq!(report.new, total);
    assert_eq!(rerun.clock().unwrap(), clean.clock().unwrap());
    assert_eq!(rerun.stats().unwrap().events, total);
    assert_eq!(rerun.view_digests().unwrap(), clean.view_digests().unwrap());
    assert_eq!(rerun.pending_count().unwrap(), 0);
    assert!(rerun.check_views().unwrap().ok());
    drop(victim);
}
