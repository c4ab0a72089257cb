//! View reducers: what each event changes in the materialized views. Pure: no state, no I/O.
//!
//! Each event yields a list of [`Effect`]s; the store applies them in the same transaction
//! that stored the event. Every effect is designed so that the views end the same whatever
//! the arrival order of different authors' events, as long as each author's own events come
//! in seq order (which the chain rules guarantee):
//! - timeline entries, comments, likes and tags are set insertions keyed by hashes and keys;
//!   a comment or like whose target has not arrived yet is stored under the target's hash
//!   and shows as soon as the target does;
//! - a star is "last by seq wins" per (author, target);
//! - circle operations touch only their author's circles, applied in that author's seq order;
//! - a profile is "last by seq wins" per author.

use serde_json::Value;

use crate::event::Event;
use crate::ids::Hash;
use crate::keys::PublicKey;
use crate::schema::{self, Kind};

/// Why a view cannot use an event. The event stays in the log; views skip it and count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// A type this version has no view for.
    UnknownType,
    /// The payload fails its type's schema (the message says how).
    Schema(String),
    /// The payload is withheld: nothing to show.
    Withheld,
    /// A circle operation that does not apply (unknown circle, name taken).
    Circle(String),
}

impl Skip {
    /// Short reason code, as stored and reported.
    pub fn code(&self) -> &'static str {
        match self {
            Skip::UnknownType => "unknown_type",
            Skip::Schema(_) => "schema",
            Skip::Withheld => "withheld",
            Skip::Circle(_) => "circle",
        }
    }
    /// Human detail.
    pub fn detail(&self) -> String {
        match self {
            Skip::UnknownType => "no view for this event type".into(),
            Skip::Schema(e) | Skip::Circle(e) => e.clone(),
            Skip::Withheld => "payload withheld".into(),
        }
    }
}

/// One change to the views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A post or reshare enters the timeline. `target` is the reshared event.
    Timeline {
        /// The reshared event, for reshares.
        target: Option<Hash>,
    },
    /// A reply to `target` in its thread (a COMMENT, or a POST with `reply_to`).
    Reply {
        /// The event replied to.
        target: Hash,
    },
    /// The author likes `target`.
    Like {
        /// Liked event.
        target: Hash,
    },
    /// The author stars or unstars `target`.
    Star {
        /// Starred event.
        target: Hash,
        /// True to star, false to unstar.
        starred: bool,
    },
    /// The author tags `target`.
    Tag {
        /// Tagged event.
        target: Hash,
        /// The tag.
        tag: String,
    },
    /// A change to one of the author's circles.
    Circle(CircleOp),
    /// The author's profile: the latest by seq wins.
    Profile {
        /// The name the author goes by (not unique).
        name: String,
        /// A few words about the author.
        about: Option<String>,
    },
    /// The views cannot use this event.
    Skip(Skip),
}

/// A circle operation, by circle name as the author saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CircleOp {
    /// Create `circle` with `members`.
    Create {
        /// Name.
        circle: String,
        /// Initial members.
        members: Vec<PublicKey>,
    },
    /// Add members.
    Add {
        /// Name.
        circle: String,
        /// Members to add.
        members: Vec<PublicKey>,
    },
    /// Remove members.
    Remove {
        /// Name.
        circle: String,
        /// Members to remove.
        members: Vec<PublicKey>,
    },
    /// Rename.
    Rename {
        /// Current name.
        circle: String,
        /// New name.
        new_name: String,
    },
}

fn hash_field(v: &Value, field: &str) -> Option<Hash> {
    v.get(field)?.as_str()?.parse().ok()
}

fn keys_field(v: &Value) -> Result<Vec<PublicKey>, Skip> {
    let Some(items) = v.get("members").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .map(|m| {
            m.as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| Skip::Schema(format!("members: {m} is not a valid public key")))
        })
        .collect()
}

/// What `event` changes in the views.
pub fn effects(event: &Event) -> Vec<Effect> {
    match effects_or_skip(event) {
        Ok(e) => e,
        Err(skip) => vec![Effect::Skip(skip)],
    }
}

