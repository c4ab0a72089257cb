//! [`LogStore`](rhizome_store::LogStore): the chain rules on append, reads, counts, the range
//! reads exports use, the audience index, purging, legacy ids.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use rhizome_core::ids::MAX_SAFE_INTEGER;
use rhizome_core::privacy::Audience;
use rhizome_core::{Event, Hash, Seq};
use rhizome_store::prelude::*;
use rhizome_store::{LogStats, Outcome, StoreError};
use serde_json::json;

use crate::fixture::*;
use crate::Factory;

/// Which seqs an export withholds.
type Withhold = dyn Fn(u64) -> bool;

fn seq(n: u64) -> Seq {
    Seq::new(n).must("seq")
}

/// Each chain rule alone: Inserted, Duplicate, Gap (head reported), Fork (stored hash
/// reported), PrevMismatch (head hash reported); only Inserted changes the head, the clock and
/// what `get` finds.
pub fn log_append_applies_each_chain_rule(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let mut a = Feed::new(1);
    let (e1, e2, e3) = (a.post("one"), a.post("two"), a.post("three"));
    assert_eq!(
        s.head(&a.pk()).must("head"),
        None,
        "head of an unknown feed"
    );

    assert_eq!(
        s.append(std::slice::from_ref(&e1)).must("append e1"),
        [Outcome::Inserted]
    );
    assert_eq!(s.head(&a.pk()).must("head"), Some((seq(1), e1.hash)));
    assert_eq!(
        s.append(std::slice::from_ref(&e1)).must("append e1 again"),
        [Outcome::Duplicate]
    );
    assert_eq!(
        s.append(std::slice::from_ref(&e3)).must("append e3"),
        [Outcome::Gap { head: 1 }],
        "seq 3 on a feed at 1"
    );
    assert_eq!(
        s.get(&e3.hash).must("get e3"),
        None,
        "a gap event was stored"
    );
    assert_eq!(s.head(&a.pk()).must("head"), Some((seq(1), e1.hash)));
    assert_eq!(
        s.append(std::slice::from_ref(&e2)).must("append e2"),
        [Outcome::Inserted]
    );
    assert_eq!(
        s.append(std::slice::from_ref(&e3)).must("append e3"),
        [Outcome::Inserted]
    );

    let fork = signed(
        &a.sk,
        2,
        Some(e1.hash),
        "POST",
        T0,
        json!({"text": "equivocation"}),
    );
    assert_eq!(
        s.append(std::slice::from_ref(&fork)).must("append fork"),
        [Outcome::Fork { existing: e2.hash }],
        "another event at a held seq"
    );
    assert_eq!(
        s.get(&fork.hash).must("get fork"),
        None,
        "a fork was stored"
    );
    assert_eq!(
        s.get(&e2.hash).must("get e2").as_ref(),
        Some(&*e2),
        "the held event changed"
    );

    let elsewhere = Hash::digest(b"elsewhere");
    let mismatch = signed(&a.sk, 4, Some(elsewhere), "POST", T0, json!({"text": "x"}));
    assert_eq!(
        s.append(std::slice::from_ref(&mismatch))
            .must("append mismatch"),
        [Outcome::PrevMismatch {
            head_hash: Some(e3.hash)
        }],
        "seq = head + 1 with another prev"
    );
    assert_eq!(s.get(&mismatch.hash).must("get mismatch"), None);
    assert_eq!(s.head(&a.pk()).must("head"), Some((seq(3), e3.hash)));
    assert_eq!(s.clock().must("clock").get(&a.pk()), 3);
    assert_eq!(
        s.stats().must("stats"),
        LogStats {
            events: 3,
            feeds: 1
        }
    );
}

