//! Rhizome's node: one instance's use cases as a library, so that every front-end (the
//! `rhizome` CLI, the HTTPS sync server and client, the local web page) behaves alike and none
//! holds policy of its own. A front-end parses input, asks for passphrases through
//! [`Unlock`], calls a [`Node`] method, and presents the value it returns.
//!
//! What the node owns: identity and keys ([`keys`]), writing events (schema check, circle
//! audiences, the append retry: [`write`]), reading the views for people ([`read`]), carrying
//! bundles (export to any `Write`, import from any `BufRead` in one pass, admission, quarantine:
//! [`exchange`]), and trust ([`trust`]). Decisions that need no I/O live below it, in
//! `rhizome-core` (chain and view rules) and `rhizome-sync` (admission, export planning); the
//! node reads their inputs from the store and acts on their answers.
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod error;
pub mod exchange;
pub mod keys;
pub mod live;
mod location;
pub mod migrate;
pub mod read;
pub mod text;
pub mod trust;
pub mod write;

use std::sync::Arc;

use rhizome_core::sealed::StoredSecret;
use rhizome_core::{Hash, InstanceId, PublicKey, SecretKey};
use rhizome_store::{Identity, LocalAuthor, Store};
use serde::Serialize;

pub use error::{NodeError, Result};
pub use keys::{KeySession, NoPassphrase, Passphrase, Protection, Unlock};
pub use location::{redact, StoreLocation, DB_FILE};
pub use rhizome_sync::{Policy, Transport};

/// The values front-ends present, re-exported so that a front-end depends on the node alone.
pub use rhizome_store::{
    Circle, Cursor, ForkRecord, Held, Peer, Reply, Reshare, StoreError, Trust,
};
pub use rhizome_sync::{ImportReport, Inspection, Refusal, Status};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One instance, open: its store, where it lives, its key session and its policy.
pub struct Node {
    store: Box<dyn Store>,
    location: StoreLocation,
    keys: Arc<KeySession>,
    policy: Policy,
    notices: Vec<String>,
}

/// What `init` asks for.
#[derive(Debug, Clone)]
pub struct InitRequest {
    /// The instance's name, shown to peers.
    pub name: String,
    /// The first author's local name (default: the instance name).
    pub author: Option<String>,
    /// How keys are kept.
    pub protection: Protection,
    /// Publish a PROFILE event with the first author's name (public: it travels with their
    /// events to every instance that gets them).
    pub publish_profile: bool,
}

/// A local author, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct AuthorInfo {
    /// Local name.
    pub name: String,
    /// Public key: the feed id.
    pub public_key: PublicKey,
    /// The author used when none is named.
    #[serde(rename = "default")]
    pub is_default: bool,
    /// The profile others see, if one is published.
    pub profile: Option<ProfileInfo>,
    /// The profile event published just now (by `init` or `add_author`).
    #[serde(skip)]
    pub profile_event: Option<Hash>,
}

/// A published profile, as shown.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileInfo {
    /// The name the author goes by.
    pub name: String,
    /// A few words about the author.
    pub about: Option<String>,
}

/// The instance, as shown by `whoami`.
#[derive(Debug, Clone, Serialize)]
pub struct InstanceInfo {
    /// Instance id (first 16 bytes of SHA-256 of the key, hex).
    pub instance_id: InstanceId,
    /// Instance name.
    pub name: String,
    /// Instance public key.
    pub public_key: PublicKey,
    /// Whether keys are sealed with a passphrase.
    pub keys_encrypted: bool,
    /// Creation time, ms since the epoch.
    pub created_at: u64,
    /// Local authors, the default first.
    pub authors: Vec<AuthorInfo>,
}

/// Instance and author names: 1-64 characters, no control characters or surrounding spaces.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.trim().is_empty()
        && name.len() <= 64
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(NodeError::invalid(format!(
            "{what} {name:?} must be 1-64 characters, without control characters or surrounding spaces"
        )))
    }
}

impl Node {
    /// Opens an existing instance.
    pub fn open(location: StoreLocation, keys: Arc<KeySession>, policy: Policy) -> Result<Node> {
        let store = location.open()?;
        Ok(Node {
            store,
            notices: location.make_private(),
            location,
            keys,
            policy,
        })
    }

    /// Opens an existing instance for commands that only read (falls back to a read-only
    /// open of a home that cannot be written).
    pub fn open_for_reading(location: StoreLocation, keys: Arc<KeySession>) -> Result<Node> {
        let store = location.open_for_reading()?;
        Ok(Node {
            store,
            notices: location.make_private(),
            location,
            keys,
            policy: Policy::default(),
        })
    }

