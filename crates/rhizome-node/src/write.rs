//! Writing events as a local author: drafts for each event type, resolving what a person
//! typed (hash prefixes, author names), circle audiences, the schema check, signing, and the
//! append that re-reads the head when another process wrote first.

use rhizome_core::event::{self, EventType, Payload};
use rhizome_core::privacy;
use rhizome_core::schema::{self, Kind};
use rhizome_core::{canonical, Hash, PublicKey, SecretKey, Seq, Timestamp, VerifiedEvent};
use rhizome_store::Outcome;
use serde::Serialize;
use serde_json::{json, Value};

use crate::{now_ms, Node, NodeError, Result};

/// How many times to re-read the head when another process appended first.
const APPEND_RETRIES: usize = 100;

/// An event to write, before it is signed: its type, payload, and the circle it is limited to.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Event type.
    pub kind: String,
    /// Payload (targets already resolved to full hashes).
    pub payload: Value,
    /// Limit the payload to the members of this circle of the author (PROTOCOL 9).
    pub circle: Option<String>,
}

/// A change to one of the author's circles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CircleChange {
    /// Create a circle, with members.
    Create(Vec<PublicKey>),
    /// Add members.
    Add(Vec<PublicKey>),
    /// Remove members.
    Remove(Vec<PublicKey>),
    /// Rename it.
    Rename(String),
}

fn keys_json(keys: &[PublicKey]) -> Vec<String> {
    keys.iter().map(PublicKey::to_hex).collect()
}

impl Draft {
    fn new(kind: &str, payload: Value) -> Draft {
        Draft {
            kind: kind.into(),
            payload,
            circle: None,
        }
    }

    /// A post, optionally in a language, replying to or quoting an event.
    pub fn post(
        text: &str,
        lang: Option<&str>,
        reply_to: Option<Hash>,
        quote: Option<Hash>,
    ) -> Draft {
        let mut p = json!({ "text": text });
        if let Some(l) = lang {
            p["lang"] = json!(l);
        }
        if let Some(r) = reply_to {
            p["reply_to"] = json!(r);
        }
        if let Some(q) = quote {
            p["quote"] = json!(q);
        }
        Draft::new("POST", p)
    }

    /// A comment on an event.
    pub fn comment(target: Hash, text: &str) -> Draft {
        Draft::new("COMMENT", json!({"target": target, "text": text}))
    }

    /// A like.
    pub fn like(target: Hash) -> Draft {
        Draft::new("LIKE", json!({ "target": target }))
    }

    /// A reshare, with an optional comment.
    pub fn reshare(target: Hash, comment: Option<&str>) -> Draft {
        let mut p = json!({ "target": target });
        if let Some(c) = comment {
            p["comment"] = json!(c);
        }
        Draft::new("RESHARE", p)
    }

    /// A star (or, with `starred` false, its removal: the latest by seq wins).
    pub fn star(target: Hash, starred: bool) -> Draft {
        Draft::new("STAR", json!({"target": target, "starred": starred}))
    }

    /// A tag on an event.
    pub fn tag(target: Hash, tag: &str) -> Draft {
        Draft::new("TAG_ADD", json!({"target": target, "tag": tag}))
    }

    /// A change to the author's circle `name`.
    pub fn circle(name: &str, change: CircleChange) -> Draft {
        let p = match change {
            CircleChange::Create(ms) if ms.is_empty() => json!({"circle": name, "op": "create"}),
            CircleChange::Create(ms) => {
                json!({"circle": name, "op": "create", "members": keys_json(&ms)})
            }
            CircleChange::Add(ms) => {
                json!({"circle": name, "op": "add", "members": keys_json(&ms)})
            }
            CircleChange::Remove(ms) => {
                json!({"circle": name, "op": "remove", "members": keys_json(&ms)})
            }
            CircleChange::Rename(new_name) => {
                json!({"circle": name, "op": "rename", "new_name": new_name})
            }
        };
        Draft::new("CIRCLE_UPDATE", p)
    }