/// One batch mixing every outcome over two feeds gets one outcome per event, in order, each
/// judged against the feed as the earlier events of the same batch left it.
pub fn log_append_batch_mixing_outcomes(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (mut a, mut b) = (Feed::new(1), Feed::new(2));
    let (a1, a2, a3) = (a.post("a1"), a.post("a2"), a.post("a3"));
    let (b1, b2, b3) = (b.post("b1"), b.post("b2"), b.post("b3"));
    let b2_fork = signed(&b.sk, 2, Some(b1.hash), "POST", T0, json!({"text": "b2'"}));
    let b3_wrong = signed(&b.sk, 3, Some(b1.hash), "POST", T0, json!({"text": "b3'"}));
    let batch = [
        a3.clone(),
        a1.clone(),
        b1.clone(),
        b1.clone(),
        a2.clone(),
        a3.clone(),
        b2.clone(),
        b2_fork,
        b3_wrong,
        b3.clone(),
    ];
    let out = s.append(&batch).must("append mixed batch");
    assert_eq!(
        out,
        vec![
            Outcome::Gap { head: 0 },
            Outcome::Inserted,
            Outcome::Inserted,
            Outcome::Duplicate,
            Outcome::Inserted,
            Outcome::Inserted,
            Outcome::Inserted,
            Outcome::Fork { existing: b2.hash },
            Outcome::PrevMismatch {
                head_hash: Some(b2.hash)
            },
            Outcome::Inserted,
        ],
        "outcomes of the mixed batch, in order"
    );
    assert_eq!(s.head(&a.pk()).must("head a"), Some((seq(3), a3.hash)));
    assert_eq!(s.head(&b.pk()).must("head b"), Some((seq(3), b3.hash)));
    let clock = s.clock().must("clock");
    assert_eq!(
        (clock.get(&a.pk()), clock.get(&b.pk()), clock.len()),
        (3, 3, 2),
        "clock after the batch"
    );
    assert_eq!(
        s.stats().must("stats"),
        LogStats {
            events: 6,
            feeds: 2
        }
    );
}

/// The same batch twice: the first inserts, the second is all Duplicate and changes nothing
/// (clock, counts, view digests); through an import too, with no pending or fork left behind;
/// an event parked twice is parked once.
pub fn log_inserts_are_idempotent(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (mut a, mut b) = (Feed::new(1), Feed::new(2));
    let p = a.post("hello");
    let batch = vec![
        p.clone(),
        b.like(&p.hash),
        b.comment(&p.hash, "hi"),
        a.post("withheld").without_payload(),
        a.tag(&p.hash, "greeting"),
    ];
    s.follow(&a.pk()).must("follow");
    let first = s.append(&batch).must("first append");
    assert_eq!(first, vec![Outcome::Inserted; batch.len()], "first append");
    let (clock, stats, views) = (s.clock().must("clock"), s.stats().must("stats"), digests(s));
    let second = s.append(&batch).must("second append");
    assert_eq!(
        second,
        vec![Outcome::Duplicate; batch.len()],
        "same batch again"
    );
    let imported = s
        .import_batch(&batch, None)
        .must("import_batch of the same batch");
    assert_eq!(imported.outcomes, vec![Outcome::Duplicate; batch.len()]);
    assert_eq!(imported.promoted, 0);
    assert_eq!(
        s.clock().must("clock"),
        clock,
        "clock changed by duplicates"
    );
    assert_eq!(
        s.stats().must("stats"),
        stats,
        "counts changed by duplicates"
    );
    assert_eq!(digests(s), views, "views changed by duplicates");
    assert_eq!(s.pending_count().must("pending_count"), 0);
    assert!(
        s.forks().must("forks").is_empty(),
        "duplicates recorded as forks"
    );

    let later = signed(
        &a.sk,
        9,
        Some(absent("a8")),
        "POST",
        T0,
        json!({"text": "later"}),
    );
    for round in 1..=2 {
        let r = s
            .import_batch(std::slice::from_ref(&later), None)
            .must("import gap");
        assert_eq!(r.outcomes, [Outcome::Gap { head: 3 }], "round {round}");
        assert_eq!(s.pending_count().must("pending_count"), 1, "round {round}");
    }
    assert_views_check(s, "after duplicates");
}

