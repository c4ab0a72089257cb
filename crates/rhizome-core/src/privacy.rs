//! Circle privacy: who may receive a payload, and how an instance proves which authors it hosts
//! (PROTOCOL section 9).
//!
//! A payload with an `audience` member is *limited*: its author meant it for the members listed
//! there (a snapshot of one of the author's circles when the event was written). Any instance
//! that holds such a payload sends it only to instances that host the author or a listed member,
//! and sends everyone else the signed header alone (which still verifies). An instance shows
//! which authors it hosts with [`HostDeclaration`]s, each signed by the author it names, carried
//! in the instance's bundle manifests.
//!
//! A limited payload travels withheld to everyone else, but its header still commits to it by
//! hash and size. [`protect`] makes that commitment useless to an outsider who would hash
//! guesses built from public data: a random salt inside the `audience` member, and padding of
//! the size to a bucket ([`padded_size`]). The salt comes in as an argument: the core reads no
//! entropy.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::to_canonical;
use crate::event::Payload;
use crate::ids::{Hash, InstanceId};
use crate::keys::{KeyError, PublicKey, SecretKey, Signature};

/// Domain prefix of host declaration signatures.
pub const HOST_PREFIX: &[u8] = b"RHIZOME-HOST-V1\n";

/// Bytes of random salt a writer puts in every limited payload (PROTOCOL 9.4).
pub const SALT_BYTES: usize = 16;

/// Every limited payload is padded to at least this many canonical bytes (PROTOCOL 9.4).
pub const PAD_FLOOR: u64 = 512;

/// The size a limited payload of `len` canonical bytes is padded to (PROTOCOL 9.4):
/// [`PAD_FLOOR`] for anything up to it; above it the Padmé bucket of `len` (Nikitin et al.,
/// PETS 2019): `len` rounded up to a multiple of 2^(E − S), where E = ⌊log2 len⌋ and
/// S = ⌊log2 E⌋ + 1. It reveals O(log log len) bits of the length and adds at most 12 %.
pub fn padded_size(len: u64) -> u64 {
    if len <= PAD_FLOOR {
        return PAD_FLOOR;
    }
    let e = u64::from(63 - len.leading_zeros());
    let s = u64::from(64 - e.leading_zeros());
    let mask = (1u64 << (e - s)) - 1;
    // No overflow: payload sizes stay far below 2^63.
    (len + mask) & !mask
}

/// Why [`protect`] refused a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtectError {
    /// The payload has no `audience` object: it is not limited, there is nothing to protect.
    #[error("the payload has no `audience` object: it is not limited to a circle")]
    NotLimited,
    /// The `audience` already has a `salt` or a `pad`.
    #[error("the `audience` of the payload already has a `{0}` member")]
    AlreadyProtected(&'static str),
    /// The result is not a valid payload.
    #[error("{0}")]
    Payload(String),
}

/// Makes a limited payload unguessable from its withheld header (PROTOCOL 9.4): adds to its
/// `audience` object the member `salt` (`salt` in lowercase hex: fresh random bytes, which the
/// caller draws) and the member `pad`, a string of `0` characters that brings the canonical
/// size to [`padded_size`] of the size with an empty `pad`.
pub fn protect(mut payload: Value, salt: &[u8; SALT_BYTES]) -> Result<Payload, ProtectError> {
    let Some(audience) = payload.get_mut("audience").and_then(Value::as_object_mut) else {
        return Err(ProtectError::NotLimited);
    };
    for member in ["salt", "pad"] {
        if audience.contains_key(member) {
            return Err(ProtectError::AlreadyProtected(member));
        }
    }
    audience.insert("salt".into(), Value::String(hex::encode(salt)));
    audience.insert("pad".into(), Value::String(String::new()));
    let bare = to_canonical(&payload).len() as u64;
    // Each `0` adds exactly one canonical byte (no escaping), so the size is exact.
    let fill = "0".repeat((padded_size(bare) - bare) as usize);
    if let Some(a) = payload.get_mut("audience").and_then(Value::as_object_mut) {
        a.insert("pad".into(), Value::String(fill));
    }
    Payload::new(payload).map_err(|e| ProtectError::Payload(e.to_string()))
}