    /// Creates a new instance: its key, a first author (who publishes that this instance
    /// hosts them), all in one transaction. Refuses, before asking for any passphrase, where
    /// an instance exists.
    pub fn init(
        location: StoreLocation,
        keys: Arc<KeySession>,
        request: &InitRequest,
    ) -> Result<(Node, InstanceInfo)> {
        check_name("instance name", &request.name)?;
        let author_name = request.author.as_deref().unwrap_or(&request.name);
        check_name("author name", author_name)?;
        if request.publish_profile {
            // Refuse, before anything is created, a name a profile cannot carry.
            write::Draft::profile(author_name, None)?;
        }
        if location.exists() {
            // A store without identity (a failed init) is reused.
            match location.create()?.identity() {
                Err(StoreError::NotInitialized) => {}
                Err(e) => return Err(e.into()),
                Ok(id) => {
                    return Err(NodeError::Home(format!(
                        "{} already holds instance {:?} ({}); nothing was changed",
                        location.describe(),
                        id.name,
                        InstanceId::of(&id.public_key)
                    )))
                }
            }
        }
        let keeper = keys.create(request.protection)?;
        let instance_key = keys::new_secret()?;
        let author_key = keys::new_secret()?;
        let identity = Identity {
            name: request.name.clone(),
            public_key: instance_key.public_key(),
            secret: keeper.keep(&instance_key)?,
            created_at: now_ms(),
        };
        let first = LocalAuthor {
            name: author_name.to_string(),
            public_key: author_key.public_key(),
            secret: keeper.keep(&author_key)?,
            is_default: true,
        };
        let mut store = location.create()?;
        store.init(&identity, &first)?;
        let mut node = Node {
            store,
            notices: location.make_private(),
            location,
            keys,
            policy: Policy::default(),
        };
        node.declare_host(&author_key)?;
        let published = request
            .publish_profile
            .then(|| node.publish_profile(&author_key, author_name))
            .transpose()?;
        let mut info = node.whoami()?;
        if let Some(first) = info.authors.first_mut() {
            first.profile_event = published;
        }
        Ok((node, info))
    }

    /// Sets the policy (trust on first use).
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// What a person should be told about opening this instance (its home was readable by
    /// others and has been made private), once: taken by the front-end to show.
    pub fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }

    /// Where this instance lives.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    /// The store, for reads the node does not wrap (benchmarks, tests).
    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// The instance identity, id and authors.
    pub fn whoami(&self) -> Result<InstanceInfo> {
        let id = self.store.identity()?;
        let authors = self.store.authors()?;
        Ok(InstanceInfo {
            instance_id: InstanceId::of(&id.public_key),
            name: id.name,
            public_key: id.public_key,
            keys_encrypted: matches!(id.secret, StoredSecret::Sealed { .. }),
            created_at: id.created_at,
            authors: authors
                .iter()
                .map(|a| self.author_info(a))
                .collect::<Result<_>>()?,
        })
    }

    fn author_info(&self, a: &LocalAuthor) -> Result<AuthorInfo> {
        Ok(AuthorInfo {
            name: a.name.clone(),
            public_key: a.public_key,
            is_default: a.is_default,
            profile: self.store.profile(&a.public_key)?.map(|p| ProfileInfo {
                name: p.name,
                about: p.about,
            }),
            profile_event: None,
        })
    }

    /// Local authors, the default first.
    pub fn authors(&self) -> Result<Vec<AuthorInfo>> {
        self.store
            .authors()?
            .iter()
            .map(|a| self.author_info(a))
            .collect()
    }

    /// Adds a local author, sealed under the instance's passphrase (proved first by opening
    /// the instance key, so the new key is never sealed under a typo), and, with
    /// `publish_profile`, publishes their name in a PROFILE event.
    pub fn add_author(&mut self, name: &str, publish_profile: bool) -> Result<AuthorInfo> {
        check_name("author name", name)?;
        if publish_profile {
            write::Draft::profile(name, None)?;
        }
        if self.store.authors()?.iter().any(|a| a.name == name) {
            return Err(StoreError::AuthorExists(name.into()).into());
        }
        let identity = self.store.identity()?;
        let keeper = self.keys.keeper_for(&identity.secret)?;
        keeper.open(&identity.secret, &identity.public_key)?;
        let key = keys::new_secret()?;
        let author = LocalAuthor {
            name: name.to_string(),
            public_key: key.public_key(),
            secret: keeper.keep(&key)?,
            is_default: false,
        };
        self.store.add_author(&author)?;
        self.declare_host(&key)?;
        let published = publish_profile
            .then(|| self.publish_profile(&key, name))
            .transpose()?;
        let mut info = self.author_info(&author)?;
        info.profile_event = published;
        Ok(info)
    }

    /// The instance's secret key (signs manifests, derives the age identity).
    pub fn instance_key(&self) -> Result<SecretKey> {
        let id = self.store.identity()?;
        self.keys.open(&id.secret, &id.public_key)
    }

    /// Makes sure this instance holds `author`'s signed declaration that it hosts them
    /// (PROTOCOL 9.2), published in its manifests; signed while the author's key is open.
    pub(crate) fn declare_host(&mut self, author: &SecretKey) -> Result<()> {
        let here = InstanceId::of(&self.store.identity()?.public_key);
        let held = self
            .store
            .local_hosts()?
            .iter()
            .any(|d| d.author == author.public_key() && d.instance_id == here);
        if !held {
            let d = rhizome_core::privacy::HostDeclaration::sign(author, here, now_ms());
            self.store.add_local_host(&d)?;
        }
        Ok(())
    }
}