/// `get` returns every stored event exactly as given (same canonical line, still verifying),
/// without payload when stored withheld, and `None` for an unknown hash.
pub fn log_get_returns_events_as_stored(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (mut a, mut b) = (Feed::new(1), Feed::new(2));
    let mut all = vec![
        a.post("plain"),
        a.add(
            "POST",
            json!({"text": "naïve \"quoted\"\n\ttabs, emoji 😀, \u{7f} and \\ backslash", "lang": "fr"}),
        ),
        a.star(&absent("t"), true),
        b.add("FUTURE_TYPE", json!({"n": 9_007_199_254_740_991u64, "deep": {"a": [1, {"b": null}]}})),
        b.post("two"),
    ];
    all.push(b.post("withheld").without_payload());
    assert_eq!(
        s.append(&all).must("append"),
        vec![Outcome::Inserted; all.len()]
    );
    for ev in &all {
        let got = s
            .get(&ev.hash)
            .must("get")
            .unwrap_or_else(|| panic!("stored event {} not found", ev.hash));
        assert_eq!(&got, &**ev, "event {} read back", ev.hash);
        assert_eq!(got.to_line(), ev.to_line(), "line of {}", ev.hash);
        got.verify()
            .unwrap_or_else(|e| panic!("event read back no longer verifies: {e}"));
    }
    let withheld = s.get(&all[5].hash).must("get").map(|e| e.payload);
    assert_eq!(
        withheld,
        Some(None),
        "a withheld event read back with a payload"
    );
    assert_eq!(s.get(&absent("get")).must("get absent"), None);
}

/// `find_by_prefix`: a unique prefix and the full hex find one hash; an ambiguous prefix finds
/// every match (at most `limit`); no match, limit 0 and malformed prefixes (empty, uppercase,
/// not hex, too long) find nothing, without an error.
pub fn log_find_by_prefix(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let mut a = Feed::new(1);
    let evs: Vec<_> = (0..20).map(|i| a.post(&format!("post {i}"))).collect();
    s.append(&evs).must("append");
    let hexes: Vec<String> = evs.iter().map(|e| e.hash.to_hex()).collect();
    let matching = |p: &str| -> BTreeSet<Hash> {
        evs.iter()
            .filter(|e| e.hash.to_hex().starts_with(p))
            .map(|e| e.hash)
            .collect()
    };
    let find = |p: &str, limit: usize| s.find_by_prefix(p, limit).must("find_by_prefix");

    let h0 = &hexes[0];
    let unique = (4..=64)
        .map(|n| &h0[..n])
        .find(|p| matching(p).len() == 1)
        .unwrap_or(h0);
    assert_eq!(
        find(unique, 10),
        vec![evs[0].hash],
        "unique prefix {unique}"
    );
    assert_eq!(find(h0, 10), vec![evs[0].hash], "full hex");

    // 20 hashes over 16 hex digits: some first digit is shared.
    let shared = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|p| matching(p).len() >= 2)
        .unwrap_or_default();
    let expected = matching(&shared);
    assert!(expected.len() >= 2, "no shared first digit among 20 hashes");
    let all: BTreeSet<Hash> = find(&shared, 100).into_iter().collect();
    assert_eq!(all, expected, "ambiguous prefix {shared:?}");
    let one = find(&shared, 1);
    assert!(
        one.len() == 1 && expected.contains(&one[0]),
        "limit 1 on an ambiguous prefix gave {:?}",
        hex_of(&one)
    );
    let some = find(&shared, expected.len() - 1);
    assert_eq!(
        some.len(),
        expected.len() - 1,
        "limit below the match count"
    );

    let none = (0u32..)
        .map(|i| format!("{i:08x}"))
        .find(|p| matching(p).is_empty())
        .unwrap_or_default();
    assert!(
        find(&none, 10).is_empty(),
        "prefix {none} matches nothing stored"
    );
    assert!(find(unique, 0).is_empty(), "limit 0");

    let upper = h0.to_uppercase();
    assert_ne!(&upper, h0, "fixture hash has no letter");
    let too_long = format!("{h0}0");
    for bad in ["", "xyz", "g", " ", upper.as_str(), too_long.as_str(), "-1"] {
        assert!(
            find(bad, 10).is_empty(),
            "malformed prefix {bad:?} matched something"
        );
    }
}