fn effects_or_skip(event: &Event) -> Result<Vec<Effect>, Skip> {
    let Some(payload) = &event.payload else {
        return Err(Skip::Withheld);
    };
    // No tree for an unknown type; for a known one, a tree for this event only (views read
    // many payloads in a row, and one kept per event would pile up).
    if schema::Kind::from_type(event.header.kind.as_str()).is_none() {
        return Err(Skip::UnknownType);
    }
    payload.with_value(|p| effects_of(event, p))
}

fn effects_of(event: &Event, p: &Value) -> Result<Vec<Effect>, Skip> {
    let kind = schema::check(event.header.kind.as_str(), p)
        .map_err(|e| Skip::Schema(e.errors.join("; ")))?
        .ok_or(Skip::UnknownType)?;
    // Schemas guarantee the fields below exist and are well-formed hashes.
    let target = || hash_field(p, "target").ok_or_else(|| Skip::Schema("target".into()));
    let text = |f: &str| {
        p.get(f)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(match kind {
        Kind::Post => {
            let mut out = vec![Effect::Timeline { target: None }];
            if let Some(t) = hash_field(p, "reply_to") {
                out.push(Effect::Reply { target: t });
            }
            out
        }
        Kind::Reshare => vec![Effect::Timeline {
            target: Some(target()?),
        }],
        Kind::Comment => vec![Effect::Reply { target: target()? }],
        Kind::Like => vec![Effect::Like { target: target()? }],
        Kind::Star => vec![Effect::Star {
            target: target()?,
            starred: p.get("starred").and_then(Value::as_bool).unwrap_or(false),
        }],
        Kind::TagAdd => vec![Effect::Tag {
            target: target()?,
            tag: text("tag"),
        }],
        Kind::CircleUpdate => {
            let circle = text("circle");
            let op = match p.get("op").and_then(Value::as_str) {
                Some("create") => CircleOp::Create {
                    circle,
                    members: keys_field(p)?,
                },
                Some("add") => CircleOp::Add {
                    circle,
                    members: keys_field(p)?,
                },
                Some("remove") => CircleOp::Remove {
                    circle,
                    members: keys_field(p)?,
                },
                _ => CircleOp::Rename {
                    circle,
                    new_name: text("new_name"),
                },
            };
            vec![Effect::Circle(op)]
        }
        Kind::Profile => vec![Effect::Profile {
            name: text("name"),
            about: p.get("about").and_then(Value::as_str).map(str::to_string),
        }],
    })
}

/// A timeline row: a post or reshare, keyed by (timestamp, hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    /// Author's timestamp, ms.
    pub ts: u64,
    /// Event hash.
    pub hash: Hash,
    /// Author.
    pub author: PublicKey,
    /// Seq in the author's feed.
    pub seq: u64,
    /// Event type (POST or RESHARE).
    pub kind: String,
    /// The reshared event, for reshares.
    pub target: Option<Hash>,
}

/// A reply row, keyed by (target, hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyRow {
    /// The event replied to.
    pub target: Hash,
    /// The reply.
    pub hash: Hash,
    /// Its author.
    pub author: PublicKey,
    /// Its seq.
    pub seq: u64,
    /// Its timestamp.
    pub ts: u64,
}

/// The latest star state of (author, target), keyed by both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarRow {
    /// Who starred.
    pub author: PublicKey,
    /// What.
    pub target: Hash,
    /// Seq of the STAR event that set it.
    pub seq: u64,
    /// Starred or unstarred.
    pub starred: bool,
}

/// An author's latest profile, keyed by the author.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRow {
    /// The author.
    pub author: PublicKey,
    /// Seq of the PROFILE event it comes from.
    pub seq: u64,
    /// The name the author goes by (not unique).
    pub name: String,
    /// A few words about the author.
    pub about: Option<String>,
}

/// An event the views cannot use, keyed by its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipRow {
    /// Event hash.
    pub hash: Hash,
    /// Author.
    pub author: PublicKey,
    /// Seq.
    pub seq: u64,
    /// Event type.
    pub kind: String,
    /// Why.
    pub skip: Skip,
}

