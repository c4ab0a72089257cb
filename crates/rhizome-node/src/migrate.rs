//! Migration from an older app: plain records (JSON Lines: users, posts, comments, likes,
//! stars) become signed events of new local authors.
//!
//! Every line is checked before anything is written ([`Node::check_migration`]); the caller
//! decides what to do with bad lines. Each record's id is stored with the event it became, in
//! the same transaction, so a second run (or a run after a crash) adds nothing twice.
//!
//! Memory does not grow with the input's bytes: lines are read one at a time, at most
//! [`MAX_RECORD_LINE`] bytes each (a longer one is a bad line, skipped unread); the check keeps
//! a 16-byte digest of each record id (to check references) and the first [`MAX_BAD_LISTED`]
//! bad lines; [`Node::migrate`] reads the input again and checks each line again as it imports
//! it, instead of holding the records. Errors quote at most [`QUOTE_CHARS`] characters of a
//! value from the input, escaped.

use rhizome_core::event::{self, EventType, Payload};
use rhizome_core::{canonical, schema, Hash, PublicKey, SecretKey, Seq, Timestamp};
use rhizome_store::{LocalAuthor, Outcome, Store};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use crate::keys::Keeper;
use crate::{check_name, keys, now_ms, Node, NodeError, Result};

/// One checked record.
enum Record {
    User {
        id: String,
        name: String,
        at: Option<u64>,
    },
    Post {
        id: String,
        user: String,
        text: String,
        at: Option<u64>,
    },
    Comment {
        id: String,
        user: String,
        target: String,
        text: String,
        at: Option<u64>,
    },
    Like {
        user: String,
        target: String,
        at: Option<u64>,
    },
    Star {
        user: String,
        target: String,
        at: Option<u64>,
    },
}

impl Record {
    /// The key under which the record's result is remembered.
    fn legacy_key(&self) -> String {
        match self {
            Record::User { id, .. } => format!("user:{id}"),
            Record::Post { id, .. } => format!("event:{id}"),
            Record::Comment { id, .. } => format!("event:{id}"),
            Record::Like { user, target, .. } => format!("like:{user}:{target}"),
            Record::Star { user, target, .. } => format!("star:{user}:{target}"),
        }
    }
}

/// Longest record line read: a post of 10,000 characters is at most about 60 KB of JSON.
pub const MAX_RECORD_LINE: usize = 1 << 20;
/// Most good records in one input: their ids are kept (16 bytes each, in hash sets) to check
/// references, which keeps the check under 256 MB. Split a larger file: each part finds the
/// records of the parts imported before it in the store.
pub const MAX_RECORDS: usize = 4_000_000;
/// Bad lines listed with their error (all are counted).
pub const MAX_BAD_LISTED: usize = 1000;
/// Most characters of a value from the input quoted in an error.
pub const QUOTE_CHARS: usize = 80;
/// Longest error text kept for a line.
const MAX_ERROR_CHARS: usize = 300;

/// A value from the input as an error quotes it: escaped (Rust's `{:?}`), at most
/// [`QUOTE_CHARS`] characters of it, then `…` when it was longer.
pub fn quote(value: &str) -> String {
    if value.chars().count() <= QUOTE_CHARS {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(QUOTE_CHARS).collect();
    format!("{head:?}…")
}

fn parse_record(line: &[u8]) -> Result<Record, String> {
    let v = canonical::parse_strict(line).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(m) = v else {
        return Err("a record must be a JSON object".into());
    };
    let s = |f: &str| -> Result<String, String> {
        match m.get(f) {
            Some(Value::String(x)) if !x.is_empty() => Ok(x.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(_) => Err(format!("field `{f}` must be a non-empty string")),
            None => Err(format!("missing field `{f}`")),
        }
    };
    let at = match m.get("at") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|t| *t <= rhizome_core::ids::MAX_SAFE_INTEGER)
                .ok_or(
                    "field `at` must be milliseconds since the epoch (a non-negative integer)",
                )?,
        ),
    };
    let kind = s("kind")?;
    Ok(match kind.as_str() {
        "user" => Record::User {
            id: s("id")?,
            name: s("name")?,
            at,
        },
        "post" => Record::Post {
            id: s("id")?,
            user: s("user")?,
            text: s("text")?,
            at,
        },
        "comment" => Record::Comment {
            id: s("id")?,
            user: s("user")?,
            target: s("target")?,
            text: s("text")?,
            at,
        },
        "like" => Record::Like {
            user: s("user")?,
            target: s("target")?,
            at,
        },
        "star" => Record::Star {
            user: s("user")?,
            target: s("target")?,
            at,
        },
        other => {
            return Err(format!(
                "field `kind`: unknown record kind {} (user, post, comment, like, star)",
                quote(other)
            ))
        }
    })
}