/// `for_each_event` visits every event once, each feed's events together in seq order; one
/// feed alone; nothing for an unknown feed; stops when the visitor breaks.
pub fn log_for_each_event_order(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (mut a, mut b, mut c) = (Feed::new(1), Feed::new(2), Feed::new(3));
    let batch = vec![
        c.post("c1"),
        a.post("a1"),
        b.post("b1"),
        a.post("a2"),
        c.post("c2"),
        b.post("b2"),
        a.post("a3"),
        b.post("b3").without_payload(),
    ];
    s.append(&batch).must("append");
    let seen = events_of(s, None);
    assert_eq!(seen.len(), batch.len(), "events visited");
    let lines: BTreeSet<Vec<u8>> = seen.iter().map(Event::to_line).collect();
    let given: BTreeSet<Vec<u8>> = batch.iter().map(|e| e.to_line()).collect();
    assert_eq!(lines, given, "the events visited are the events stored");
    // Feeds in one run each, seqs 1, 2, ... within a run.
    let mut runs: Vec<(rhizome_core::PublicKey, Vec<u64>)> = Vec::new();
    for e in &seen {
        match runs.last_mut() {
            Some((k, seqs)) if *k == e.header.author => seqs.push(e.header.seq.get()),
            _ => runs.push((e.header.author, vec![e.header.seq.get()])),
        }
    }
    let feeds: BTreeSet<_> = runs.iter().map(|(k, _)| *k).collect();
    assert_eq!(feeds.len(), runs.len(), "a feed's events are not together");
    for (k, seqs) in &runs {
        let n = seqs.len() as u64;
        assert_eq!(seqs, &(1..=n).collect::<Vec<_>>(), "seq order of feed {k}");
    }

    let only_b = events_of(s, Some(&b.pk()));
    assert_eq!(
        only_b,
        b.events
            .iter()
            .enumerate()
            .map(|(i, e)| if i == 2 {
                e.without_payload().into_inner()
            } else {
                (**e).clone()
            })
            .collect::<Vec<_>>(),
        "one feed"
    );
    assert!(events_of(s, Some(&pk(9))).is_empty(), "unknown feed");
    let mut visits = 0;
    s.for_each_event(None, &mut |_| {
        visits += 1;
        ControlFlow::Break(())
    })
    .must("for_each_event with break");
    assert_eq!(visits, 1, "the walk went on after the visitor broke");
}

/// `clock`, `stats`, `type_counts`, `pending_count` and `size_on_disk`: empty on a fresh store;
/// then counting stored events only (a feed holding only a gap is no feed, a withheld event
/// counts).
pub fn log_counts_clock_stats_types(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    assert!(s.clock().must("clock").is_empty(), "clock of a fresh store");
    assert_eq!(s.stats().must("stats"), LogStats::default());
    assert!(s.type_counts().must("type_counts").is_empty());
    assert_eq!(s.pending_count().must("pending_count"), 0);

    let (mut a, mut b, c) = (Feed::new(1), Feed::new(2), Feed::new(3));
    let p = a.post("a1");
    let mut batch = vec![p.clone(), a.post("a2"), a.like(&p.hash)];
    batch.push(b.add("FUTURE_TYPE", json!({"x": 1})));
    batch.push(b.post("withheld").without_payload());
    batch.push(signed(
        &c.sk,
        2,
        Some(absent("c1")),
        "POST",
        T0,
        json!({"text": "gap"}),
    ));
    s.append(&batch).must("append");

    assert_eq!(
        s.type_counts().must("type_counts"),
        vec![
            ("FUTURE_TYPE".to_string(), 1),
            ("LIKE".to_string(), 1),
            ("POST".to_string(), 3)
        ],
        "type_counts, by type name"
    );
    let clock = s.clock().must("clock");
    assert_eq!(
        (
            clock.get(&a.pk()),
            clock.get(&b.pk()),
            clock.get(&c.pk()),
            clock.len()
        ),
        (3, 2, 0, 2),
        "clock: a gap-only feed is not held"
    );
    assert_eq!(
        s.stats().must("stats"),
        LogStats {
            events: 5,
            feeds: 2
        }
    );
    if let Some(n) = s.size_on_disk() {
        assert!(n > 0, "size_on_disk of a store holding events is 0");
    }
}