/// The rows a backend keeps for the views, as plain keyed reads and writes: every rule about
/// which row wins lives in [`apply`], so all backends merge the same way. Inserts of a row
/// whose key is present change nothing.
pub trait ViewRows {
    /// The backend's error.
    type Error;
    /// Inserts a timeline row.
    fn insert_timeline(&mut self, row: &TimelineRow) -> Result<(), Self::Error>;
    /// Inserts a reply row.
    fn insert_reply(&mut self, row: &ReplyRow) -> Result<(), Self::Error>;
    /// Inserts a like of `target` by `author`.
    fn insert_like(&mut self, target: &Hash, author: &PublicKey) -> Result<(), Self::Error>;
    /// Inserts a tag on `target` by `author`.
    fn insert_tag(
        &mut self,
        tag: &str,
        target: &Hash,
        author: &PublicKey,
    ) -> Result<(), Self::Error>;
    /// The star row of (author, target), if any.
    fn star(&mut self, author: &PublicKey, target: &Hash) -> Result<Option<StarRow>, Self::Error>;
    /// Writes (inserts or replaces) the star row of (row.author, row.target).
    fn put_star(&mut self, row: &StarRow) -> Result<(), Self::Error>;
    /// The id of `owner`'s circle currently named `name`.
    fn circle_named(&mut self, owner: &PublicKey, name: &str) -> Result<Option<Hash>, Self::Error>;
    /// Inserts a circle.
    fn insert_circle(
        &mut self,
        owner: &PublicKey,
        id: &Hash,
        name: &str,
    ) -> Result<(), Self::Error>;
    /// Renames a circle.
    fn rename_circle(
        &mut self,
        owner: &PublicKey,
        id: &Hash,
        name: &str,
    ) -> Result<(), Self::Error>;
    /// Adds a member to a circle.
    fn insert_member(
        &mut self,
        owner: &PublicKey,
        id: &Hash,
        member: &PublicKey,
    ) -> Result<(), Self::Error>;
    /// Removes a member from a circle.
    fn delete_member(
        &mut self,
        owner: &PublicKey,
        id: &Hash,
        member: &PublicKey,
    ) -> Result<(), Self::Error>;
    /// The seq of the profile row of `author`, if any.
    fn profile_seq(&mut self, author: &PublicKey) -> Result<Option<u64>, Self::Error>;
    /// Writes (inserts or replaces) the profile row of `row.author`.
    fn put_profile(&mut self, row: &ProfileRow) -> Result<(), Self::Error>;
    /// Records a skipped event.
    fn insert_skip(&mut self, row: &SkipRow) -> Result<(), Self::Error>;
    /// Forgets that an event was skipped (its withheld payload has arrived).
    fn delete_skip(&mut self, hash: &Hash) -> Result<(), Self::Error>;
}

/// Applies one stored event to the views, with the merge rules every backend shares:
/// set insertions for timeline, replies, likes and tags; last STAR by seq wins per (author,
/// target) and last PROFILE by seq per author; circle operations by name in the author's seq
/// order (a create of a taken name, or an operation on a missing circle, is skipped with the
/// reason).
pub fn apply<V: ViewRows>(rows: &mut V, event: &Event) -> Result<(), V::Error> {
    let h = &event.header;
    let (author, seq, ts) = (h.author, h.seq.get(), h.timestamp.get());
    for effect in effects(event) {
        let skip = match effect {
            Effect::Timeline { target } => {
                rows.insert_timeline(&TimelineRow {
                    ts,
                    hash: event.hash,
                    author,
                    seq,
                    kind: h.kind.as_str().to_string(),
                    target,
                })?;
                None
            }
            Effect::Reply { target } => {
                rows.insert_reply(&ReplyRow {
                    target,
                    hash: event.hash,
                    author,
                    seq,
                    ts,
                })?;
                None
            }
            Effect::Like { target } => {
                rows.insert_like(&target, &author)?;
                None
            }
            Effect::Star { target, starred } => {
                // Last by seq wins, whatever order the events were applied in.
                let newer = rows.star(&author, &target)?.is_none_or(|s| seq > s.seq);
                if newer {
                    rows.put_star(&StarRow {
                        author,
                        target,
                        seq,
                        starred,
                    })?;
                }
                None
            }
            Effect::Tag { target, tag } => {
                rows.insert_tag(&tag, &target, &author)?;
                None
            }
            Effect::Circle(op) => apply_circle(rows, &author, &event.hash, op)?,
            Effect::Profile { name, about } => {
                // Last by seq wins, whatever order the events (or late payloads) came in.
                if rows.profile_seq(&author)?.is_none_or(|held| seq > held) {
                    rows.put_profile(&ProfileRow {
                        author,
                        seq,
                        name,
                        about,
                    })?;
                }
                None
            }
            Effect::Skip(skip) => Some(skip),
        };
        if let Some(skip) = skip {
            rows.insert_skip(&SkipRow {
                hash: event.hash,
                author,
                seq,
                kind: h.kind.as_str().to_string(),
                skip,
            })?;
        }
    }
    Ok(())
}

