//! Reading for people: the views with the text, names and marks a front-end shows (the feed,
//! threads, stars, circles, tags, status), the log itself, and verifying all of it again.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Instant;

use rhizome_core::chain::ChainWalk;
use rhizome_core::event::verify_batch;
use rhizome_core::{Event, Hash, PublicKey};
use rhizome_store::{
    Circle, Cursor, LocalAuthor, LogStats, Reply, Reshare, Skipped, Store, TableDigest,
    TimelineItem, ViewCheck,
};
use serde::Serialize;
use serde_json::Value;

use crate::{Node, NodeError, Result};

/// How a person is named for people: the name they go by beside the fingerprint of their key,
/// since names are not unique (anyone may publish any name); the fingerprint alone when no name
/// is known.
/// The name is escaped for a terminal ([`crate::text::printable`]): anyone may publish any name.
pub fn label(name: Option<&str>, key: &PublicKey) -> String {
    match name {
        Some(name) => format!("{} ({})", crate::text::printable(name), key.fingerprint()),
        None => key.fingerprint(),
    }
}

/// `YYYY-MM-DD HH:MM` (UTC) for a millisecond timestamp, as front-ends show times.
pub fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Names for keys, to show people rather than hex: an author's latest PROFILE (PROTOCOL 5),
/// else, for a local author who has none, the local name. Each key is looked up once.
pub struct Names<'n> {
    store: &'n dyn Store,
    local: HashMap<PublicKey, String>,
    seen: RefCell<HashMap<PublicKey, Option<String>>>,
}

impl Names<'_> {
    /// The local name of a key, if it is a local author.
    pub fn local(&self, key: &PublicKey) -> Option<&str> {
        self.local.get(key).map(String::as_str)
    }

    /// The name a key goes by, if one is known. A store that cannot be read here gives no name
    /// (a label is only a label; the fingerprint still shows).
    pub fn name(&self, key: &PublicKey) -> Option<String> {
        if let Some(n) = self.seen.borrow().get(key) {
            return n.clone();
        }
        let n = match self.store.profile(key) {
            Ok(Some(p)) => Some(p.name),
            _ => self.local.get(key).cloned(),
        };
        self.seen.borrow_mut().insert(*key, n.clone());
        n
    }

    /// The label of a key for people (see [`label`]).
    pub fn of(&self, key: &PublicKey) -> String {
        label(self.name(key).as_deref(), key)
    }
}

/// What an event shows: its text and whether only a circle may read it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Shown {
    /// Its author, when the event is here.
    pub author: Option<PublicKey>,
    /// Its `text` (or `comment`), when the payload is here.
    pub text: Option<String>,
    /// The circle its payload is limited to (PROTOCOL 9.1).
    pub circle: Option<String>,
    /// The payload is withheld (only the signed header is here).
    pub withheld: bool,
    /// The event itself is not stored (yet).
    pub missing: bool,
}

/// One feed entry, with what it shows.
#[derive(Debug, Clone, Serialize)]
pub struct FeedItem {
    /// The timeline row.
    #[serde(flatten)]
    pub item: TimelineItem,
    /// What it shows.
    #[serde(skip)]
    pub shown: Shown,
    /// The cursor that continues after this item.
    #[serde(skip)]
    pub cursor: Cursor,
}

/// A page of the feed.
#[derive(Debug, Clone)]
pub struct FeedPage {
    /// Items, newest first.
    pub items: Vec<FeedItem>,
    /// The cursor of the next page, when this one was full.
    pub next: Option<Cursor>,
}

/// A thread: its root, who liked, tagged and reshared it, and every reply below it.
#[derive(Debug, Clone)]
pub struct Thread {
    /// The root event.
    pub root: Event,
    /// What the root shows.
    pub shown: Shown,
    /// Who liked the root.
    pub likers: Vec<PublicKey>,
    /// Tags on the root.
    pub tags: Vec<String>,
    /// Reshares of the root, oldest first.
    pub reshares: Vec<Reshare>,
    /// Replies, oldest first, each with what it shows.
    pub replies: Vec<(Reply, Shown)>,
}