/// What is wrong with a post or comment text, by the POST schema (same rule as COMMENT).
fn text_problem(text: &str) -> Option<String> {
    schema::check("POST", &json!({ "text": text }))
        .err()
        .map(|e| format!("field `text`: {}", e.errors.join("; ")))
}

/// Names a dangling `user` or `target` reference.
fn check_refs(user_ok: bool, target_ok: Option<bool>, user: &str, target: &str) -> Option<String> {
    if !user_ok {
        Some(format!(
            "field `user`: no user {} earlier in the file",
            quote(user)
        ))
    } else if target_ok == Some(false) {
        Some(format!(
            "field `target`: no post or comment {} earlier in the file",
            quote(target)
        ))
    } else {
        None
    }
}

/// A line that cannot be imported.
#[derive(Debug, Clone, Serialize)]
pub struct Bad {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub error: String,
}

/// A migration input, checked.
#[derive(Debug, Clone)]
pub struct Checked {
    records: usize,
    /// The first [`MAX_BAD_LISTED`] lines that cannot be imported.
    pub bad: Vec<Bad>,
    /// All lines that cannot be imported.
    pub bad_total: u64,
}

impl Checked {
    /// Records that can be imported.
    pub fn records(&self) -> usize {
        self.records
    }
}

/// What a migration did.
#[derive(Debug, Clone, Serialize)]
pub struct Migrated {
    /// Records read (good ones).
    pub records: usize,
    /// Local authors created.
    pub users_created: u64,
    /// Events created.
    pub events_created: u64,
    /// Records imported by an earlier run.
    pub already_imported: u64,
    /// PROFILE events published for users (once per user, also for users an earlier version
    /// imported without one).
    pub profiles_created: u64,
}

/// One line of the input, at most `max` bytes kept.
enum Read {
    Line(Vec<u8>),
    /// Longer than `max`: its length, and its first bytes (to quote).
    TooLong(u64, Vec<u8>),
}

/// Reads the next line of `input` (line feed removed), keeping at most `max` bytes of it.
fn read_line(input: &mut dyn BufRead, max: usize) -> std::io::Result<Read> {
    let mut line = Vec::new();
    let mut len: u64 = 0;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let body = &chunk[..if done { take - 1 } else { take }];
        len += body.len() as u64;
        // Past `max`, only the start is kept (to quote); the rest is skipped unread.
        let room = if len > max as u64 {
            4 * QUOTE_CHARS
        } else {
            max
        };
        let keep = room.saturating_sub(line.len()).min(body.len());
        line.extend_from_slice(&body[..keep]);
        input.consume(take);
        if done {
            break;
        }
    }
    Ok(if len > max as u64 {
        Read::TooLong(len, line)
    } else {
        Read::Line(line)
    })
}

/// The 16-byte digest a record id is remembered by (ids are text of any length).
fn id_key(space: &str, id: &str) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update(space.as_bytes());
    h.update([0]);
    h.update(id.as_bytes());
    let d: [u8; 32] = h.finalize().into();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// What the check remembers of the lines before: the good records' ids and user names.
struct Checker {
    users: HashSet<[u8; 16]>,
    events: HashSet<[u8; 16]>,
    names: HashSet<[u8; 16]>,
    good: usize,
}

impl Checker {
    fn new(store: &dyn Store) -> Result<Self> {
        Ok(Self {
            users: HashSet::new(),
            events: HashSet::new(),
            names: store
                .authors()?
                .iter()
                .map(|a| id_key("name", &a.name))
                .collect(),
            good: 0,
        })
    }

