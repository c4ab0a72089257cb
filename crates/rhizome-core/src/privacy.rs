//! Circle privacy: who may receive a payload, and how an instance proves which authors it hosts
//! (PROTOCOL section 9).
//!
//! A payload with an `audience` member is *limited*: its author meant it for the members listed
//! there (a snapshot of one of the author's circles when the event was written). Any instance
//! that holds such a payload sends it only to instances that host the author or a listed member,
//! and sends everyone else the signed header alone (which still verifies). An instance shows
//! which authors it hosts with [`HostDeclaration`]s, each signed by the author it names, carried
//! in the instance's bundle manifests.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::to_canonical;
use crate::event::Payload;
use crate::ids::{Hash, InstanceId};
use crate::keys::{KeyError, PublicKey, SecretKey, Signature};

/// Domain prefix of host declaration signatures.
pub const HOST_PREFIX: &[u8] = b"RHIZOME-HOST-V1\n";

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