    /// A profile: the name the author goes by (and a few words), checked against the PROFILE
    /// schema with a message that says which rule a name or an about text breaks.
    pub fn profile(name: &str, about: Option<&str>) -> Result<Draft> {
        let mut value = json!({ "name": name });
        if let Some(a) = about {
            value["about"] = json!(a);
        }
        if let Err(e) = schema::check("PROFILE", &value) {
            return Err(NodeError::invalid(
                if e.errors.iter().any(|x| x.starts_with("/name")) {
                    format!("profile name {name:?} must be 1-64 characters, without control or invisible formatting characters, and without spaces at either end")
                } else if e.errors.iter().any(|x| x.starts_with("/about")) {
                    "profile about text must be 1-1000 characters".to_string()
                } else {
                    e.to_string()
                },
            ));
        }
        Ok(Draft::new("PROFILE", value))
    }

    /// Any type, with a payload given as JSON text (strictly parsed).
    pub fn custom(kind: &str, payload_json: &str) -> Result<Draft> {
        let value = canonical::parse_strict(payload_json.as_bytes())
            .map_err(|e| NodeError::invalid(format!("--payload is not valid JSON: {e}")))?;
        Ok(Draft::new(kind, value))
    }

    /// Limits the payload to one of the author's circles.
    pub fn in_circle(mut self, circle: Option<&str>) -> Draft {
        self.circle = circle.map(str::to_string);
        self
    }
}

/// An event written.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// Its hash.
    pub hash: Hash,
    /// Its author.
    pub author: PublicKey,
    /// The author's local name.
    #[serde(skip)]
    pub author_name: String,
    /// Its seq.
    pub seq: Seq,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
}

