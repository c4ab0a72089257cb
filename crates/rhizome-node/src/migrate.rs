//! Migration from an older app: plain records (JSON Lines: users, posts, comments, likes,
//! stars) become signed events of new local authors.
//!
//! Every line is checked before anything is written ([`Node::check_migration`]); the caller
//! decides what to do with bad lines. Each record's id is stored with the event it became, in
//! the same transaction, so a second run (or a run after a crash) adds nothing twice.

use rhizome_core::event::{self, EventType, Payload};
use rhizome_core::{canonical, schema, Hash, PublicKey, SecretKey, Seq, Timestamp};
use rhizome_store::{LocalAuthor, Outcome, Store};
use serde::Serialize;
use serde_json::{json, Value};
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
                "field `kind`: unknown record kind {other:?} (user, post, comment, like, star)"
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
            "field `user`: no user {user:?} earlier in the file"
        ))
    } else if target_ok == Some(false) {
        Some(format!(
            "field `target`: no post or comment {target:?} earlier in the file"
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
pub struct Checked {
    records: Vec<Record>,
    /// Lines that cannot be imported.
    pub bad: Vec<Bad>,
}

impl Checked {
    /// Records that can be imported.
    pub fn records(&self) -> usize {
        self.records.len()
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

/// Reads and checks every line: syntax, fields, and that every reference names a record
/// earlier in the file or one imported before.
fn check_lines(store: &dyn Store, input: &mut dyn BufRead) -> Result<Checked> {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut users: HashSet<String> = HashSet::new();
    let mut events: HashSet<String> = HashSet::new();
    let mut names: HashSet<String> = store.authors()?.into_iter().map(|a| a.name).collect();
    let known = |store: &dyn Store, k: &str| -> Result<bool> { Ok(store.legacy(k)?.is_some()) };
    for (i, line) in input.split(b'\n').enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| NodeError::invalid(format!("line {n}: {e}")))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let rec = match parse_record(&line) {
            Ok(r) => r,
            Err(error) => {
                bad.push(Bad { line: n, error });
                continue;
            }
        };
        let user_ok = |u: &str| -> Result<bool> {
            Ok(users.contains(u) || known(store, &format!("user:{u}"))?)
        };
        let event_ok = |t: &str| -> Result<bool> {
            Ok(events.contains(t) || known(store, &format!("event:{t}"))?)
        };
        let problem = match &rec {
            Record::User { id, name, .. } => {
                if let Err(e) = check_name("field `name`:", name) {
                    Some(e.to_string())
                } else if let Err(e) = crate::write::Draft::profile(name, None) {
                    Some(format!("field `name`: {e}"))
                } else if users.contains(id) {
                    Some(format!("field `id`: user {id:?} appears twice"))
                } else if !known(store, &rec.legacy_key())? && names.contains(name) {
                    Some(format!(
                        "field `name`: a local author named {name:?} already exists"
                    ))
                } else {
                    None
                }
            }
            Record::Post { id, user, text, .. } => check_refs(user_ok(user)?, None, user, "")
                .or_else(|| {
                    events
                        .contains(id)
                        .then(|| format!("field `id`: post or comment id {id:?} appears twice"))
                })
                .or_else(|| text_problem(text)),
            Record::Comment {
                id,
                user,
                target,
                text,
                ..
            } => check_refs(user_ok(user)?, Some(event_ok(target)?), user, target)
                .or_else(|| {
                    events
                        .contains(id)
                        .then(|| format!("field `id`: post or comment id {id:?} appears twice"))
                })
                .or_else(|| text_problem(text)),
            Record::Like { user, target, .. } | Record::Star { user, target, .. } => {
                check_refs(user_ok(user)?, Some(event_ok(target)?), user, target)
            }
        };
        if let Some(error) = problem {
            bad.push(Bad { line: n, error });
            continue;
        }
        match &rec {
            Record::User { id, name, .. } => {
                users.insert(id.clone());
                names.insert(name.clone());
            }
            Record::Post { id, .. } | Record::Comment { id, .. } => {
                events.insert(id.clone());
            }
            _ => {}
        }
        good.push(rec);
    }
    Ok(Checked { records: good, bad })
}

impl Node {
    /// Reads and checks every line of a migration input: syntax, fields, and that every
    /// reference names a record earlier in the input or one imported before. Writes nothing.
    pub fn check_migration(&self, input: &mut dyn BufRead) -> Result<Checked> {
        check_lines(&*self.store, input)
    }

    /// Imports the good records of a checked input (new local authors, sealed under the
    /// instance's passphrase, and their events). `progress` gets records done.
    pub fn migrate(
        &mut self,
        checked: &Checked,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Migrated> {
        let store = &mut *self.store;
        let identity = store.identity()?;
        let keeper = self.keys.keeper_for(&identity.secret)?;
        keeper.open(&identity.secret, &identity.public_key)?;
        let mut keys: HashMap<String, SecretKey> = HashMap::new();
        let (mut users, mut events, mut already, mut profiles) = (0u64, 0u64, 0u64, 0u64);
        for (done, rec) in checked.records.iter().enumerate() {
            progress(done as u64 + 1);
            let legacy = rec.legacy_key();
            if let Record::User { id, name, at } = rec {
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
                continue;
            }
            if store.legacy(&legacy)?.is_some() {
                already += 1;
                continue;
            }
            let (user, kind, payload, at) = match rec {
                Record::User { .. } => continue,
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
        }
        Ok(Migrated {
            records: checked.records.len(),
            users_created: users,
            events_created: events,
            already_imported: already,
            profiles_created: profiles,
        })
    }
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
