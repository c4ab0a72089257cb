//! `rhizome migrate --from FILE.jsonl`: records from an older app become signed events.
//!
//! Input: JSON Lines, one plain record per line (format in the README and `migrate --help`).
//! Every line is checked before anything is written; with bad lines nothing changes unless
//! `--skip-bad`. Each record's id is stored with the event it became, in the same
//! transaction, so a second run (or a run after a crash) adds nothing twice. A user's `name`
//! becomes their local author name and a PROFILE event (the name others see), remembered as
//! `profile:<id>` so it too is published once.

use anyhow::Result;
use rhizome_core::event::{self, EventType, Payload};
use rhizome_core::{canonical, schema, Hash, PublicKey, SecretKey, Seq, Timestamp};
use rhizome_store::{LocalAuthor, Outcome, SqliteStore, Store};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::Path;

use crate::exit::{fail, INVALID_INPUT};
use crate::home::{self, Keeper};
use crate::now_ms;

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
struct Bad {
    line: usize,
    error: String,
}

/// Reads and checks every line: syntax, fields, and that every reference names a record
/// earlier in the file or one imported before.
fn check_file(store: &SqliteStore, path: &Path) -> Result<(Vec<Record>, Vec<Bad>)> {
    let file = std::fs::File::open(path).map_err(|e| {
        fail(
            INVALID_INPUT,
            format!("cannot read {}: {e}", path.display()),
        )
    })?;
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut users: HashSet<String> = HashSet::new();
    let mut events: HashSet<String> = HashSet::new();
    let mut names: HashSet<String> = store.authors()?.into_iter().map(|a| a.name).collect();
    let known = |store: &SqliteStore, k: &str| -> Result<bool> { Ok(store.legacy(k)?.is_some()) };
    for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let n = i + 1;
        let line =
            line.map_err(|e| fail(INVALID_INPUT, format!("{}: line {n}: {e}", path.display())))?;
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
                if let Err(e) = crate::identity::check_name("field `name`:", name) {
                    Some(e.to_string())
                } else if let Err(e) = crate::write::profile_payload(name, None) {
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
    Ok((good, bad))
}

/// Runs the migration.
pub fn run(home_dir: &Path, from: &Path, skip_bad: bool, json: bool) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let (records, bad) = check_file(&store, from)?;
    let report_bad = |bad: &[Bad]| {
        for b in bad.iter().take(50) {
            eprintln!("{}: line {}: {}", from.display(), b.line, b.error);
        }
        if bad.len() > 50 {
            eprintln!("... and {} more bad lines", bad.len() - 50);
        }
    };
    if !bad.is_empty() && !skip_bad {
        report_bad(&bad);
        return Err(fail(
            INVALID_INPUT,
            format!(
                "{} bad line(s) in {}; nothing was imported (fix them, or pass --skip-bad)",
                bad.len(),
                from.display()
            ),
        ));
    }
    let identity = store.identity()?;
    let keeper = Keeper::unlock(&identity.secret)?;
    keeper.open(&identity.secret, &identity.public_key)?;

    let bar = crate::progress::bar(records.len() as u64, "migrating");
    let mut keys: HashMap<String, SecretKey> = HashMap::new();
    let (mut users, mut events, mut already, mut profiles) = (0u64, 0u64, 0u64, 0u64);
    for rec in &records {
        bar.inc(1);
        let legacy = rec.legacy_key();
        if let Record::User { id, name, at } = rec {
            if store.legacy(&legacy)?.is_some() {
                already += 1;
            } else {
                let key = home::new_secret()?;
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
            // Also for users imported by a version that did not publish profiles.
            let profile = format!("profile:{id}");
            if store.legacy(&profile)?.is_none() {
                let secret = secret_of(&store, &keeper, &mut keys, id)?;
                let payload = crate::write::profile_payload(name, None)?;
                append_record(&mut store, &secret, "PROFILE", *at, payload, &profile)?;
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
                json!({"target": target_hash(&store, target)?, "text": text}),
                at,
            ),
            Record::Like { user, target, at } => (
                user,
                "LIKE",
                json!({"target": target_hash(&store, target)?}),
                at,
            ),
            Record::Star { user, target, at } => (
                user,
                "STAR",
                json!({"target": target_hash(&store, target)?, "starred": true}),
                at,
            ),
        };
        let secret = secret_of(&store, &keeper, &mut keys, user)?;
        let payload = Payload::new(payload)?;
        schema::check(kind, payload.value()).map_err(|e| fail(INVALID_INPUT, e.to_string()))?;
        append_record(&mut store, &secret, kind, *at, payload, &legacy)?;
        events += 1;
    }
    bar.finish_and_clear();
    if !bad.is_empty() {
        report_bad(&bad);
    }
    if json {
        let bad_list: Vec<_> = bad
            .iter()
            .map(|b| json!({"line": b.line, "error": b.error}))
            .collect();
        say!(
            "{}",
            json!({"records": records.len(), "users_created": users, "events_created": events,
                   "profiles_created": profiles, "already_imported": already, "bad_lines": bad_list})
        );
    } else {
        say!(
            "migrated {}: {users} user(s) and {events} event(s) created, {already} already imported, {} bad line(s) skipped; {profiles} profile(s) published",
            from.display(),
            bad.len()
        );
    }
    Ok(())
}

/// The key of the author made for `user`, unlocked once per run.
fn secret_of(
    store: &SqliteStore,
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

/// Signs a record's event as the next of its author's feed (at the record's time, or now) and
/// stores it with the record's id, in one transaction.
fn append_record(
    store: &mut SqliteStore,
    secret: &SecretKey,
    kind: &str,
    at: Option<u64>,
    payload: Payload,
    legacy: &str,
) -> Result<()> {
    let (seq, prev) = match store.head(&secret.public_key())? {
        Some((s, h)) => (s.next(), Some(h)),
        None => (Seq::FIRST, None),
    };
    let ts = Timestamp::new(at.unwrap_or_else(now_ms))?;
    let ev = event::sign(secret, seq, prev, EventType::new(kind)?, ts, payload)?;
    match store.append_legacy(&ev, legacy)? {
        Outcome::Inserted => Ok(()),
        other => anyhow::bail!("could not append the event for {legacy}: {other:?}"),
    }
}

fn target_hash(store: &SqliteStore, legacy_id: &str) -> Result<String> {
    let v = store
        .legacy(&format!("event:{legacy_id}"))?
        .ok_or_else(|| anyhow::anyhow!("record {legacy_id:?} has not been imported"))?;
    Ok(Hash::try_from(&v[..])?.to_hex())
}

fn user_key(store: &SqliteStore, keeper: &Keeper, user: &str) -> Result<SecretKey> {
    let v = store
        .legacy(&format!("user:{user}"))?
        .ok_or_else(|| anyhow::anyhow!("user {user:?} has not been imported"))?;
    let key = PublicKey::try_from(&v[..])?;
    let author = store
        .authors()?
        .into_iter()
        .find(|a| a.public_key == key)
        .ok_or_else(|| anyhow::anyhow!("the author made for user {user:?} is gone"))?;
    keeper.open(&author.secret, &author.public_key)
}