/// Counts and digests of the store.
#[derive(Debug, Clone)]
pub struct Status {
    /// Events stored.
    pub events: u64,
    /// Feeds with events.
    pub feeds: u64,
    /// Authors followed.
    pub follows: usize,
    /// Events per type.
    pub per_type: Vec<(String, u64)>,
    /// Highest contiguous seq per author.
    pub per_author: Vec<(PublicKey, u64)>,
    /// Events the views skipped.
    pub skipped: Vec<Skipped>,
    /// Bytes on disk, when the backend can tell.
    pub store_bytes: Option<u64>,
    /// Schema version.
    pub schema_version: u32,
    /// View digests.
    pub views: Vec<TableDigest>,
}

/// One problem `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Where: an author and seq, a feed, or the store.
    pub location: String,
    /// What.
    pub error: String,
}

/// What `verify` found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Events checked.
    pub events_checked: u64,
    /// Feeds.
    pub feeds: usize,
    /// Problems.
    pub failures: Vec<Failure>,
}

/// Batches of events being verified on rayon's pool, their results kept by batch number.
struct Batches {
    tx: std::sync::mpsc::Sender<(usize, u64, Vec<Failure>)>,
    rx: std::sync::mpsc::Receiver<(usize, u64, Vec<Failure>)>,
    sent: usize,
    received: usize,
    checked: u64,
    done: Vec<Option<Vec<Failure>>>,
}

impl Default for Batches {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        Batches {
            tx,
            rx,
            sent: 0,
            received: 0,
            checked: 0,
            done: Vec::new(),
        }
    }
}

impl Batches {
    /// Starts verifying `batch` (hashes, payload commitments, signatures) on the pool.
    fn send(&mut self, batch: Vec<Event>) {
        let (tx, n) = (self.tx.clone(), self.sent);
        self.sent += 1;
        self.done.push(None);
        rayon::spawn(move || {
            let len = batch.len() as u64;
            // Pushed one by one: a `collect` here would reuse the batch's allocation (in-place
            // iteration) and keep hundreds of KiB per batch alive in `done` until the end.
            let mut failures = Vec::new();
            for r in verify_batch(batch).into_iter().filter_map(|r| r.err()) {
                failures.push(Failure {
                    location: format!("{} seq {}", r.event.header.author, r.event.header.seq),
                    error: r.error.to_string(),
                });
            }
            // The receiver lives until every batch sent has answered.
            let _ = tx.send((n, len, failures));
        });
    }

    /// Waits for one batch to finish.
    fn receive(&mut self) -> Result<()> {
        let (n, len, failures) = self
            .rx
            .recv()
            .map_err(|_| NodeError::VerifyFailed("a verification batch was lost".into()))?;
        if let Some(slot) = self.done.get_mut(n) {
            *slot = Some(failures);
        }
        self.received += 1;
        self.checked += len;
        Ok(())
    }
}

fn shown_of(event: Option<Event>) -> Shown {
    let Some(e) = event else {
        return Shown {
            missing: true,
            ..Shown::default()
        };
    };
    let Some(p) = &e.payload else {
        return Shown {
            author: Some(e.header.author),
            withheld: true,
            ..Shown::default()
        };
    };
    let v = p.value();
    Shown {
        author: Some(e.header.author),
        text: ["text", "comment"]
            .iter()
            .find_map(|f| v.get(*f).and_then(Value::as_str).map(str::to_string)),
        circle: v
            .pointer("/audience/circle")
            .and_then(Value::as_str)
            .map(str::to_string),
        withheld: false,
        missing: false,
    }
}