    /// Checks one line (number `n`): syntax, fields, and that every reference names a
    /// record earlier in the input or one imported before. The inner error is the bad line's.
    fn check(
        &mut self,
        store: &dyn Store,
        n: usize,
        read: Read,
    ) -> Result<std::result::Result<Option<Record>, Bad>> {
        let bad = |error: String| {
            Ok(Err(Bad {
                line: n,
                error: schema::clip_middle(&error, MAX_ERROR_CHARS),
            }))
        };
        let line = match read {
            Read::TooLong(len, start) => {
                return bad(format!(
                    "longer than {MAX_RECORD_LINE} bytes ({len}), starts with {}",
                    quote(&String::from_utf8_lossy(&start))
                ))
            }
            Read::Line(line) => line,
        };
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(Ok(None));
        }
        let rec = match parse_record(&line) {
            Ok(r) => r,
            Err(error) => return bad(error),
        };
        let known = |k: &str| -> Result<bool> { Ok(store.legacy(k)?.is_some()) };
        let user_ok = |u: &str| -> Result<bool> {
            Ok(self.users.contains(&id_key("user", u)) || known(&format!("user:{u}"))?)
        };
        let event_ok = |t: &str| -> Result<bool> {
            Ok(self.events.contains(&id_key("event", t)) || known(&format!("event:{t}"))?)
        };
        let event_twice = |id: &str| {
            self.events
                .contains(&id_key("event", id))
                .then(|| format!("field `id`: post or comment id {} appears twice", quote(id)))
        };
        let problem = match &rec {
            Record::User { id, name, .. } => {
                if let Err(e) = check_name("field `name`:", name) {
                    Some(match e {
                        NodeError::Invalid(_) => format!(
                            "field `name`: {} must be 1-64 characters, without control characters or surrounding spaces",
                            quote(name)
                        ),
                        other => other.to_string(),
                    })
                } else if crate::write::Draft::profile(name, None).is_err() {
                    Some(format!(
                        "field `name`: {} cannot be a profile name (no control or invisible formatting characters)",
                        quote(name)
                    ))
                } else if self.users.contains(&id_key("user", id)) {
                    Some(format!("field `id`: user {} appears twice", quote(id)))
                } else if !known(&rec.legacy_key())? && self.names.contains(&id_key("name", name)) {
                    Some(format!(
                        "field `name`: a local author named {} already exists",
                        quote(name)
                    ))
                } else {
                    None
                }
            }
            Record::Post { id, user, text, .. } => check_refs(user_ok(user)?, None, user, "")
                .or_else(|| event_twice(id))
                .or_else(|| text_problem(text)),
            Record::Comment {
                id,
                user,
                target,
                text,
                ..
            } => check_refs(user_ok(user)?, Some(event_ok(target)?), user, target)
                .or_else(|| event_twice(id))
                .or_else(|| text_problem(text)),
            Record::Like { user, target, .. } | Record::Star { user, target, .. } => {
                check_refs(user_ok(user)?, Some(event_ok(target)?), user, target)
            }
        };
        if let Some(error) = problem {
            return bad(error);
        }
        if self.good >= MAX_RECORDS {
            return Err(NodeError::invalid(format!(
                "more than {MAX_RECORDS} records: split the file (each part finds the records of the parts imported before it)"
            )));
        }
        match &rec {
            Record::User { id, name, .. } => {
                self.users.insert(id_key("user", id));
                self.names.insert(id_key("name", name));
            }
            Record::Post { id, .. } | Record::Comment { id, .. } => {
                self.events.insert(id_key("event", id));
            }
            _ => {}
        }
        self.good += 1;
        Ok(Ok(Some(rec)))
    }
}

/// Reads every line of `input`, one at a time, checks it, and hands each good record to
/// `good`; returns the bad lines.
fn each_record(
    store: &mut dyn Store,
    input: &mut dyn BufRead,
    good: &mut dyn FnMut(&mut dyn Store, Record) -> Result<()>,
) -> Result<Checked> {
    let mut checker = Checker::new(store)?;
    let mut bad = Vec::new();
    let mut bad_total = 0;
    let mut n = 0;
    loop {
        if input
            .fill_buf()
            .map_err(|e| NodeError::invalid(format!("line {}: {e}", n + 1)))?
            .is_empty()
        {
            break;
        }
        n += 1;
        let read = read_line(input, MAX_RECORD_LINE)
            .map_err(|e| NodeError::invalid(format!("line {n}: {e}")))?;
        match checker.check(&*store, n, read)? {
            Ok(Some(rec)) => good(store, rec)?,
            Ok(None) => {}
            Err(b) => {
                bad_total += 1;
                if bad.len() < MAX_BAD_LISTED {
                    bad.push(b);
                }
            }
        }
    }
    Ok(Checked {
        records: checker.good,
        bad,
        bad_total,
    })
}

impl Node {
    /// Reads and checks every line of a migration input: syntax, fields, and that every
    /// reference names a record earlier in the input or one imported before. Writes nothing.
    pub fn check_migration(&mut self, input: &mut dyn BufRead) -> Result<Checked> {
        each_record(&mut *self.store, input, &mut |_, _| Ok(()))
    }

