//! Every command that appends an event: build the payload, check it, sign, append.

use anyhow::Result;
use rhizome_core::event::{self, EventType, Payload};
use rhizome_core::privacy;
use rhizome_core::schema::{self, Kind};
use rhizome_core::{canonical, Hash, PublicKey, SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_store::{Outcome, SqliteStore, Store};
use serde_json::{json, Value};
use std::path::Path;

use crate::cli::{CircleCmd, Command, PostArgs};
use crate::exit::{fail, INVALID_INPUT};
use crate::{home, now_ms};

/// How many times to re-read the head when another process appended first.
const APPEND_RETRIES: usize = 100;

/// Resolves a full hash or a unique prefix (8+ hex characters) to a stored event's hash.
pub fn resolve_target(store: &SqliteStore, text: &str) -> Result<Hash> {
    let t = text.trim();
    if t.len() < 8 || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(fail(
            INVALID_INPUT,
            format!("{text:?} is not an event hash or a prefix of 8 to 64 hex characters"),
        ));
    }
    let t = t.to_ascii_lowercase();
    let found = store.find_by_prefix(&t, 2)?;
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(fail(
            INVALID_INPUT,
            format!("unknown target: no stored event has a hash starting with {t}"),
        )),
        _ => Err(fail(
            INVALID_INPUT,
            format!("ambiguous target: several events start with {t}; give more characters"),
        )),
    }
}

/// Resolves a circle member: a local author name or a public key.
fn resolve_member(store: &SqliteStore, text: &str) -> Result<PublicKey> {
    if let Some(a) = store.authors()?.into_iter().find(|a| a.name == text) {
        return Ok(a.public_key);
    }
    text.parse::<PublicKey>().map_err(|e| {
        fail(
            INVALID_INPUT,
            format!("member {text:?} is neither a local author nor a valid public key: {e}"),
        )
    })
}

/// The (type, payload) a writing command asks for, with targets resolved.
fn build(store: &SqliteStore, cmd: &Command) -> Result<(String, Value)> {
    let target = |t: &str| -> Result<String> { Ok(resolve_target(store, t)?.to_hex()) };
    Ok(match cmd {
        Command::Post(PostArgs {
            text,
            lang,
            reply_to,
            quote,
            ..
        }) => {
            let mut p = json!({ "text": text });
            if let Some(l) = lang {
                p["lang"] = json!(l);
            }
            if let Some(r) = reply_to {
                p["reply_to"] = json!(target(r)?);
            }
            if let Some(q) = quote {
                p["quote"] = json!(target(q)?);
            }
            ("POST".into(), p)
        }
        Command::Comment {
            target: t, text, ..
        } => (
            "COMMENT".into(),
            json!({"target": target(t)?, "text": text}),
        ),
        Command::Like { target: t, .. } => ("LIKE".into(), json!({"target": target(t)?})),
        Command::Reshare {
            target: t, text, ..
        } => {
            let mut p = json!({"target": target(t)?});
            if let Some(c) = text {
                p["comment"] = json!(c);
            }
            ("RESHARE".into(), p)
        }
        Command::Star { target: t, .. } => (
            "STAR".into(),
            json!({"target": target(t)?, "starred": true}),
        ),
        Command::Unstar { target: t, .. } => (
            "STAR".into(),
            json!({"target": target(t)?, "starred": false}),
        ),
        Command::Tag { target: t, tag, .. } => {
            ("TAG_ADD".into(), json!({"target": target(t)?, "tag": tag}))
        }
        Command::Circle(c) => {
            let members = |ms: &[String]| -> Result<Vec<String>> {
                ms.iter()
                    .map(|m| Ok(resolve_member(store, m)?.to_hex()))
                    .collect()
            };
            let p = match c {
                CircleCmd::Create { name, members: ms } if ms.is_empty() => {
                    json!({"circle": name, "op": "create"})
                }
                CircleCmd::Create { name, members: ms } => {
                    json!({"circle": name, "op": "create", "members": members(ms)?})
                }
                CircleCmd::Add { name, members: ms } => {
                    json!({"circle": name, "op": "add", "members": members(ms)?})
                }
                CircleCmd::Remove { name, members: ms } => {
                    json!({"circle": name, "op": "remove", "members": members(ms)?})
                }
                CircleCmd::Rename { name, new_name } => {
                    json!({"circle": name, "op": "rename", "new_name": new_name})
                }
            };
            ("CIRCLE_UPDATE".into(), p)
        }
        Command::Profile { name, about } => (
            "PROFILE".into(),
            profile_payload(name, about.as_deref())?.value().clone(),
        ),
        Command::Append { kind, payload } => {
            let value = canonical::parse_strict(payload.as_bytes())
                .map_err(|e| fail(INVALID_INPUT, format!("--payload is not valid JSON: {e}")))?;
            check_targets(store, kind, &value)?;
            (kind.clone(), value)
        }
        other => anyhow::bail!("{other:?} does not write an event"),
    })
}