/// `max_seq` is at least 2^32-1 (and at most 2^53-1); an event at 2^32-1 is a gap that an
/// import parks; an event beyond `max_seq` fails the append with `Limit`, storing nothing of
/// the batch.
pub fn log_max_seq_and_limit(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let max = s.max_seq();
    assert!(
        (u64::from(u32::MAX)..=MAX_SAFE_INTEGER).contains(&max),
        "max_seq {max} outside 2^32-1 ..= 2^53-1"
    );
    let a = Feed::new(1);
    let far = u64::from(u32::MAX);
    let high = signed(
        &a.sk,
        far,
        Some(absent("before")),
        "POST",
        T0,
        json!({"text": "far"}),
    );
    assert_eq!(
        s.append(std::slice::from_ref(&high))
            .must("append seq 2^32-1"),
        [Outcome::Gap { head: 0 }]
    );
    let r = s.import_batch(&[high], None).must("import seq 2^32-1");
    assert_eq!(r.outcomes, [Outcome::Gap { head: 0 }]);
    assert_eq!(
        s.pending_count().must("pending_count"),
        1,
        "seq 2^32-1 parked"
    );

    if max < MAX_SAFE_INTEGER {
        let first = signed(&a.sk, 1, None, "POST", T0, json!({"text": "first"}));
        let beyond = signed(
            &a.sk,
            max + 1,
            Some(absent("b")),
            "POST",
            T0,
            json!({"text": "b"}),
        );
        match s.append(&[first.clone(), beyond]) {
            Err(StoreError::Limit(_)) => {}
            other => panic!("append beyond max_seq {max}: expected Limit, got {other:?}"),
        }
        assert_eq!(
            s.get(&first.hash).must("get"),
            None,
            "part of a failed batch was stored"
        );
        assert_eq!(s.head(&a.pk()).must("head"), None);
    }
}

/// `stored_hashes` lists (seq, hash) of the range in seq order, leaving out events stored
/// withheld; nothing for an unknown feed or an empty range.
pub fn log_stored_hashes_skip_withheld(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let mut a = Feed::new(1);
    let mut evs: Vec<_> = (1..=5).map(|i| a.post(&format!("p{i}"))).collect();
    evs[2] = evs[2].without_payload();
    s.append(&evs).must("append");
    let h = |i: usize| (i as u64 + 1, evs[i].hash);
    assert_eq!(
        s.stored_hashes(&a.pk(), 1, 5).must("stored_hashes"),
        vec![h(0), h(1), h(3), h(4)],
        "withheld seq 3 left out"
    );
    assert_eq!(
        s.stored_hashes(&a.pk(), 2, 4).must("stored_hashes"),
        vec![h(1), h(3)]
    );
    assert_eq!(
        s.stored_hashes(&a.pk(), 4, 100).must("stored_hashes"),
        vec![h(3), h(4)]
    );
    assert!(
        s.stored_hashes(&a.pk(), 4, 2)
            .must("stored_hashes")
            .is_empty(),
        "from > to"
    );
    assert!(
        s.stored_hashes(&pk(9), 1, 5)
            .must("stored_hashes")
            .is_empty(),
        "unknown feed"
    );
}

