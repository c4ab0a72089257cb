//! The conformance suite of `rhizome-store`: every case a store backend must pass, written
//! once against the traits, so SQLite, PostgreSQL and any later backend are held to the same
//! contract (chain rules, idempotent inserts, pending promotion, forks, withheld payloads, peers'
//! clocks, quarantine, the views and their independence from arrival order).
//!
//! A backend crate runs the whole suite with one line in a test file, given a factory that
//! makes a fresh, empty store:
//!
//! ```text
//! fn fresh() -> rhizome_store_tests::Fresh {
//!     let dir = tempfile::tempdir().expect("temporary directory");
//!     let store = SqliteStore::open(&dir.path().join("rhizome.db")).expect("open");
//!     rhizome_store_tests::Fresh { store: Box::new(store), guard: Box::new(dir) }
//! }
//! rhizome_store_tests::conformance!(fresh);
//! ```
//!
//! The macro expands to one `#[test]` per case, named after it, each calling
//! `rhizome_store_tests::cases::NAME(&factory)`; a backend that needs a server can add
//! `skip_if = expr` (see [`conformance!`]). Cases are deterministic: fixed keys, fixed
//! timestamps, fixed property-test seeds. Each case takes as many fresh stores as it needs;
//! those that need an instance call `init` themselves.
#![deny(missing_docs)]

pub mod cases;
mod fixture;

use rhizome_store::Store;

/// A fresh, empty store and what keeps it alive: a temporary directory, a database schema to
/// drop, a server connection. Fields drop in order, so the store is closed before the guard
/// cleans up.
pub struct Fresh {
    /// The store, empty: no identity, no events, no peers.
    pub store: Box<dyn Store>,
    /// Dropped after the store; its `Drop` removes what the factory created.
    pub guard: Box<dyn std::any::Any>,
}

/// What a backend provides to the suite: each call makes a new, empty store.
pub type Factory<'a> = &'a dyn Fn() -> Fresh;

/// Calls `$callback!` with the name of every case, after the tokens given: the one list of
/// cases, so the macro and [`CASES`] cannot disagree.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback!(($($args)*)
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
            import_rolls_back_on_drop,
            import_batch_and_bulk_mode,
            import_reader_sees_committed_writes,
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
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __case_names {
    (() $($case:ident),* $(,)?) => {
        /// The name of every case, in the order the macro expands them.
        pub const CASES: &[&str] = &[$(stringify!($case)),*];
    };
}

__with_cases!(__case_names!());

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ((($factory:expr) ($skip:expr)) $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if let ::core::option::Option::Some(reason) = $skip {
                    ::std::eprintln!(
                        "conformance case {} SKIPPED on this backend: {}",
                        ::core::stringify!($case),
                        reason
                    );
                    return;
                }
                $crate::cases::$case(&$factory);
            }
        )*
    };
}

/// Expands to one `#[test]` per conformance case, each running the case against stores made
/// by `factory` (an expression of a type implementing `Fn() -> Fresh`: a function name or a
/// closure).
///
/// `conformance!(factory, skip_if = expr)` evaluates `expr` (an `Option` of something
/// printable) at the start of each test; `Some(reason)` skips the case, saying so on stderr,
/// for a backend that needs a server which may be absent.
#[macro_export]
macro_rules! conformance {
    ($factory:expr, skip_if = $skip:expr $(,)?) => {
        $crate::__with_cases!(__conformance_tests!(($factory)($skip)));
    };
    ($factory:expr $(,)?) => {
        $crate::__with_cases!(__conformance_tests!(($factory)(
            ::core::option::Option::<&str>::None
        )));
    };
}

#[cfg(test)]
mod tests {
    /// Every public case function is in the macro's list (the compiler checks the converse).
    #[test]
    fn every_case_is_expanded() {
        let sources = [
            include_str!("cases/keys.rs"),
            include_str!("cases/log.rs"),
            include_str!("cases/import.rs"),
            include_str!("cases/views.rs"),
            include_str!("cases/peers.rs"),
            include_str!("cases/quarantine.rs"),
        ];
        let mut defined: Vec<&str> = sources
            .iter()
            .flat_map(|s| s.lines())
            .filter_map(|l| l.strip_prefix("pub fn "))
            .filter_map(|l| l.split('(').next())
            .collect();
        let mut listed = super::CASES.to_vec();
        defined.sort_unstable();
        listed.sort_unstable();
        assert_eq!(defined, listed, "cases defined vs cases in __with_cases!");
    }
}
