//! `init`, `author add|list`, `whoami`.

use anyhow::Result;
use rhizome_core::sealed::StoredSecret;
use rhizome_core::InstanceId;
use rhizome_store::prelude::*;
use rhizome_store::{Identity, LocalAuthor, StoreError};
use rhizome_store_sqlite::SqliteStore;
use serde_json::json;
use std::path::Path;

use crate::exit::{fail, HOME, INVALID_INPUT};
use crate::home::{self, Keeper, DB_FILE};
use crate::now_ms;

/// Instance and author names: 1-64 characters, no control characters or surrounding spaces.
pub fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.trim().is_empty()
        && name.len() <= 64
        && name.trim() == name
        && !name.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(fail(
            INVALID_INPUT,
            format!("{what} {name:?} must be 1-64 characters, without control characters or surrounding spaces"),
        ))
    }
}

/// `rhizome init`.
pub fn init(
    home: &Path,
    name: &str,
    author: Option<&str>,
    no_passphrase: bool,
    json: bool,
) -> Result<()> {
    check_name("instance name", name)?;
    let author_name = author.unwrap_or(name);
    check_name("author name", author_name)?;
    let db = home.join(DB_FILE);
    if db.exists() {
        // Refuse before asking for anything; a file without identity (a failed init) is reused.
        match SqliteStore::open(&db)?.identity() {
            Err(StoreError::NotInitialized) => {}
            Err(e) => return Err(e.into()),
            Ok(id) => {
                return Err(fail(
                    HOME,
                    format!(
                        "{} already holds instance {:?} ({}); nothing was changed",
                        home.display(),
                        id.name,
                        InstanceId::of(&id.public_key)
                    ),
                ))
            }
        }
    }
    let keeper = Keeper::create(no_passphrase)?;
    let instance_key = home::new_secret()?;
    let author_key = home::new_secret()?;
    let identity = Identity {
        name: name.to_string(),
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
    std::fs::create_dir_all(home)
        .map_err(|e| fail(HOME, format!("cannot create home {}: {e}", home.display())))?;
    let mut store = SqliteStore::open(&db)?;
    store.init(&identity, &first)?;
    home::declare_host(&mut store, &author_key)?;
    let id = InstanceId::of(&identity.public_key);
    if json {
        say!(
            "{}",
            json!({"instance_id": id, "name": name, "public_key": identity.public_key,
                   "home": home, "keys_encrypted": !no_passphrase,
                   "author": {"name": author_name, "public_key": first.public_key}})
        );
    } else {
        say!("Created instance {name:?} in {}", home.display());
        say!("  instance id  {id}");
        say!("  author       {author_name} ({})", first.public_key);
        if no_passphrase {
            say!("  keys         NOT encrypted (--no-passphrase): anyone who can read {DB_FILE} can sign as you");
        } else {
            say!("  keys         sealed with your passphrase (Argon2id + XChaCha20-Poly1305)");
        }
    }
    Ok(())
}

/// `rhizome author add`.
pub fn author_add(home: &Path, name: &str, json: bool) -> Result<()> {
    check_name("author name", name)?;
    let mut store = home::open(home)?;
    if store.authors()?.iter().any(|a| a.name == name) {
        return Err(StoreError::AuthorExists(name.into()).into());
    }
    let identity = store.identity()?;
    // Unlock the instance key first: proves the passphrase, so the new key is sealed under
    // the same one and not under a typo.
    let keeper = Keeper::unlock(&identity.secret)?;
    keeper.open(&identity.secret, &identity.public_key)?;
    let key = home::new_secret()?;
    let author = LocalAuthor {
        name: name.to_string(),
        public_key: key.public_key(),
        secret: keeper.keep(&key)?,
        is_default: false,
    };
    store.add_author(&author)?;
    home::declare_host(&mut store, &key)?;
    if json {
        say!("{}", json!({"name": name, "public_key": author.public_key}));
    } else {
        say!("Added author {name} ({})", author.public_key);
    }
    Ok(())
}

fn authors_json(authors: &[LocalAuthor]) -> serde_json::Value {
    authors
        .iter()
        .map(|a| json!({"name": a.name, "public_key": a.public_key, "default": a.is_default}))
        .collect()
}

/// `rhizome author list`.
pub fn author_list(home: &Path, json: bool) -> Result<()> {
    let store = home::open_for_reading(home)?;
    let authors = store.authors()?;
    if json {
        say!("{}", authors_json(&authors));
    } else {
        for a in &authors {
            let mark = if a.is_default { " (default)" } else { "" };
            say!("{:<20} {}{mark}", a.name, a.public_key);
        }
    }
    Ok(())
}

/// `rhizome whoami`.
pub fn whoami(home: &Path, json: bool) -> Result<()> {
    let store = home::open_for_reading(home)?;
    let id = store.identity()?;
    let authors = store.authors()?;
    let encrypted = matches!(id.secret, StoredSecret::Sealed { .. });
    let instance_id = InstanceId::of(&id.public_key);
    if json {
        say!(
            "{}",
            json!({"instance_id": instance_id, "name": id.name, "public_key": id.public_key,
                   "home": home, "keys_encrypted": encrypted, "created_at": id.created_at,
                   "authors": authors_json(&authors)})
        );
    } else {
        say!("instance     {}", id.name);
        say!("instance id  {instance_id}");
        say!("public key   {}", id.public_key);
        say!("home         {}", home.display());
        if encrypted {
            say!("keys         sealed with a passphrase");
        } else {
            say!("keys         NOT encrypted (created with --no-passphrase)");
        }
        say!("authors");
        for a in &authors {
            let mark = if a.is_default { " (default)" } else { "" };
            say!("  {:<18} {}{mark}", a.name, a.public_key);
        }
    }
    Ok(())
}