/// `plan_range` counts exactly the bytes `write_range` writes (lines with their newline),
/// with and without payloads withheld by the callback or at rest; the lines are the events'
/// canonical lines and verify; a failing writer fails the call.
pub fn log_plan_and_write_range_agree(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let mut a = Feed::new(1);
    let member = pk(2);
    let p = a.post("first");
    a.add(
        "POST",
        json!({"text": "for friends", "audience": {"circle": "friends", "members": [member]}}),
    );
    a.like(&p.hash);
    a.add("FUTURE_TYPE", json!({"blob": "x".repeat(3000), "n": 12345}));
    a.post("withheld at rest");
    a.add_at("POST", json!({"text": "late"}), MAX_SAFE_INTEGER);
    let mut stored = a.events.clone();
    stored[4] = stored[4].without_payload();
    s.append(&stored).must("append");

    let write = |s: &dyn Store, from, to, withhold: &dyn Fn(u64) -> bool| {
        let mut buf = Vec::new();
        let n = s
            .write_range(&a.pk(), from, to, withhold, &mut |b| {
                buf.extend_from_slice(b);
                Ok(())
            })
            .must("write_range");
        (n, buf)
    };
    let expected = |from: u64, to: u64, withhold: &dyn Fn(u64) -> bool| -> Vec<u8> {
        stored
            .iter()
            .filter(|e| (from..=to).contains(&e.header.seq.get()))
            .flat_map(|e| {
                let mut line = if withhold(e.header.seq.get()) {
                    e.without_payload().to_line()
                } else {
                    e.to_line()
                };
                line.push(b'\n');
                line
            })
            .collect()
    };
    // (from, to, withheld seqs, lines expected, index of the head)
    let cases: [(u64, u64, &Withhold, u64, usize); 4] = [
        (1, 6, &|_| false, 6, 5),
        (1, 6, &|q| q % 2 == 0, 6, 5),
        (2, 4, &|q| q == 2, 3, 3),
        (5, 100, &|_| true, 2, 5),
    ];
    for (from, to, withhold, count, head) in cases {
        let plan = s.plan_range(&a.pk(), from, to, withhold).must("plan_range");
        let (n, buf) = write(&*s, from, to, withhold);
        assert_eq!(n, count, "lines written for {from}..={to}");
        assert_eq!(
            String::from_utf8_lossy(&buf),
            String::from_utf8_lossy(&expected(from, to, withhold)),
            "lines written for {from}..={to}"
        );
        assert_eq!(plan.count, count, "plan count for {from}..={to}");
        assert_eq!(plan.bytes, buf.len() as u64, "plan bytes for {from}..={to}");
        assert_eq!(
            plan.head,
            Some(stored[head].hash),
            "plan head for {from}..={to}"
        );
        for line in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            Event::parse(line)
                .and_then(Event::verify)
                .unwrap_or_else(|e| panic!("written line does not verify: {e}"));
        }
    }

    let plan = s
        .plan_range(&pk(9), 1, 10, &|_| false)
        .must("plan_range unknown");
    assert_eq!(
        (plan.count, plan.bytes, plan.head),
        (0, 0, None),
        "unknown feed"
    );
    let (n, buf) = {
        let mut buf = Vec::new();
        let n = s
            .write_range(&pk(9), 1, 10, &|_| false, &mut |b| {
                buf.extend_from_slice(b);
                Ok(())
            })
            .must("write_range unknown");
        (n, buf)
    };
    assert_eq!((n, buf.len()), (0, 0), "unknown feed written");
    let failing = s.write_range(&a.pk(), 1, 6, &|_| false, &mut |_| {
        Err(std::io::Error::other("disk full"))
    });
    assert!(failing.is_err(), "write_range ignored its writer's error");
}

