//! The signed instance descriptor served at `GET /.well-known/rhizome` (PROTOCOL 10.3): who
//! this instance is (id, key, name, age recipient), the authors it hosts (their host
//! declarations) and the protocol versions it speaks, signed with the instance key in the
//! manifest's style (PROTOCOL 8.3, with its own prefix).

use rhizome_core::canonical::{parse_strict, to_canonical};
use rhizome_core::privacy::HostDeclaration;
use rhizome_core::{Hash, InstanceId, PublicKey, SecretKey, Signature};
use rhizome_node::live::SelfDescription;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{HttpsError, Result};

/// The descriptor's `format`.
pub const FORMAT: &str = "rhizome-instance/1";

/// The signing prefix (ASCII, then one line feed).
pub const DESCRIPTOR_PREFIX: &[u8] = b"RHIZOME-DESCRIPTOR-V1\n";

/// The bundle format the server reads and writes.
pub const BUNDLE_PROTOCOL: &str = "rhizome-bundle/1";

/// This HTTPS profile's version.
pub const HTTPS_PROTOCOL: &str = "rhizome-https/1";

/// Largest descriptor accepted, in bytes.
pub const MAX_DESCRIPTOR: usize = 1 << 20;

/// The protocol versions an instance speaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocols {
    /// Bundle format: `rhizome-bundle/1`.
    pub bundle: String,
    /// HTTPS profile: `rhizome-https/1`.
    pub https: String,
}

/// A signed instance descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Descriptor {
    /// Always [`FORMAT`].
    pub format: String,
    /// The instance id of `public_key`.
    pub instance_id: InstanceId,
    /// The instance key.
    pub public_key: PublicKey,
    /// The instance name (free text: escape it before showing it).
    pub name: String,
    /// Where bundles for this instance may be encrypted to.
    pub age_recipient: String,
    /// Host declarations of the authors it hosts.
    pub hosts: Vec<HostDeclaration>,
    /// Protocol versions.
    pub protocols: Protocols,
    /// When it was signed, ms since the epoch.
    pub created_at: u64,
    /// The instance key's signature.
    pub sig: Signature,
}

fn message(unsigned: &Value) -> Vec<u8> {
    let mut m = DESCRIPTOR_PREFIX.to_vec();
    m.extend_from_slice(Hash::digest(&to_canonical(unsigned)).as_bytes());
    m
}

fn unsigned_value(d: &Descriptor) -> Result<Value> {
    let mut v = serde_json::to_value(d).map_err(|e| HttpsError::Protocol(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("sig");
    }
    Ok(v)
}

impl Descriptor {
    /// Signs a descriptor of `me` with its instance key, at `now` (ms).
    pub fn sign(me: &SelfDescription, key: &SecretKey, now: u64) -> Result<Descriptor> {
        let mut d = Descriptor {
            format: FORMAT.into(),
            instance_id: me.instance_id,
            public_key: me.public_key,
            name: me.name.clone(),
            age_recipient: me.age_recipient.clone(),
            hosts: me.hosts.clone(),
            protocols: Protocols {
                bundle: BUNDLE_PROTOCOL.into(),
                https: HTTPS_PROTOCOL.into(),
            },
            created_at: now,
            sig: Signature::from_bytes([0; 64]),
        };
        d.sig = key.sign(&message(&unsigned_value(&d)?));
        Ok(d)
    }

    /// Its canonical JSON, `sig` last.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let v = serde_json::to_value(self).map_err(|e| HttpsError::Protocol(e.to_string()))?;
        Ok(to_canonical(&v))
    }

    /// Parses and verifies a descriptor: strict JSON, exactly the members above, the format,
    /// the id of the key, the signature, and every host declaration for this instance.
    pub fn parse(bytes: &[u8]) -> Result<Descriptor> {
        let bad =
            |why: String| HttpsError::Peer(format!("the instance descriptor is invalid: {why}"));
        if bytes.len() > MAX_DESCRIPTOR {
            return Err(bad("over 1 MiB".into()));
        }
        let v = parse_strict(bytes).map_err(|e| bad(e.to_string()))?;
        let d: Descriptor = serde_json::from_value(v).map_err(|e| bad(e.to_string()))?;
        if d.format != FORMAT {
            return Err(bad(format!("format {:?}, not {FORMAT:?}", d.format)));
        }
        d.public_key.check().map_err(|e| bad(e.to_string()))?;
        if InstanceId::of(&d.public_key) != d.instance_id {
            return Err(bad("instance_id is not the id of public_key".into()));
        }
        d.public_key
            .verify(&message(&unsigned_value(&d)?), &d.sig)
            .map_err(|_| bad("signature does not verify".into()))?;
        for (i, h) in d.hosts.iter().enumerate() {
            h.verify(&d.instance_id)
                .map_err(|e| bad(format!("hosts[{i}]: {e}")))?;
        }
        Ok(d)
    }
}
