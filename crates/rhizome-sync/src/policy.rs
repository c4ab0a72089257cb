//! Sync decisions as pure functions of values: what to do with a bundle from its manifest, the
//! carrier's standing here and the node's policy. No I/O: the node reads the inputs from its
//! store and acts on the answer, whatever the transport.

use std::collections::{BTreeSet, HashSet};

use rhizome_core::bundle::Exporter;
use rhizome_core::privacy::Audience;
use rhizome_core::{Clock, InstanceId, PublicKey};
use rhizome_store::Trust;
use serde::Serialize;

/// How a bundle travelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A file: a USB stick, any folder.
    Usb,
    /// An HTTPS request or response body.
    Https,
}

impl Transport {
    /// The name stored as a peer's last method and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Usb => "usb",
            Transport::Https => "https",
        }
    }
}

/// What a node accepts without asking a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Bundles from instances never seen before are imported at once (and the instance
    /// trusted) instead of being held for approval. For hubs and labs.
    pub trust_on_first_use: bool,
}

/// What to do with a bundle, decided from its manifest before any event is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Import it now: our own bundle coming back, or a trusted carrier's.
    Import,
    /// Trust its carrier (first use, by policy), then import it.
    TrustAndImport,
    /// Verify it fully, store nothing, and hold it until a person approves or rejects it.
    Hold,
    /// Refuse it whole.
    Refuse(Refusal),
}

/// Why a bundle is refused whole before its events are read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its carrier is blocked here.
    Blocked(InstanceId),
}

impl Refusal {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Blocked(_) => "blocked_instance",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Blocked(id) => write!(
                f,
                "instance {id} is blocked here (`rhizome unblock {id}` to accept its bundles)"
            ),
        }
    }
}

/// Decides what to do with a bundle made by `exporter`, on an instance whose key is `own`,
/// where the carrier's trust is `trust` (None: never seen).
pub fn admit(
    exporter: &Exporter,
    own: &PublicKey,
    trust: Option<Trust>,
    policy: &Policy,
) -> Admission {
    if exporter.public_key == *own {
        // Our own bundle coming back: nothing to trust, every event a duplicate.
        return Admission::Import;
    }
    match trust {
        Some(Trust::Trusted) => Admission::Import,
        Some(Trust::Blocked) => Admission::Refuse(Refusal::Blocked(exporter.instance_id)),
        _ if policy.trust_on_first_use => Admission::TrustAndImport,
        _ => Admission::Hold,
    }
}

/// What a peer lacks, feed by feed: the seqs `from..=to` we hold beyond the clock `base` it
/// holds (or is cut against). Blocked authors' events stay in the log here (unless purged) but
/// are never relayed.
pub fn ranges_to_send(
    ours: &Clock,
    base: &Clock,
    blocked: &BTreeSet<PublicKey>,
) -> Vec<(PublicKey, u64, u64)> {
    ours.ahead_of(base)
        .filter(|(author, _, _)| !blocked.contains(author))
        .collect()
}

/// Whether the payload of `author`'s event limited to `audience` must be withheld from a
/// recipient that hosts exactly `hosts` (PROTOCOL 9.3): only its signed header travels then.
pub fn withhold(author: &PublicKey, audience: &Audience, hosts: &HashSet<PublicKey>) -> bool {
    !audience.allows(author, |k| hosts.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhizome_core::SecretKey;

    fn exporter(seed: u8) -> Exporter {
        let key = SecretKey::from_seed(&[seed; 32]).public_key();
        Exporter {
            instance_id: InstanceId::of(&key),
            public_key: key,
            name: "x".into(),
            age_recipient: None,
        }
    }

    #[test]
    fn a_peer_gets_what_it_lacks_except_blocked_authors() {
        let key = |s: u8| SecretKey::from_seed(&[s; 32]).public_key();
        let seq = |n: u64| rhizome_core::Seq::new(n).unwrap();
        let (a, b, c) = (key(1), key(2), key(3));
        let mut ours = Clock::new();
        ours.set(a, seq(5));
        ours.set(b, seq(3));
        ours.set(c, seq(2));
        let mut base = Clock::new();
        base.set(a, seq(2));
        base.set(b, seq(3));
        let mut got = ranges_to_send(&ours, &base, &BTreeSet::from([c]));
        got.sort();
        assert_eq!(got, vec![(a, 3, 5)]);
    }

    #[test]
    fn limited_payloads_go_only_where_the_author_or_a_member_is_hosted() {
        let key = |s: u8| SecretKey::from_seed(&[s; 32]).public_key();
        let (author, member, stranger) = (key(1), key(2), key(3));
        let limited = Audience::Limited(vec![member]);
        assert!(withhold(&author, &limited, &HashSet::from([stranger])));
        assert!(!withhold(&author, &limited, &HashSet::from([member])));
        assert!(!withhold(&author, &limited, &HashSet::from([author])));
        assert!(!withhold(&author, &Audience::Public, &HashSet::new()));
        assert!(withhold(
            &author,
            &Audience::Limited(vec![]),
            &HashSet::new()
        ));
    }

    #[test]
    fn admission_follows_trust_and_policy() {
        let own = SecretKey::from_seed(&[1; 32]).public_key();
        let (us, them) = (exporter(1), exporter(2));
        let tofu = Policy {
            trust_on_first_use: true,
        };
        let ask = Policy::default();
        assert_eq!(admit(&us, &own, None, &ask), Admission::Import);
        assert_eq!(
            admit(&them, &own, Some(Trust::Trusted), &ask),
            Admission::Import
        );
        assert_eq!(admit(&them, &own, None, &ask), Admission::Hold);
        assert_eq!(
            admit(&them, &own, Some(Trust::Unknown), &ask),
            Admission::Hold
        );
        assert_eq!(admit(&them, &own, None, &tofu), Admission::TrustAndImport);
        assert_eq!(
            admit(&them, &own, Some(Trust::Blocked), &tofu),
            Admission::Refuse(Refusal::Blocked(them.instance_id))
        );
    }
}