/// `limited` lists the audiences of limited payloads in seq order: indexed when appended whole,
/// when a withheld payload is filled, and for a malformed audience (the author alone);
/// not for a withheld event or a public payload.
pub fn log_limited_audiences(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let mut a = Feed::new(1);
    let (m1, m2) = (pk(2), pk(3));
    let public = a.post("hello");
    let limited = a.add(
        "POST",
        json!({"text": "secret", "audience": {"circle": "c", "members": [m1]}}),
    );
    let broken = a.add(
        "POST",
        json!({"text": "odd", "audience": {"members": "everyone"}}),
    );
    let direct = a.add(
        "LIKE",
        json!({"target": public.hash.to_hex(), "audience": {"circle": "d", "members": [m1, m2]}}),
    );
    assert_eq!(
        s.append(&[public.clone(), limited.without_payload()])
            .must("append"),
        [Outcome::Inserted, Outcome::Inserted]
    );
    assert!(
        s.limited(&a.pk(), 1, 10).must("limited").is_empty(),
        "a withheld or public payload is indexed"
    );
    let r = s
        .import_batch(&[limited.clone(), broken.clone()], None)
        .must("import fill");
    assert_eq!(r.outcomes, [Outcome::Filled, Outcome::Inserted]);
    let r = s
        .import_batch(std::slice::from_ref(&limited), None)
        .must("import again");
    assert_eq!(r.outcomes, [Outcome::Duplicate]);
    assert_eq!(
        s.append(&[direct]).must("append direct"),
        [Outcome::Inserted]
    );
    assert_eq!(
        s.limited(&a.pk(), 1, 10).must("limited"),
        vec![
            (2, Audience::Limited(vec![m1])),
            (3, Audience::Limited(vec![])),
            (4, Audience::Limited(vec![m1, m2])),
        ],
        "audiences by seq (a malformed one limits to the author)"
    );
    assert_eq!(
        s.limited(&a.pk(), 3, 3).must("limited"),
        vec![(3, Audience::Limited(vec![]))]
    );
    assert!(s.limited(&a.pk(), 1, 1).must("limited").is_empty());
    assert!(
        s.limited(&pk(9), 1, 10).must("limited").is_empty(),
        "unknown feed"
    );
    assert_views_check(s, "after fills");
}

/// `purge_author` removes the author's log (returning how many), pending events and fork
/// evidence, and rebuilds the views; other authors keep everything (their replies to the
/// purged author's events included); the feed can then start again at seq 1.
pub fn log_purge_author(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    let (mut a, mut b) = (Feed::new(1), Feed::new(2));
    let b1 = b.post("b1");
    let a1 = a.post("a1");
    let a_events = vec![
        a1.clone(),
        a.like(&b1.hash),
        a.comment(&b1.hash, "a on b"),
        a.tag(&b1.hash, "x"),
    ];
    let b_reply = b.comment(&a1.hash, "b on a");
    let b_like = b.like(&a1.hash);
    s.follow(&a.pk()).must("follow a");
    s.follow(&b.pk()).must("follow b");
    s.append(&[b1.clone(), b_reply.clone(), b_like])
        .must("append b");
    s.append(&a_events).must("append a");
    let parked = signed(
        &a.sk,
        9,
        Some(absent("a8")),
        "POST",
        T0,
        json!({"text": "later"}),
    );
    let fork = signed(&a.sk, 1, None, "POST", T0, json!({"text": "other a1"}));
    let r = s
        .import_batch(&[parked, fork], None)
        .must("import pending and fork");
    assert_eq!(
        r.outcomes,
        [
            Outcome::Gap { head: 4 },
            Outcome::Fork { existing: a1.hash }
        ]
    );
    assert_eq!(s.likers(&b1.hash).must("likers"), vec![a.pk()]);
    assert_eq!(s.forked_authors().must("forked_authors"), vec![a.pk()]);

    assert_eq!(
        s.purge_author(&a.pk()).must("purge_author"),
        4,
        "log events removed"
    );
    assert_eq!(s.head(&a.pk()).must("head"), None);
    assert_eq!(s.clock().must("clock").get(&a.pk()), 0);
    assert_eq!(s.get(&a1.hash).must("get"), None);
    assert!(
        events_of(s, Some(&a.pk())).is_empty(),
        "purged events still visited"
    );
    assert_eq!(
        s.pending_count().must("pending_count"),
        0,
        "purged pending events"
    );
    assert!(s.forks().must("forks").is_empty(), "purged fork evidence");
    assert!(s.forked_authors().must("forked_authors").is_empty());
    assert!(s.fork_lines(&a.pk()).must("fork_lines").is_empty());

    assert_eq!(
        s.head(&b.pk()).must("head b"),
        Some((seq(3), b.events[2].hash))
    );
    assert_eq!(
        s.stats().must("stats"),
        LogStats {
            events: 3,
            feeds: 1
        }
    );
    assert!(
        s.likers(&b1.hash).must("likers").is_empty(),
        "purged like still shown"
    );
    assert!(
        s.thread(&b1.hash).must("thread").is_empty(),
        "purged comment still shown"
    );
    assert!(
        s.tags_of(&b1.hash).must("tags_of").is_empty(),
        "purged tag still shown"
    );
    let items = s.timeline(None, None, 10).must("timeline");
    assert_eq!(
        items.iter().map(|i| i.hash).collect::<Vec<_>>(),
        vec![b1.hash]
    );
    let thread = s.thread(&a1.hash).must("thread of the purged post");
    assert_eq!(
        thread.iter().map(|r| r.hash).collect::<Vec<_>>(),
        vec![b_reply.hash],
        "another author's reply to a purged event stays"
    );
    assert_views_check(s, "after purge");

    assert_eq!(
        s.append(&a_events).must("append a again"),
        vec![Outcome::Inserted; a_events.len()],
        "a purged feed starts again at seq 1"
    );
    assert_eq!(s.purge_author(&pk(9)).must("purge unknown"), 0);
}