/// Who a payload is meant for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// No `audience` member: anyone.
    Public,
    /// The listed members (and the author). A malformed `audience` member limits the payload
    /// to the author alone: when in doubt, a payload is not sent.
    Limited(Vec<PublicKey>),
}

impl Audience {
    /// The audience a payload declares.
    pub fn of(payload: &Payload) -> Audience {
        // Canonical bytes name a top-level `audience` member exactly so; without them there
        // is none, and no tree needs building (the store's writer asks for every payload).
        if memchr::memmem::find(payload.canonical_bytes(), b"\"audience\":").is_none() {
            return Audience::Public;
        }
        payload.with_value(Self::of_value)
    }

    /// The audience of a payload object.
    pub fn of_value(payload: &Value) -> Audience {
        let Some(a) = payload.get("audience") else {
            return Audience::Public;
        };
        let members = a.get("members").and_then(Value::as_array).map(|list| {
            list.iter()
                .map(|m| m.as_str().and_then(|s| s.parse::<PublicKey>().ok()))
                .collect::<Option<Vec<_>>>()
        });
        Audience::Limited(members.flatten().unwrap_or_default())
    }

    /// True when an instance hosting exactly the authors `hosts` accepts says may receive the
    /// payload of an event by `author`.
    pub fn allows(&self, author: &PublicKey, hosts: impl Fn(&PublicKey) -> bool) -> bool {
        match self {
            Audience::Public => true,
            Audience::Limited(members) => hosts(author) || members.iter().any(hosts),
        }
    }
}

/// An author's statement that an instance hosts them: that instance may receive payloads
/// limited to circles the author belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostDeclaration {
    /// The author hosted (and the signer).
    pub author: PublicKey,
    /// The hosting instance.
    pub instance_id: InstanceId,
    /// When the author signed it, ms since the epoch.
    pub issued_at: u64,
    /// The author's signature (PROTOCOL 9.2).
    pub sig: Signature,
}

/// Why a host declaration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The author key is not a valid key.
    #[error("author {0}: {1}")]
    Key(PublicKey, KeyError),
    /// The signature does not verify under the author's key.
    #[error("signature does not verify for author {0}")]
    BadSignature(PublicKey),
    /// The declaration names another instance than the one presenting it.
    #[error("author {author} declared instance {declared}, not {presenter}")]
    OtherInstance {
        /// The author.
        author: PublicKey,
        /// The instance the declaration names.
        declared: InstanceId,
        /// The instance that presented it.
        presenter: InstanceId,
    },
}

impl HostDeclaration {
    /// `author` declares that `instance_id` hosts it.
    pub fn sign(author: &SecretKey, instance_id: InstanceId, issued_at: u64) -> Self {
        let mut d = HostDeclaration {
            author: author.public_key(),
            instance_id,
            issued_at,
            sig: Signature::from_bytes([0; 64]),
        };
        d.sig = author.sign(&d.message());
        d
    }

    /// The signed message: prefix, then SHA-256 of the canonical JSON of the declaration
    /// without `sig`.
    fn message(&self) -> Vec<u8> {
        let unsigned = serde_json::json!({
            "author": self.author,
            "instance_id": self.instance_id,
            "issued_at": self.issued_at,
        });
        let mut m = HOST_PREFIX.to_vec();
        m.extend_from_slice(Hash::digest(&to_canonical(&unsigned)).as_bytes());
        m
    }