    /// Imports the good records of an input checked by [`Node::check_migration`] (new local
    /// authors, sealed under the instance's passphrase, and their events), reading `input`
    /// again from its start and checking each line again as it goes; a line that checks
    /// differently than the first time (the file changed) stops it with an error. `progress`
    /// gets records done.
    pub fn migrate(
        &mut self,
        checked: &Checked,
        input: &mut dyn BufRead,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Migrated> {
        let identity = self.store.identity()?;
        let keeper = self.keys.keeper_for(&identity.secret)?;
        keeper.open(&identity.secret, &identity.public_key)?;
        let mut keys: HashMap<String, SecretKey> = HashMap::new();
        let (mut users, mut events, mut already, mut profiles) = (0u64, 0u64, 0u64, 0u64);
        let mut done = 0u64;
        let mut import = |store: &mut dyn Store, rec: Record| -> Result<()> {
            done += 1;
            progress(done);
            if done > checked.records as u64 {
                return Err(changed());
            }
            let legacy = rec.legacy_key();
            if let Record::User { id, name, at } = &rec {
                if store.legacy(&legacy)?.is_some() {
                    already += 1;
                } else {
                    let key = keys::new_secret()?;
                    let author = LocalAuthor {
                        name: name.clone(),
                        public_key: key.public_key(),
                        secret: keeper.keep(&key)?,
                        is_default: false,
                    };
                    store.add_author_legacy(&author, &legacy)?;
                    keys.insert(id.clone(), key);
                    users += 1;
                }
                // The name others see; also for users imported by a version without profiles.
                let profile = format!("profile:{id}");
                if store.legacy(&profile)?.is_none() {
                    let secret = secret_of(store, &keeper, &mut keys, id)?;
                    let payload = crate::write::Draft::profile(name, None)?.payload;
                    append_record(store, &secret, "PROFILE", *at, payload, &profile)?;
                    profiles += 1;
                }
                return Ok(());
            }
            if store.legacy(&legacy)?.is_some() {
                already += 1;
                return Ok(());
            }
            let (user, kind, payload, at) = match &rec {
                Record::User { .. } => return Ok(()),
                Record::Post { user, text, at, .. } => (user, "POST", json!({"text": text}), at),
                Record::Comment {
                    user,
                    target,
                    text,
                    at,
                    ..
                } => (
                    user,
                    "COMMENT",
                    json!({"target": target_hash(store, target)?, "text": text}),
                    at,
                ),
                Record::Like { user, target, at } => (
                    user,
                    "LIKE",
                    json!({"target": target_hash(store, target)?}),
                    at,
                ),
                Record::Star { user, target, at } => (
                    user,
                    "STAR",
                    json!({"target": target_hash(store, target)?, "starred": true}),
                    at,
                ),
            };
            let secret = secret_of(store, &keeper, &mut keys, user)?;
            append_record(store, &secret, kind, *at, payload, &legacy)?;
            events += 1;
            Ok(())
        };
        let again = each_record(&mut *self.store, input, &mut import)?;
        if again.records != checked.records || again.bad_total != checked.bad_total {
            return Err(changed());
        }
        Ok(Migrated {
            records: checked.records,
            users_created: users,
            events_created: events,
            already_imported: already,
            profiles_created: profiles,
        })
    }
}

fn changed() -> NodeError {
    NodeError::invalid(
        "the input changed since it was checked; run the migration again (what was imported stays, and is not imported twice)",
    )
}

/// The key of the author made for `user`, unlocked once per run.
fn secret_of(
    store: &dyn Store,
    keeper: &Keeper,
    keys: &mut HashMap<String, SecretKey>,
    user: &str,
) -> Result<SecretKey> {
    if let Some(k) = keys.get(user) {
        return Ok(k.clone());
    }
    let k = user_key(store, keeper, user)?;
    keys.insert(user.to_string(), k.clone());
    Ok(k)
}

/// Signs a record's event as the next of its author's feed (at the record's time, or now),
/// checked against its schema, and stores it with the record's id in one transaction.
fn append_record(
    store: &mut dyn Store,
    secret: &SecretKey,
    kind: &str,
    at: Option<u64>,
    payload: Value,
    legacy: &str,
) -> Result<()> {
    let invalid = |e: rhizome_core::EventError| NodeError::invalid(e.to_string());
    let payload = Payload::new(payload).map_err(invalid)?;
    schema::check(kind, payload.value()).map_err(|e| NodeError::invalid(e.to_string()))?;
    let (seq, prev) = match store.head(&secret.public_key())? {
        Some((s, h)) => (s.next(), Some(h)),
        None => (Seq::FIRST, None),
    };
    let ts =
        Timestamp::new(at.unwrap_or_else(now_ms)).map_err(|e| NodeError::invalid(e.to_string()))?;
    let kind = EventType::new(kind).map_err(invalid)?;
    let ev = event::sign(secret, seq, prev, kind, ts, payload).map_err(invalid)?;
    match store.append_legacy(&ev, legacy)? {
        Outcome::Inserted => Ok(()),
        other => Err(NodeError::Io(format!(
            "could not append the event for {legacy}: {other:?}"
        ))),
    }
}

fn target_hash(store: &dyn Store, legacy_id: &str) -> Result<String> {
    let v = store
        .legacy(&format!("event:{legacy_id}"))?
        .ok_or_else(|| NodeError::invalid(format!("record {legacy_id:?} has not been imported")))?;
    Ok(Hash::try_from(&v[..])
        .map_err(|e| NodeError::invalid(e.to_string()))?
        .to_hex())
}

fn user_key(store: &dyn Store, keeper: &Keeper, user: &str) -> Result<SecretKey> {
    let v = store
        .legacy(&format!("user:{user}"))?
        .ok_or_else(|| NodeError::invalid(format!("user {user:?} has not been imported")))?;
    let key = PublicKey::try_from(&v[..]).map_err(|e| NodeError::invalid(e.to_string()))?;
    let author = store
        .authors()?
        .into_iter()
        .find(|a| a.public_key == key)
        .ok_or_else(|| NodeError::invalid(format!("the author made for user {user:?} is gone")))?;
    keeper.open(&author.secret, &author.public_key)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{InitRequest, KeySession, Protection, StoreLocation, Unlock};
    use zeroize::Zeroizing;

    struct NoPassphrase;
    impl Unlock for NoPassphrase {
        fn passphrase(&self, _: bool) -> Result<Zeroizing<String>> {
            Err(NodeError::Passphrase("none in this test".into()))
        }
    }

    fn node(dir: &std::path::Path) -> Node {
        let request = InitRequest {
            name: "test".into(),
            author: None,
            protection: Protection::Plain,
            publish_profile: false,
        };
        let location = StoreLocation::Sqlite {
            home: dir.to_path_buf(),
        };
        Node::init(location, KeySession::new(NoPassphrase), &request)
            .unwrap()
            .0
    }

    /// The import reads its input again and checks it again: an input that is not the one
    /// checked stops with an error (what was imported before it stays, once).
    #[test]
    fn an_input_changed_between_check_and_import_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut node = node(dir.path());
        let checked_text = "{\"kind\":\"user\",\"id\":\"u1\",\"name\":\"alice\"}\n\
                            {\"kind\":\"post\",\"id\":\"p1\",\"user\":\"u1\",\"text\":\"one\"}\n";
        let checked = node.check_migration(&mut checked_text.as_bytes()).unwrap();
        assert_eq!((checked.records(), checked.bad_total), (2, 0));
        // One record more than was checked.
        let grown = format!(
            "{checked_text}{{\"kind\":\"post\",\"id\":\"p2\",\"user\":\"u1\",\"text\":\"two\"}}\n"
        );
        let e = node
            .migrate(&checked, &mut grown.as_bytes(), &mut |_| {})
            .unwrap_err();
        assert!(
            e.to_string().contains("changed since it was checked"),
            "{e}"
        );
        // A good line turned bad: the counts differ at the end.
        let turned = checked_text.replace("\"u1\",\"text\"", "\"u9\",\"text\"");
        let e = node
            .migrate(&checked, &mut turned.as_bytes(), &mut |_| {})
            .unwrap_err();
        assert!(
            e.to_string().contains("changed since it was checked"),
            "{e}"
        );
        // The checked input imports; the stopped run had imported both records before the
        // line it did not expect, and they are not imported twice.
        let done = node
            .migrate(&checked, &mut checked_text.as_bytes(), &mut |_| {})
            .unwrap();
        assert_eq!(done.records, 2);
        assert_eq!(
            (
                done.users_created,
                done.events_created,
                done.profiles_created
            ),
            (0, 0, 0)
        );
        assert_eq!(done.already_imported, 2);
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote("a\"b\n"), "\"a\\\"b\\n\"");
        let q = quote(&"é".repeat(1000));
        assert_eq!(q, format!("{:?}…", "é".repeat(QUOTE_CHARS)));
    }
}