/// `append_legacy` records the legacy id (the event hash's 32 bytes) only when the event is
/// inserted; `add_author_legacy` records the author key's 32 bytes, atomically with the author.
pub fn log_legacy_ids(fresh: Factory<'_>) {
    let mut fx = fresh();
    let s = fx.store.as_mut();
    s.init(&identity(1, "home"), &local_author("ana", 11, true))
        .must("init");
    let mut a = Feed::new(11);
    let (a1, _a2, a3) = (a.post("1"), a.post("2"), a.post("3"));
    assert_eq!(s.legacy("event:1").must("legacy"), None);
    assert_eq!(
        s.append_legacy(&a1, "event:1").must("append_legacy"),
        Outcome::Inserted
    );
    assert_eq!(
        s.legacy("event:1").must("legacy"),
        Some(a1.hash.as_bytes().to_vec())
    );
    assert_eq!(
        s.append_legacy(&a1, "event:1b").must("append_legacy dup"),
        Outcome::Duplicate
    );
    assert_eq!(
        s.legacy("event:1b").must("legacy"),
        None,
        "a duplicate was recorded"
    );
    assert_eq!(
        s.append_legacy(&a3, "event:3").must("append_legacy gap"),
        Outcome::Gap { head: 1 }
    );
    assert_eq!(
        s.legacy("event:3").must("legacy"),
        None,
        "a gap was recorded"
    );
    assert_eq!(s.get(&a3.hash).must("get"), None);

    s.add_author_legacy(&local_author("lee", 31, false), "user:7")
        .must("add_author_legacy");
    assert_eq!(
        s.legacy("user:7").must("legacy"),
        Some(pk(31).as_bytes().to_vec())
    );
    assert_eq!(s.author(Some("lee")).must("author lee").public_key, pk(31));
    match s.add_author_legacy(&local_author("lee", 32, false), "user:8") {
        Err(StoreError::AuthorExists(_)) => {}
        other => {
            panic!("add_author_legacy with a taken name: expected AuthorExists, got {other:?}")
        }
    }
    assert_eq!(
        s.legacy("user:8").must("legacy"),
        None,
        "recorded for a refused author"
    );
    let names: BTreeMap<String, bool> = s
        .authors()
        .must("authors")
        .into_iter()
        .map(|a| (a.name, a.is_default))
        .collect();
    assert_eq!(names.len(), 2, "authors: {names:?}");
}
