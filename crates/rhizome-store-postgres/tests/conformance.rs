//! The conformance suite of `rhizome-store-tests`, on PostgreSQL: each case in a schema of its
//! own (dropped after), on the server of `rhizome_store_postgres::testing::server` (it fails
//! when that server cannot be reached, unless `RHIZOME_TEST_POSTGRES=skip`).
//!
//! Two cases are not run here: `import_rolls_back_on_drop` and
//! `import_reader_sees_committed_writes` assert that what a session added stays invisible
//! until it commits, and is dropped with it: SQLite's choice. PostgreSQL commits each batch of
//! a session on its own (see `ImportSession` and this crate's docs), and the tests
//! `import_session_keeps_each_added_batch_whole` and `reader_sees_each_batch_once_added`
//! below pin that instead, with the rest of what those cases check.
//! `every_suite_case_is_run` fails when the suite gains a case this list lacks.
#![allow(clippy::unwrap_used)]

mod common;

use rhizome_core::InstanceId;
use rhizome_store::prelude::*;
use rhizome_store::Outcome;
use rhizome_store_tests::{cases, Fresh};

fn fresh() -> Fresh {
    let url = common::server("conformance").expect("checked by the case");
    Fresh {
        store: Box::new(common::scratch(&url)),
        guard: Box::new(()),
    }
}

macro_rules! run {
    ($($case:ident),* $(,)?) => {
        const RUN: &[&str] = &[$(stringify!($case)),*];
        $(
            #[test]
            fn $case() {
                if common::server(concat!("conformance case ", stringify!($case))).is_none() {
                    return;
                }
                cases::$case(&fresh);
            }
        )*
    };
}

run!(
    keys_init_identity_and_authors,
    keys_local_hosts_replace_per_author,
    log_append_applies_each_chain_rule,
    log_append_batch_mixing_outcomes,
    log_inserts_are_idempotent,
    log_get_returns_events_as_stored,
    log_find_by_prefix,
    log_for_each_event_order,
    log_counts_clock_stats_types,
    log_max_seq_and_limit,
    log_stored_hashes_skip_withheld,
    log_plan_and_write_range_agree,
    log_limited_audiences,
    log_purge_author,
    log_legacy_ids,
    import_promotes_pending_across_batches,
    import_promotes_pending_across_sessions,
    import_records_forks_with_carrier,
    import_fills_withheld_payloads,
    import_batch_and_bulk_mode,
    views_follow_and_unfollow,
    views_timeline_pages_by_cursor,
    views_thread_depths,
    views_likers,
    views_reshares,
    views_starred_last_by_seq,
    views_latest_profile_wins,
    views_circles,
    views_tags,
    views_skipped_reasons,
    views_rebuild_equals_live,
    views_reply_before_target,
    views_order_property,
    peers_record_exchange_clocks,
    peers_publications,
    peers_add_and_trust,
    peers_block_by_id,
    peers_blocked_authors_hidden_from_views,
    quarantine_blob_round_trip,
    quarantine_large_blob,
    quarantine_unfinished_sink,
    quarantine_hold_held_release,
);

/// Cases of the suite not in `RUN`, each with the test here that stands for it.
const EXCUSED: &[(&str, &str)] = &[
    (
        "import_rolls_back_on_drop",
        "import_session_keeps_each_added_batch_whole",
    ),
    (
        "import_reader_sees_committed_writes",
        "reader_sees_each_batch_once_added",
    ),
];

#[test]
fn every_suite_case_is_run() {
    let mut ours: Vec<&str> = RUN
        .iter()
        .copied()
        .chain(EXCUSED.iter().map(|e| e.0))
        .collect();
    let mut suite = rhizome_store_tests::CASES.to_vec();
    ours.sort_unstable();
    suite.sort_unstable();
    assert_eq!(ours, suite, "conformance cases run here vs the suite's");
}

/// What PostgreSQL does instead of rolling a dropped session back: every batch it was given
/// is committed whole, and importing the rest ends as one import.
#[test]
fn import_session_keeps_each_added_batch_whole() {
    let Some(url) = common::server("import_session_keeps_each_added_batch_whole") else {
        return;
    };
    let mut pg = common::scratch(&url);
    let sk = common::key(1);
    let evs = common::chain(&sk, 6);
    {
        let mut session = pg
            .begin_import(Some(&InstanceId::of(&common::key(90).public_key())))
            .unwrap();
        let r = session.add(&evs[..2]).unwrap();
        assert_eq!(r.outcomes, vec![Outcome::Inserted; 2]);
        let r = session.add(&[evs[3].clone()]).unwrap();
        assert_eq!(r.outcomes, vec![Outcome::Gap { head: 2 }]);
        assert_eq!(session.events(), 3);
        // Dropped uncommitted.
    }
    assert_eq!(pg.stats().unwrap().events, 2);
    assert_eq!(pg.pending_count().unwrap(), 1);
    let r = pg.import_batch(&evs, None).unwrap();
    assert_eq!(r.outcomes[2], Outcome::Inserted);
    assert_eq!(pg.stats().unwrap().events, 6);
    assert_eq!(pg.pending_count().unwrap(), 0);
    assert!(pg.check_views().unwrap().ok());
}

/// A second handle sees every batch of a session once `add` has returned (each is committed),
/// appends at once, and the first handle sees the reader's writes.
#[test]
fn reader_sees_each_batch_once_added() {
    let Some(url) = common::server("reader_sees_each_batch_once_added") else {
        return;
    };
    let mut pg = common::scratch(&url);
    let sk = common::key(1);
    let evs = common::chain(&sk, 2);
    let mut r = pg.reader().unwrap();
    assert_eq!(r.head(&sk.public_key()).unwrap(), None);
    pg.append(&evs[..1]).unwrap();
    assert_eq!(r.get(&evs[0].hash).unwrap().as_ref(), Some(&*evs[0]));
    {
        let mut session = pg.begin_import(None).unwrap();
        session.add(&evs[1..]).unwrap();
        assert_eq!(r.get(&evs[1].hash).unwrap().as_ref(), Some(&*evs[1]));
        session.commit().unwrap();
    }
    assert_eq!(r.clock().unwrap(), pg.clock().unwrap());
    assert!(r.follow(&sk.public_key()).unwrap());
    assert_eq!(pg.follows().unwrap(), vec![sk.public_key()]);
}