fn apply_circle<V: ViewRows>(
    rows: &mut V,
    owner: &PublicKey,
    hash: &Hash,
    op: CircleOp,
) -> Result<Option<Skip>, V::Error> {
    let missing = |name: &str| Some(Skip::Circle(format!("no circle named {name:?}")));
    let taken = |name: &str| Some(Skip::Circle(format!("circle {name:?} already exists")));
    Ok(match op {
        CircleOp::Create { circle, members } => {
            if rows.circle_named(owner, &circle)?.is_some() {
                return Ok(taken(&circle));
            }
            rows.insert_circle(owner, hash, &circle)?;
            for m in &members {
                rows.insert_member(owner, hash, m)?;
            }
            None
        }
        CircleOp::Add { circle, members } => match rows.circle_named(owner, &circle)? {
            Some(id) => {
                for m in &members {
                    rows.insert_member(owner, &id, m)?;
                }
                None
            }
            None => missing(&circle),
        },
        CircleOp::Remove { circle, members } => match rows.circle_named(owner, &circle)? {
            Some(id) => {
                for m in &members {
                    rows.delete_member(owner, &id, m)?;
                }
                None
            }
            None => missing(&circle),
        },
        CircleOp::Rename { circle, new_name } => {
            let Some(id) = rows.circle_named(owner, &circle)? else {
                return Ok(missing(&circle));
            };
            if rows.circle_named(owner, &new_name)?.is_some() {
                return Ok(taken(&new_name));
            }
            rows.rename_circle(owner, &id, &new_name)?;
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{sign, EventType, Payload};
    use crate::{SecretKey, Seq, Timestamp};
    use serde_json::json;

    fn ev(kind: &str, payload: Value) -> Event {
        sign(
            &SecretKey::from_seed(&[1; 32]),
            Seq::FIRST,
            None,
            EventType::new(kind).unwrap(),
            Timestamp::new(1).unwrap(),
            Payload::new(payload).unwrap(),
        )
        .unwrap()
        .into_inner()
    }

    #[test]
    fn each_type_maps_to_its_effect() {
        let h = Hash::digest(b"t");
        let t = h.to_hex();
        assert_eq!(
            effects(&ev("POST", json!({"text": "x"}))),
            vec![Effect::Timeline { target: None }]
        );
        assert_eq!(
            effects(&ev("POST", json!({"text": "x", "reply_to": t}))),
            vec![
                Effect::Timeline { target: None },
                Effect::Reply { target: h }
            ]
        );
        assert_eq!(
            effects(&ev("LIKE", json!({"target": t}))),
            vec![Effect::Like { target: h }]
        );
        assert_eq!(
            effects(&ev("STAR", json!({"target": t, "starred": false}))),
            vec![Effect::Star {
                target: h,
                starred: false
            }]
        );
        assert_eq!(
            effects(&ev("PROFILE", json!({"name": "Ana", "about": "hi"}))),
            vec![Effect::Profile {
                name: "Ana".into(),
                about: Some("hi".into())
            }]
        );
        assert!(matches!(
            effects(&ev("PROFILE", json!({"name": "Ana\u{1b}"})))[..],
            [Effect::Skip(Skip::Schema(_))]
        ));
        assert_eq!(
            effects(&ev("RECIPE", json!({"a": 1}))),
            vec![Effect::Skip(Skip::UnknownType)]
        );
        assert!(matches!(
            effects(&ev("LIKE", json!({"target": 5})))[..],
            [Effect::Skip(Skip::Schema(_))]
        ));
        let mut withheld = ev("POST", json!({"text": "x"}));
        withheld.payload = None;
        assert_eq!(effects(&withheld), vec![Effect::Skip(Skip::Withheld)]);
    }
}