/// The circle a writing command is limited to, if any.
fn circle_of(cmd: &Command) -> Option<&str> {
    let limit = match cmd {
        Command::Post(PostArgs { limit, .. })
        | Command::Comment { limit, .. }
        | Command::Like { limit, .. }
        | Command::Reshare { limit, .. }
        | Command::Star { limit, .. }
        | Command::Unstar { limit, .. }
        | Command::Tag { limit, .. } => limit,
        _ => return None,
    };
    limit.circle.as_deref()
}

/// The `audience` member limiting a payload to one of `author`'s circles (PROTOCOL 9.1): its
/// members as they are now, so every instance that holds the payload applies the same list.
fn audience(store: &SqliteStore, author: &PublicKey, circle: &str) -> Result<Value> {
    let circles = store.circles(author)?;
    let Some(c) = circles.iter().find(|c| c.name == circle) else {
        let names: Vec<&str> = circles.iter().map(|c| c.name.as_str()).collect();
        return Err(fail(
            INVALID_INPUT,
            format!(
                "no circle named {circle:?} (this author's circles: {}); create it with `rhizome circle create {circle} MEMBER...`",
                if names.is_empty() { "none".into() } else { names.join(", ") }
            ),
        ));
    };
    let mut members: Vec<String> = c.members.iter().map(PublicKey::to_hex).collect();
    members.sort();
    Ok(json!({"circle": c.name, "members": members}))
}

/// The payload a local author signs. A limited one (an `audience` object, PROTOCOL 9.1) gets a
/// fresh random salt and its padding (9.4), so that its withheld header gives nothing away; an
/// `audience` that already has a `salt` (an `append` that brings its own) is left as written.
fn payload_to_sign(value: Value) -> Result<Payload> {
    let limited = value
        .get("audience")
        .and_then(Value::as_object)
        .is_some_and(|a| !a.contains_key("salt"));
    if limited {
        privacy::protect(value, &home::random()?).map_err(|e| fail(INVALID_INPUT, e.to_string()))
    } else {
        Payload::new(value).map_err(|e| fail(INVALID_INPUT, e.to_string()))
    }
}

/// The payload of a PROFILE event (PROTOCOL 5), checked against its schema, with a message that
/// says which rule a name or an about text breaks.
pub fn profile_payload(name: &str, about: Option<&str>) -> Result<Payload> {
    let mut value = json!({ "name": name });
    if let Some(a) = about {
        value["about"] = json!(a);
    }
    if let Err(e) = schema::check("PROFILE", &value) {
        let problem = if e.errors.iter().any(|x| x.starts_with("/name")) {
            format!("profile name {name:?} must be 1-64 characters, without control or invisible formatting characters, and without spaces at either end")
        } else if e.errors.iter().any(|x| x.starts_with("/about")) {
            "profile about text must be 1-1000 characters".to_string()
        } else {
            e.to_string()
        };
        return Err(fail(INVALID_INPUT, problem));
    }
    Payload::new(value).map_err(|e| fail(INVALID_INPUT, e.to_string()))
}