impl Node {
    /// Names for keys.
    pub fn names(&self) -> Result<Names<'_>> {
        Ok(Names {
            store: &*self.store,
            local: self
                .store
                .authors()?
                .into_iter()
                .map(|a| (a.public_key, a.name))
                .collect(),
            seen: RefCell::default(),
        })
    }

    /// What the event `hash` shows.
    pub fn shown(&self, hash: &Hash) -> Result<Shown> {
        Ok(shown_of(self.store.get(hash)?))
    }

    /// A local author (`None`: the default one).
    pub fn author(&self, name: Option<&str>) -> Result<LocalAuthor> {
        Ok(self.store.author(name)?)
    }

    /// A page of the feed: posts and reshares of followed authors (or of `author` alone),
    /// newest first, strictly before the cursor `before` (as printed by a previous page).
    pub fn feed(
        &self,
        author: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<FeedPage> {
        let author = author
            .map(|a| self.resolve_author(a, "author"))
            .transpose()?;
        let cursor = before
            .map(|c| c.parse::<Cursor>().map_err(NodeError::invalid))
            .transpose()?;
        let rows = self.store.timeline(author.as_ref(), cursor, limit)?;
        let full = rows.len() == limit;
        let items = rows
            .into_iter()
            .map(|item| {
                Ok(FeedItem {
                    shown: self.shown(&item.hash)?,
                    cursor: Cursor {
                        ts: item.ts,
                        hash: item.hash,
                    },
                    item,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let next = full.then(|| items.last().map(|i| i.cursor)).flatten();
        Ok(FeedPage { items, next })
    }

    /// The thread below an event (a hash or unique prefix).
    pub fn thread(&self, hash: &str) -> Result<Thread> {
        let root = self.resolve_target(hash)?;
        let event = self
            .store
            .get(&root)?
            .ok_or_else(|| NodeError::invalid(format!("unknown event {root}")))?;
        let replies = self
            .store
            .thread(&root)?
            .into_iter()
            .map(|r| {
                let shown = self.shown(&r.hash)?;
                Ok((r, shown))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Thread {
            shown: shown_of(Some(event.clone())),
            root: event,
            likers: self.store.likers(&root)?,
            tags: self.store.tags_of(&root)?,
            reshares: self.store.reshares(&root)?,
            replies,
        })
    }

    /// Events an author starred, most recent first, with what each shows.
    pub fn starred(&self, as_author: Option<&str>) -> Result<(LocalAuthor, Vec<(Hash, Shown)>)> {
        let author = self.store.author(as_author)?;
        let list = self.store.starred(&author.public_key)?;
        let shown = list
            .into_iter()
            .map(|h| Ok((h, self.shown(&h)?)))
            .collect::<Result<_>>()?;
        Ok((author, shown))
    }

    /// An author's circles.
    pub fn circles(&self, as_author: Option<&str>) -> Result<(LocalAuthor, Vec<Circle>)> {
        let author = self.store.author(as_author)?;
        let circles = self.store.circles(&author.public_key)?;
        Ok((author, circles))
    }

    /// Every tag with how many events carry it.
    pub fn tag_counts(&self) -> Result<Vec<(String, u64)>> {
        Ok(self.store.tag_counts()?)
    }

    /// Events carrying `tag`, with what each shows.
    pub fn tagged(&self, tag: &str) -> Result<Vec<(Hash, Shown)>> {
        self.store
            .tagged(tag)?
            .into_iter()
            .map(|h| Ok((h, self.shown(&h)?)))
            .collect()
    }

    /// Event and feed counts.
    pub fn stats(&self) -> Result<LogStats> {
        Ok(self.store.stats()?)
    }

    /// Counts, sizes and view digests.
    pub fn status(&self) -> Result<Status> {
        let stats = self.store.stats()?;
        Ok(Status {
            events: stats.events,
            feeds: stats.feeds,
            follows: self.store.follows()?.len(),
            per_type: self.store.type_counts()?,
            per_author: self
                .store
                .clock()?
                .iter()
                .map(|(k, s)| (*k, s.get()))
                .collect(),
            skipped: self.store.skipped()?,
            store_bytes: self.store.size_on_disk(),
            schema_version: self.store.schema_version()?,
            views: self.store.view_digests()?,
        })
    }

    /// Follows (or unfollows) an author given by local name or key. Returns the key and
    /// whether anything changed.
    pub fn follow(&mut self, author: &str, on: bool) -> Result<(PublicKey, bool)> {
        let key = self.resolve_author(author, "author")?;
        let changed = if on {
            self.store.follow(&key)?
        } else {
            self.store.unfollow(&key)?
        };
        Ok((key, changed))
    }

    /// Recomputes every view from the log: events replayed, seconds, new digests.
    pub fn rebuild_views(&mut self) -> Result<(u64, f64, Vec<TableDigest>)> {
        let t = Instant::now();
        let n = self.store.rebuild_views()?;
        let secs = t.elapsed().as_secs_f64();
        Ok((n, secs, self.store.view_digests()?))
    }

    /// Recomputes the views aside and compares them with the live ones.
    pub fn check_views(&mut self) -> Result<ViewCheck> {
        Ok(self.store.check_views()?)
    }

    /// Visits the log in (feed, seq) order, optionally one author's feed (a local name or key).
    pub fn log(
        &self,
        author: Option<&str>,
        visit: &mut dyn FnMut(Result<Event>) -> ControlFlow<()>,
    ) -> Result<()> {
        let feed = author
            .map(|a| self.resolve_author(a, "author"))
            .transpose()?;
        self.store.for_each_event(feed.as_ref(), &mut |item| {
            visit(item.map_err(NodeError::from))
        })?;
        Ok(())
    }

    /// Re-verifies every stored event (hash, payload commitment, signature) and every chain
    /// link, and that each feed's recorded head is where its log ends. `progress` gets the
    /// number of events checked so far. The log is read in one pass (chain links checked as
    /// it is read); signatures are verified in batches of 1024 on all cores, a few batches in
    /// flight at a time; failures are reported in log order: for each batch, what reading it
    /// found, then its events' own failures.
    pub fn verify(&self, progress: &mut dyn FnMut(u64)) -> Result<VerifyReport> {
        const BATCH: usize = 1024;
        let in_flight = rayon::current_num_threads().max(1) * 4;
        let mut pool = Batches::default();
        // Per batch: what reading it found (chain links, store errors).
        let mut read: Vec<Vec<Failure>> = vec![Vec::new()];
        let mut chain = ChainWalk::default();
        let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
        let mut ends: HashMap<PublicKey, u64> = HashMap::new();
        let mut stalled = None;
        self.store.for_each_event(None, &mut |item| {
            match item {
                Ok(ev) => {
                    ends.insert(ev.header.author, ev.header.seq.get());
                    if let Some(problem) = chain.next(&ev.header, &ev.hash) {
                        if let Some(r) = read.last_mut() {
                            r.push(Failure {
                                location: format!("{} seq {}", ev.header.author, ev.header.seq),
                                error: problem,
                            });
                        }
                    }
                    batch.push(ev);
                    if batch.len() == BATCH {
                        pool.send(std::mem::replace(&mut batch, Vec::with_capacity(BATCH)));
                        read.push(Vec::new());
                        while pool.sent - pool.received >= in_flight {
                            if let Err(e) = pool.receive() {
                                stalled = Some(e);
                                return ControlFlow::Break(());
                            }
                            progress(pool.checked);
                        }
                    }
                }
                Err(e) => {
                    if let Some(r) = read.last_mut() {
                        r.push(Failure {
                            location: "store".into(),
                            error: e.to_string(),
                        });
                    }
                }
            }
            ControlFlow::Continue(())
        })?;
        if let Some(e) = stalled {
            return Err(e);
        }
        pool.send(batch);
        while pool.received < pool.sent {
            pool.receive()?;
            progress(pool.checked);
        }
        let checked = pool.checked;
        let mut failures: Vec<Failure> = Vec::new();
        let mut signed = pool.done.into_iter();
        for found in read {
            failures.extend(found);
            failures.extend(signed.next().flatten().unwrap_or_default());
        }
        let clock = self.store.clock()?;
        for (feed, seq) in clock.iter() {
            let actual = ends.get(feed).copied().unwrap_or(0);
            if actual != seq.get() {
                failures.push(Failure {
                    location: format!("{feed}"),
                    error: format!("recorded head seq {seq} but the log ends at seq {actual}"),
                });
            }
        }
        Ok(VerifyReport {
            events_checked: checked,
            feeds: clock.len(),
            failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InitRequest, KeySession, NoPassphrase, Protection, StoreLocation};
    use rhizome_core::event::{sign, EventType, Payload};
    use rhizome_core::{SecretKey, Seq, Timestamp};

    /// `verify` as it was before it used every core: one batch at a time, in log order.
    fn verify_sequential(node: &Node) -> VerifyReport {
        const BATCH: usize = 1024;
        let mut failures: Vec<Failure> = Vec::new();
        let mut chain = ChainWalk::default();
        let mut batch: Vec<Event> = Vec::with_capacity(BATCH);
        let mut checked = 0u64;
        let mut ends: HashMap<PublicKey, u64> = HashMap::new();
        let flush = |batch: &mut Vec<Event>, failures: &mut Vec<Failure>, checked: &mut u64| {
            *checked += batch.len() as u64;
            for r in verify_batch(std::mem::take(batch)) {
                if let Err(r) = r {
                    failures.push(Failure {
                        location: format!("{} seq {}", r.event.header.author, r.event.header.seq),
                        error: r.error.to_string(),
                    });
                }
            }
        };
        node.store
            .for_each_event(None, &mut |item| {
                match item {
                    Ok(ev) => {
                        ends.insert(ev.header.author, ev.header.seq.get());
                        if let Some(problem) = chain.next(&ev.header, &ev.hash) {
                            failures.push(Failure {
                                location: format!("{} seq {}", ev.header.author, ev.header.seq),
                                error: problem,
                            });
                        }
                        batch.push(ev);
                        if batch.len() == BATCH {
                            flush(&mut batch, &mut failures, &mut checked);
                        }
                    }
                    Err(e) => failures.push(Failure {
                        location: "store".into(),
                        error: e.to_string(),
                    }),
                }
                ControlFlow::Continue(())
            })
            .unwrap();
        flush(&mut batch, &mut failures, &mut checked);
        let clock = node.store.clock().unwrap();
        for (feed, seq) in clock.iter() {
            let actual = ends.get(feed).copied().unwrap_or(0);
            if actual != seq.get() {
                failures.push(Failure {
                    location: format!("{feed}"),
                    error: format!("recorded head seq {seq} but the log ends at seq {actual}"),
                });
            }
        }
        VerifyReport {
            events_checked: checked,
            feeds: clock.len(),
            failures,
        }
    }

    fn report_json(r: &VerifyReport) -> serde_json::Value {
        serde_json::json!({"checked": r.events_checked, "feeds": r.feeds, "failures": r.failures})
    }

    /// Three feeds of 1,500 events (five batches of 1024), damaged in many batches: bad
    /// signatures, altered payloads, a broken link, a missing event. The parallel `verify`
    /// reports exactly what the sequential one did, in the same order.
    #[test]
    fn parallel_verify_reports_what_the_sequential_one_did_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let request = InitRequest {
            name: "test".into(),
            author: None,
            protection: Protection::Plain,
            publish_profile: false,
        };
        let location = StoreLocation::Sqlite {
            home: dir.path().to_path_buf(),
        };
        let (mut node, _) = Node::init(location, KeySession::new(NoPassphrase), &request).unwrap();
        for n in 1..=3u8 {
            let key = SecretKey::from_seed(&[n; 32]);
            let mut prev = None;
            let mut events = Vec::new();
            for seq in 1..=1500u64 {
                let ev = sign(
                    &key,
                    Seq::new(seq).unwrap(),
                    prev,
                    EventType::new("POST").unwrap(),
                    Timestamp::new(1_700_000_000_000 + seq).unwrap(),
                    Payload::new(serde_json::json!({"text": format!("{n} {seq}")})).unwrap(),
                )
                .unwrap();
                prev = Some(ev.hash);
                events.push(ev);
            }
            node.store.append(&events).unwrap();
        }
        let clean = node.verify(&mut |_| {}).unwrap();
        let own = clean.events_checked;
        assert!(clean.failures.is_empty(), "{:?}", clean.failures);
        assert!(own >= 4500);

        let db = rusqlite::Connection::open(dir.path().join(crate::DB_FILE)).unwrap();
        db.execute_batch(
            "UPDATE events SET sig = randomblob(64) WHERE (id & 4294967295) % 211 = 5;
             UPDATE events SET payload = CAST('{\"text\":\"forged\"}' AS BLOB)
                 WHERE (id & 4294967295) % 307 = 7;
             UPDATE events SET prev = randomblob(32) WHERE (id & 4294967295) = 1200;
             DELETE FROM events WHERE id IN (SELECT MAX(id) - 700 FROM events);",
        )
        .unwrap();
        drop(db);
        let mut seen = Vec::new();
        let parallel = node.verify(&mut |n| seen.push(n)).unwrap();
        let sequential = verify_sequential(&node);
        assert_eq!(report_json(&parallel), report_json(&sequential));
        assert_eq!(parallel.events_checked, own - 1);
        assert!(parallel.failures.len() > 40, "{:?}", parallel.failures);
        for what in ["signature", "payload", "prev"] {
            assert!(
                parallel.failures.iter().any(|f| f.error.contains(what)),
                "no {what} failure: {:?}",
                parallel.failures
            );
        }
        assert_eq!(seen.last(), Some(&parallel.events_checked));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    }
}
