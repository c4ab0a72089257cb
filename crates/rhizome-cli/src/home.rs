//! Where an instance lives, opening its store, and unlocking its sealed keys.

use anyhow::{Context, Result};
use rhizome_core::sealed::{self, KdfParams, SealingKey, StoredSecret};
use rhizome_core::SecretKey;
use rhizome_store::prelude::*;
use rhizome_store::{LocalAuthor, StoreError};
use rhizome_store_sqlite::SqliteStore;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use crate::exit::{fail, HOME, PASSPHRASE};

/// The database file inside a home.
pub const DB_FILE: &str = "rhizome.db";

/// The home directory: `--home`, `RHIZOME_HOME`, or the platform data directory.
pub fn resolve(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    directories::ProjectDirs::from("org", "rhizome", "rhizome")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| {
            fail(
                HOME,
                "cannot find a data directory for this user; pass --home DIR",
            )
        })
}

/// Opens the store of an existing instance. Never creates anything.
pub fn open(home: &Path) -> Result<SqliteStore> {
    let db = home.join(DB_FILE);
    if !db.is_file() {
        return Err(fail(
            HOME,
            format!(
                "no Rhizome instance in {} (create one with `rhizome init --name NAME --home {}`)",
                home.display(),
                home.display()
            ),
        ));
    }
    Ok(SqliteStore::open_existing(&db)?)
}

/// Opens an existing instance for a command that only reads: falls back to a read-only open
/// when the home cannot be written (a write-protected stick), so reading still works.
pub fn open_for_reading(home: &Path) -> Result<SqliteStore> {
    match open(home) {
        Err(e)
            if e.downcast_ref::<StoreError>()
                .is_some_and(|s| matches!(s, StoreError::ReadOnly { .. })) =>
        {
            Ok(SqliteStore::open_read_only(&home.join(DB_FILE))?)
        }
        other => other,
    }
}

/// Fresh random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    Ok(b)
}

/// A new secret key from OS randomness.
pub fn new_secret() -> Result<SecretKey> {
    let seed = zeroize::Zeroizing::new(random::<32>()?);
    Ok(SecretKey::from_seed(&seed))
}

/// Reads the passphrase: `RHIZOME_PASSPHRASE`, else a prompt on the terminal.
pub fn passphrase(confirm: bool) -> Result<zeroize::Zeroizing<String>> {
    if let Ok(p) = std::env::var("RHIZOME_PASSPHRASE") {
        if p.is_empty() {
            return Err(fail(PASSPHRASE, "RHIZOME_PASSPHRASE is set but empty"));
        }
        return Ok(p.into());
    }
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            PASSPHRASE,
            "a passphrase is needed: set RHIZOME_PASSPHRASE (no terminal to prompt on)",
        ));
    }
    let p = zeroize::Zeroizing::new(
        rpassword::prompt_password("Passphrase: ").context("reading the passphrase")?,
    );
    if p.is_empty() {
        return Err(fail(
            PASSPHRASE,
            "empty passphrase (use --no-passphrase to opt out explicitly)",
        ));
    }
    if confirm {
        let again = zeroize::Zeroizing::new(
            rpassword::prompt_password("Passphrase again: ").context("reading the passphrase")?,
        );
        if *again != *p {
            return Err(fail(PASSPHRASE, "the two passphrases differ"));
        }
    }
    Ok(p)
}

/// How new keys are stored on this instance.
pub enum Keeper {
    /// Unencrypted (`--no-passphrase`).
    Plain,
    /// Sealed with this derived key.
    Sealed(SealingKey),
}

impl Keeper {
    /// A keeper for a new instance: asks for a passphrase unless `no_passphrase`.
    pub fn create(no_passphrase: bool) -> Result<Self> {
        if no_passphrase {
            return Ok(Self::Plain);
        }
        let pass = passphrase(true)?;
        Ok(Self::Sealed(SealingKey::derive(
            pass.as_bytes(),
            random()?,
            KdfParams::default(),
        )?))
    }

    /// A keeper that can open `existing` (asks for the passphrase if it is sealed).
    pub fn unlock(existing: &StoredSecret) -> Result<Self> {
        match existing {
            StoredSecret::Plain { .. } => Ok(Self::Plain),
            StoredSecret::Sealed { kdf, salt, .. } => {
                let salt: [u8; 16] = rhizome_core::ids::decode_hex(salt)
                    .map_err(|e| anyhow::anyhow!("stored key record has a bad salt: {e}"))?;
                let pass = passphrase(false)?;
                Ok(Self::Sealed(SealingKey::derive(
                    pass.as_bytes(),
                    salt,
                    *kdf,
                )?))
            }
        }
    }

    /// Seals (or stores plainly) a secret key.
    pub fn keep(&self, secret: &SecretKey) -> Result<StoredSecret> {
        Ok(match self {
            Self::Plain => sealed::plain(secret),
            Self::Sealed(k) => k.seal(secret, random()?, secret.public_key().to_hex().as_bytes()),
        })
    }

    /// Opens a stored secret whose public key is `owner`.
    pub fn open(
        &self,
        stored: &StoredSecret,
        owner: &rhizome_core::PublicKey,
    ) -> Result<SecretKey> {
        let key = match self {
            Self::Plain => sealed::open_plain(stored),
            Self::Sealed(k) => k.open(stored, owner.to_hex().as_bytes()),
        }
        .map_err(|e| match e {
            sealed::SealError::WrongPassphrase => fail(
                PASSPHRASE,
                "wrong passphrase: the keys did not open; nothing was written",
            ),
            other => fail(PASSPHRASE, other.to_string()),
        })?;
        if key.public_key() != *owner {
            return Err(fail(
                PASSPHRASE,
                format!("stored key for {owner} does not match its public key"),
            ));
        }
        Ok(key)
    }
}

/// The secret key of a local author, unlocking it with the passphrase if sealed.
pub fn unlock_author(author: &LocalAuthor) -> Result<SecretKey> {
    Keeper::unlock(&author.secret)?.open(&author.secret, &author.public_key)
}

/// Makes sure this instance holds `author`'s signed declaration that it hosts them (PROTOCOL
/// 9.2), published in its manifests; signed while the author's key is open anyway.
pub fn declare_host(store: &mut SqliteStore, author: &SecretKey) -> Result<()> {
    let here = rhizome_core::InstanceId::of(&KeyStore::identity(store)?.public_key);
    let held = store
        .local_hosts()?
        .iter()
        .any(|d| d.author == author.public_key() && d.instance_id == here);
    if !held {
        let d = rhizome_core::privacy::HostDeclaration::sign(author, here, crate::now_ms());
        store.add_local_host(&d)?;
    }
    Ok(())
}