/// Publishes a profile as the next event of `secret`'s feed (for `init`, `author add`).
pub fn publish_profile(
    store: &mut SqliteStore,
    secret: &SecretKey,
    profile: &Payload,
) -> Result<VerifiedEvent> {
    let kind = EventType::new("PROFILE")?;
    let timestamp = Timestamp::new(now_ms()).map_err(|e| anyhow::anyhow!("system clock: {e}"))?;
    append_next(store, secret, &kind, timestamp, profile)
}

/// Signs `payload` as the next event of `secret`'s feed and appends it. When another process
/// appended to the feed first, reads the head again and signs again.
pub fn append_next(
    store: &mut SqliteStore,
    secret: &SecretKey,
    kind: &EventType,
    timestamp: Timestamp,
    payload: &Payload,
) -> Result<VerifiedEvent> {
    let author = secret.public_key();
    for _ in 0..APPEND_RETRIES {
        let (seq, prev) = match store.head(&author)? {
            Some((s, h)) => (s.next(), Some(h)),
            None => (Seq::FIRST, None),
        };
        let ev = event::sign(secret, seq, prev, kind.clone(), timestamp, payload.clone())?;
        if store.append(std::slice::from_ref(&ev))? == [Outcome::Inserted] {
            return Ok(ev);
        }
    }
    Err(anyhow::anyhow!(
        "could not append after {APPEND_RETRIES} attempts: other processes keep writing to this feed"
    ))
}

/// For `append` of a known type: every event the payload points at must be stored.
fn check_targets(store: &SqliteStore, kind: &str, payload: &Value) -> Result<()> {
    if Kind::from_type(kind).is_none() {
        return Ok(());
    }
    for field in ["target", "reply_to", "quote"] {
        if let Some(Value::String(h)) = payload.get(field) {
            if let Ok(hash) = h.parse::<Hash>() {
                if store.get(&hash)?.is_none() {
                    return Err(fail(INVALID_INPUT, format!("unknown target: payload field `{field}` names {h}, which is not stored")));
                }
            }
        }
    }
    if let Some(Value::Array(ms)) = payload.get("members") {
        for m in ms.iter().filter_map(Value::as_str) {
            m.parse::<PublicKey>().map_err(|e| {
                fail(
                    INVALID_INPUT,
                    format!("payload field `members`: {m:?} is not a valid public key: {e}"),
                )
            })?;
        }
    }
    Ok(())
}

/// Runs a writing command end to end.
pub fn run(home_dir: &Path, as_author: Option<&str>, cmd: &Command, json: bool) -> Result<()> {
    let mut store = home::open(home_dir)?;
    let author = store.author(as_author)?;
    let (kind, mut value) = build(&store, cmd)?;
    if let Some(circle) = circle_of(cmd) {
        value["audience"] = audience(&store, &author.public_key, circle)?;
    }
    let kind = EventType::new(&kind).map_err(|e| fail(INVALID_INPUT, e.to_string()))?;
    let payload = payload_to_sign(value)?;
    schema::check(kind.as_str(), payload.value())
        .map_err(|e| fail(INVALID_INPUT, e.to_string()))?;
    let secret = home::unlock_author(&author)?;
    home::declare_host(&mut store, &secret)?;
    let timestamp = Timestamp::new(now_ms()).map_err(|e| anyhow::anyhow!("system clock: {e}"))?;
    let ev = append_next(&mut store, &secret, &kind, timestamp, &payload)?;
    let seq = ev.header.seq;
    if json {
        say!(
            "{}",
            json!({"hash": ev.hash, "author": author.public_key, "seq": seq, "type": kind.as_str()})
        );
    } else {
        say!("{} {} by {} (seq {seq})", kind, ev.hash, author.name);
    }
    Ok(())
}
