//! Private keys at rest and in use: where a passphrase comes from ([`Unlock`], given by the
//! front-end: a terminal prompt, an environment variable, a form), sealing new keys, and
//! opening stored ones. A [`KeySession`] derives the sealing key once (Argon2id is slow on
//! purpose) and opens every key sealed under it, so a long-lived server pays the cost once.

use std::sync::{Arc, Mutex, PoisonError};

use rhizome_core::sealed::{self, KdfParams, SealingKey, StoredSecret};
use rhizome_core::{PublicKey, SecretKey};
use zeroize::Zeroizing;

use crate::{NodeError, Result};

/// Where passphrases come from. The node asks only when a sealed key must be opened or a new
/// key sealed; a front-end answers from a prompt, the environment or a form.
pub trait Unlock: Send + Sync {
    /// The passphrase of this instance's keys. `new` is true when it will seal keys of a new
    /// instance (a front-end may ask twice to confirm). An error is a [`NodeError::Passphrase`].
    fn passphrase(&self, new: bool) -> Result<Zeroizing<String>>;

    /// The passphrase a bundle is encrypted to (age scrypt), if the person gave one.
    fn bundle_passphrase(&self) -> Option<Zeroizing<String>> {
        None
    }
}

/// An [`Unlock`] with a fixed answer (servers that read it once at start, tests).
pub struct Passphrase(pub Zeroizing<String>);

impl Unlock for Passphrase {
    fn passphrase(&self, _new: bool) -> Result<Zeroizing<String>> {
        Ok(self.0.clone())
    }
}

/// An [`Unlock`] that has no passphrase to give: opening a sealed key fails clearly.
pub struct NoPassphrase;

impl Unlock for NoPassphrase {
    fn passphrase(&self, _new: bool) -> Result<Zeroizing<String>> {
        Err(NodeError::Passphrase(
            "a passphrase is needed to open this instance's keys".into(),
        ))
    }
}

/// How a new instance keeps its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// Sealed under a passphrase (Argon2id + XChaCha20-Poly1305).
    Passphrase,
    /// Stored unencrypted: anyone who can read the store can sign as its authors.
    Plain,
}

/// How keys are stored: plainly, or sealed with one derived key.
pub(crate) enum Keeper {
    Plain,
    Sealed(SealingKey),
}

impl Keeper {
    /// Seals (or stores plainly) a secret key.
    pub(crate) fn keep(&self, secret: &SecretKey) -> Result<StoredSecret> {
        Ok(match self {
            Self::Plain => sealed::plain(secret),
            Self::Sealed(k) => k.seal(secret, random()?, secret.public_key().to_hex().as_bytes()),
        })
    }

    /// Opens a stored secret whose public key is `owner`.
    pub(crate) fn open(&self, stored: &StoredSecret, owner: &PublicKey) -> Result<SecretKey> {
        let key = match self {
            Self::Plain => sealed::open_plain(stored),
            Self::Sealed(k) => k.open(stored, owner.to_hex().as_bytes()),
        }
        .map_err(|e| match e {
            sealed::SealError::WrongPassphrase => NodeError::Passphrase(
                "wrong passphrase: the keys did not open; nothing was written".into(),
            ),
            other => NodeError::Passphrase(other.to_string()),
        })?;
        if key.public_key() != *owner {
            return Err(NodeError::Passphrase(format!(
                "stored key for {owner} does not match its public key"
            )));
        }
        Ok(key)
    }
}

/// A passphrase source and the sealing keys derived from it so far.
pub struct KeySession {
    unlock: Box<dyn Unlock>,
    /// Derived sealing keys by the salt of the records they open (one per instance in practice).
    derived: Mutex<Vec<([u8; 16], Arc<Keeper>)>>,
}

impl KeySession {
    /// A session asking `unlock` when a passphrase is needed.
    pub fn new(unlock: impl Unlock + 'static) -> Arc<Self> {
        Arc::new(Self {
            unlock: Box::new(unlock),
            derived: Mutex::new(Vec::new()),
        })
    }

    pub(crate) fn unlock(&self) -> &dyn Unlock {
        &*self.unlock
    }

    /// A keeper for a new instance: asks for a new passphrase unless `protection` is plain.
    pub(crate) fn create(&self, protection: Protection) -> Result<Arc<Keeper>> {
        if protection == Protection::Plain {
            return Ok(Arc::new(Keeper::Plain));
        }
        let pass = self.unlock.passphrase(true)?;
        if pass.is_empty() {
            return Err(NodeError::Passphrase("empty passphrase".into()));
        }
        let salt = random()?;
        let keeper = Arc::new(Keeper::Sealed(
            SealingKey::derive(pass.as_bytes(), salt, KdfParams::default())
                .map_err(|e| NodeError::Passphrase(e.to_string()))?,
        ));
        self.remember(salt, &keeper);
        Ok(keeper)
    }

    /// The keeper that opens `existing`, deriving it (asking for the passphrase) the first
    /// time it is needed.
    pub(crate) fn keeper_for(&self, existing: &StoredSecret) -> Result<Arc<Keeper>> {
        let StoredSecret::Sealed { kdf, salt, .. } = existing else {
            return Ok(Arc::new(Keeper::Plain));
        };
        let salt: [u8; 16] = rhizome_core::ids::decode_hex(salt)
            .map_err(|e| NodeError::Passphrase(format!("stored key record has a bad salt: {e}")))?;
        if let Some(k) = self.lookup(&salt) {
            return Ok(k);
        }
        let pass = self.unlock.passphrase(false)?;
        let keeper = Arc::new(Keeper::Sealed(
            SealingKey::derive(pass.as_bytes(), salt, *kdf)
                .map_err(|e| NodeError::Passphrase(e.to_string()))?,
        ));
        self.remember(salt, &keeper);
        Ok(keeper)
    }

    /// Opens a stored secret key (asking for the passphrase once per session).
    pub(crate) fn open(&self, stored: &StoredSecret, owner: &PublicKey) -> Result<SecretKey> {
        let keeper = self.keeper_for(stored)?;
        let opened = keeper.open(stored, owner);
        if opened.is_err() {
            // A wrong passphrase must not stay cached: the next attempt asks again.
            self.forget(stored);
        }
        opened
    }

    fn lookup(&self, salt: &[u8; 16]) -> Option<Arc<Keeper>> {
        let derived = self.derived.lock().unwrap_or_else(PoisonError::into_inner);
        derived
            .iter()
            .find(|(s, _)| s == salt)
            .map(|(_, k)| Arc::clone(k))
    }

    fn remember(&self, salt: [u8; 16], keeper: &Arc<Keeper>) {
        let mut derived = self.derived.lock().unwrap_or_else(PoisonError::into_inner);
        derived.push((salt, Arc::clone(keeper)));
    }

    fn forget(&self, stored: &StoredSecret) {
        if let StoredSecret::Sealed { salt, .. } = stored {
            if let Ok(salt) = rhizome_core::ids::decode_hex::<16>(salt) {
                let mut derived = self.derived.lock().unwrap_or_else(PoisonError::into_inner);
                derived.retain(|(s, _)| *s != salt);
            }
        }
    }
}

/// Fresh random bytes from the operating system.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| NodeError::Io(format!("no randomness from the operating system: {e}")))?;
    Ok(b)
}

/// A new secret key from OS randomness.
pub(crate) fn new_secret() -> Result<SecretKey> {
    let seed = Zeroizing::new(random::<32>()?);
    Ok(SecretKey::from_seed(&seed))
}