impl Node {
    /// A stored event's hash from a full hash or a unique prefix (8 to 64 hex characters).
    pub fn resolve_target(&self, text: &str) -> Result<Hash> {
        let t = text.trim();
        if t.len() < 8 || t.len() > 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(NodeError::invalid(format!(
                "{text:?} is not an event hash or a prefix of 8 to 64 hex characters"
            )));
        }
        let t = t.to_ascii_lowercase();
        match self.store.find_by_prefix(&t, 2)?.as_slice() {
            [one] => Ok(*one),
            [] => Err(NodeError::invalid(format!(
                "unknown target: no stored event has a hash starting with {t}"
            ))),
            _ => Err(NodeError::invalid(format!(
                "ambiguous target: several events start with {t}; give more characters"
            ))),
        }
    }

    /// An author's key from a local author name or a public key; `what` names the role in
    /// the error ("author", "member").
    pub fn resolve_author(&self, text: &str, what: &str) -> Result<PublicKey> {
        if let Some(a) = self.store.authors()?.into_iter().find(|a| a.name == text) {
            return Ok(a.public_key);
        }
        text.parse::<PublicKey>().map_err(|e| {
            NodeError::invalid(format!(
                "{what} {text:?} is neither a local author nor a valid public key: {e}"
            ))
        })
    }

    /// Signs and appends `draft` as the local author `as_author` (default: the instance's
    /// first author). Checks the payload against its schema first; nothing is written on error.
    pub fn write(&mut self, as_author: Option<&str>, draft: Draft) -> Result<Written> {
        let author = self.store.author(as_author)?;
        let Draft {
            kind,
            payload: mut value,
            circle,
        } = draft;
        self.check_targets(&kind, &value)?;
        if let Some(circle) = circle {
            value["audience"] = self.audience(&author.public_key, &circle)?;
        }
        let kind = EventType::new(&kind).map_err(|e| NodeError::invalid(e.to_string()))?;
        let payload = payload_to_sign(value)?;
        schema::check(kind.as_str(), payload.value())
            .map_err(|e| NodeError::invalid(e.to_string()))?;
        let secret = self.keys.open(&author.secret, &author.public_key)?;
        self.declare_host(&secret)?;
        let ev = self.append_next(&secret, &kind, &payload)?;
        Ok(Written {
            hash: ev.hash,
            author: author.public_key,
            author_name: author.name,
            seq: ev.header.seq,
            kind: kind.as_str().to_string(),
        })
    }

    /// Signs `payload` now as the next event of `secret`'s feed and appends it. When another
    /// process appended to the feed first, reads the head again and signs again.
    pub(crate) fn append_next(
        &mut self,
        secret: &SecretKey,
        kind: &EventType,
        payload: &Payload,
    ) -> Result<VerifiedEvent> {
        let author = secret.public_key();
        let timestamp =
            Timestamp::new(now_ms()).map_err(|e| NodeError::Io(format!("system clock: {e}")))?;
        for _ in 0..APPEND_RETRIES {
            let (seq, prev) = match self.store.head(&author)? {
                Some((s, h)) => (s.next(), Some(h)),
                None => (Seq::FIRST, None),
            };
            let ev = event::sign(secret, seq, prev, kind.clone(), timestamp, payload.clone())
                .map_err(|e| NodeError::invalid(e.to_string()))?;
            // Another process may have appended since we read the head: then read it again.
            if self.store.append(std::slice::from_ref(&ev))? == [Outcome::Inserted] {
                return Ok(ev);
            }
        }
        Err(NodeError::Io(format!(
            "could not append after {APPEND_RETRIES} attempts: other processes keep writing to this feed"
        )))
    }

    /// Publishes `author`'s profile with `name` as the next event of their feed (for `init`
    /// and `add_author`).
    pub(crate) fn publish_profile(&mut self, author: &SecretKey, name: &str) -> Result<Hash> {
        let draft = Draft::profile(name, None)?;
        let payload = Payload::new(draft.payload).map_err(|e| NodeError::invalid(e.to_string()))?;
        let kind = EventType::new("PROFILE").map_err(|e| NodeError::invalid(e.to_string()))?;
        Ok(self.append_next(author, &kind, &payload)?.hash)
    }

    /// The `audience` member limiting a payload to one of `author`'s circles (PROTOCOL 9.1):
    /// its members as they are now, so every instance that holds the payload applies the same
    /// list.
    fn audience(&self, author: &PublicKey, circle: &str) -> Result<Value> {
        let circles = self.store.circles(author)?;
        let Some(c) = circles.iter().find(|c| c.name == circle) else {
            let names: Vec<&str> = circles.iter().map(|c| c.name.as_str()).collect();
            return Err(NodeError::invalid(format!(
                "no circle named {circle:?} (this author's circles: {}); create it with `rhizome circle create {circle} MEMBER...`",
                if names.is_empty() { "none".into() } else { names.join(", ") }
            )));
        };
        let mut members: Vec<String> = c.members.iter().map(PublicKey::to_hex).collect();
        members.sort();
        Ok(json!({"circle": c.name, "members": members}))
    }

    /// For a known type: every event the payload points at must be stored, and members must
    /// be valid keys.
    fn check_targets(&self, kind: &str, payload: &Value) -> Result<()> {
        if Kind::from_type(kind).is_none() {
            return Ok(());
        }
        for field in ["target", "reply_to", "quote"] {
            if let Some(Value::String(h)) = payload.get(field) {
                if let Ok(hash) = h.parse::<Hash>() {
                    if self.store.get(&hash)?.is_none() {
                        return Err(NodeError::invalid(format!(
                            "unknown target: payload field `{field}` names {h}, which is not stored"
                        )));
                    }
                }
            }
        }
        if let Some(Value::Array(ms)) = payload.get("members") {
            for m in ms.iter().filter_map(Value::as_str) {
                m.parse::<PublicKey>().map_err(|e| {
                    NodeError::invalid(format!(
                        "payload field `members`: {m:?} is not a valid public key: {e}"
                    ))
                })?;
            }
        }
        Ok(())
    }
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
        privacy::protect(value, &crate::keys::random()?)
            .map_err(|e| NodeError::invalid(e.to_string()))
    } else {
        Payload::new(value).map_err(|e| NodeError::invalid(e.to_string()))
    }
}