    /// Verifies the author's signature and that the declaration is for `presenter`.
    pub fn verify(&self, presenter: &InstanceId) -> Result<(), HostError> {
        self.author
            .check()
            .map_err(|e| HostError::Key(self.author, e))?;
        self.author
            .verify(&self.message(), &self.sig)
            .map_err(|_| HostError::BadSignature(self.author))?;
        if &self.instance_id != presenter {
            return Err(HostError::OtherInstance {
                author: self.author,
                declared: self.instance_id,
                presenter: *presenter,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: u8) -> SecretKey {
        SecretKey::from_seed(&[n; 32])
    }

    #[test]
    fn audience_of_payloads() {
        let m = key(2).public_key();
        assert_eq!(Audience::of_value(&json!({"text": "hi"})), Audience::Public);
        assert_eq!(
            Audience::of_value(&json!({"text": "hi", "audience": {"circle": "c", "members": [m]}})),
            Audience::Limited(vec![m])
        );
        // Malformed: limited to the author alone, never public.
        for bad in [
            json!({"audience": null}),
            json!({"audience": {"circle": "c", "members": ["zz"]}}),
            json!({"audience": {"circle": "c"}}),
        ] {
            assert_eq!(Audience::of_value(&bad), Audience::Limited(vec![]));
        }
    }

    #[test]
    fn buckets() {
        for (len, bucket) in [
            (0, 512),
            (200, 512),
            (512, 512),
            (513, 544),
            (544, 544),
            (1000, 1024),
            (5000, 5120),
            (100_000, 100_352),
        ] {
            assert_eq!(padded_size(len), bucket, "{len}");
        }
        // Never smaller, and at most 12 % more above the floor.
        for len in (513..300_000).step_by(97) {
            let b = padded_size(len);
            assert!(b >= len && (b - len) * 100 <= len * 12, "{len} -> {b}");
        }
    }

    #[test]
    fn protect_salts_and_pads_limited_payloads_only() {
        let m = key(2).public_key();
        let t = Hash::digest(b"t").to_hex();
        let like = json!({"target": t, "audience": {"circle": "c", "members": [m]}});
        let a = protect(like.clone(), &[1; SALT_BYTES]).unwrap();
        let b = protect(like.clone(), &[2; SALT_BYTES]).unwrap();
        assert_ne!(a.hash(), b.hash(), "the salt changes the commitment");
        assert_eq!(a.canonical_bytes().len() as u64, PAD_FLOOR);
        assert_eq!(a.value()["audience"]["salt"], json!("01".repeat(16)));
        assert_eq!(Audience::of(&a), Audience::Limited(vec![m]));
        // Star and unstar: one size.
        let sizes: Vec<usize> = [true, false]
            .into_iter()
            .map(|starred| {
                let v = json!({"target": t, "starred": starred, "audience": like["audience"]});
                protect(v, &[3; SALT_BYTES])
                    .unwrap()
                    .canonical_bytes()
                    .len()
            })
            .collect();
        assert_eq!(sizes, vec![512, 512]);
        // Above the floor: the bucket of the size with an empty pad.
        let long = json!({"text": "x".repeat(700), "audience": {"circle": "c", "members": []}});
        let p = protect(long, &[4; SALT_BYTES]).unwrap();
        assert_eq!(p.canonical_bytes().len(), 832);
        for not_limited in [json!({"text": "x"}), json!({"audience": "everyone"})] {
            assert_eq!(
                protect(not_limited, &[0; SALT_BYTES]),
                Err(ProtectError::NotLimited)
            );
        }
        assert_eq!(
            protect(a.value().clone(), &[0; SALT_BYTES]),
            Err(ProtectError::AlreadyProtected("salt"))
        );
    }

    #[test]
    fn who_may_receive() {
        let (a, m, x) = (
            key(1).public_key(),
            key(2).public_key(),
            key(3).public_key(),
        );
        let limited = Audience::Limited(vec![m]);
        assert!(limited.allows(&a, |k| *k == m));
        assert!(limited.allows(&a, |k| *k == a));
        assert!(!limited.allows(&a, |k| *k == x));
        assert!(!limited.allows(&a, |_| false));
        assert!(Audience::Public.allows(&a, |_| false));
    }

    #[test]
    fn host_declarations_verify_and_bind_the_instance() {
        let author = key(5);
        let here = InstanceId::of(&key(6).public_key());
        let there = InstanceId::of(&key(7).public_key());
        let d = HostDeclaration::sign(&author, here, 42);
        assert_eq!(d.verify(&here), Ok(()));
        assert!(matches!(
            d.verify(&there),
            Err(HostError::OtherInstance { .. })
        ));
        let mut forged = d.clone();
        forged.instance_id = there;
        assert_eq!(
            forged.verify(&there),
            Err(HostError::BadSignature(author.public_key()))
        );
        let mut later = d.clone();
        later.issued_at = 43;
        assert!(later.verify(&here).is_err());
    }
}
