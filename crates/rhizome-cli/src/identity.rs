//! `init`, `author add|list`, `whoami`.

use anyhow::Result;
use rhizome_core::sealed::StoredSecret;
use rhizome_core::InstanceId;
use rhizome_store::{Identity, LocalAuthor, SqliteStore, Store, StoreError};
use serde_json::json;
use std::path::Path;

use crate::cli::InitArgs;
use crate::exit::{fail, HOME, INVALID_INPUT};
use crate::home::{self, Keeper, DB_FILE};
use crate::now_ms;
use crate::show::author_label;
use crate::write::{profile_payload, publish_profile};

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
pub fn init(home: &Path, args: &InitArgs, json: bool) -> Result<()> {
    let (name, author, no_passphrase) =
        (&args.name[..], args.author.as_deref(), args.no_passphrase);
    check_name("instance name", name)?;
    let author_name = author.unwrap_or(name);
    check_name("author name", author_name)?;
    // The first author publishes a profile with its name: refuse a name it cannot carry now.
    let profile = (!args.no_profile)
        .then(|| profile_payload(author_name, None))
        .transpose()?;
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
    let published = profile
        .map(|p| publish_profile(&mut store, &author_key, &p))
        .transpose()?;
    let id = InstanceId::of(&identity.public_key);
    if json {
        say!(
            "{}",
            json!({"instance_id": id, "name": name, "public_key": identity.public_key,
                   "home": home, "keys_encrypted": !no_passphrase,
                   "author": {"name": author_name, "public_key": first.public_key,
                              "profile_event": published.map(|e| e.hash)}})
        );
    } else {
        say!("Created instance {name:?} in {}", home.display());
        say!("  instance id  {id}");
        say!("  author       {author_name} ({})", first.public_key);
        say!(
            "  profile      {}",
            published_note(author_name, &first.public_key, published.is_some())
        );
        if no_passphrase {
            say!("  keys         NOT encrypted (--no-passphrase): anyone who can read {DB_FILE} can sign as you");
        } else {
            say!("  keys         sealed with your passphrase (Argon2id + XChaCha20-Poly1305)");
        }
    }
    Ok(())
}

/// `rhizome author add`.
pub fn author_add(home: &Path, name: &str, with_profile: bool, json: bool) -> Result<()> {
    check_name("author name", name)?;
    let profile = with_profile
        .then(|| profile_payload(name, None))
        .transpose()?;
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
    let published = profile
        .map(|p| publish_profile(&mut store, &key, &p))
        .transpose()?;
    if json {
        say!(
            "{}",
            json!({"name": name, "public_key": author.public_key,
                   "profile_event": published.map(|e| e.hash)})
        );
    } else {
        say!("Added author {name} ({})", author.public_key);
        say!(
            "  profile  {}",
            published_note(name, &author.public_key, published.is_some())
        );
    }
    Ok(())
}

/// What a person is told when a profile was published for them.
fn published_note(name: &str, key: &rhizome_core::PublicKey, published: bool) -> String {
    if published {
        format!(
            "published: others see {} (public; change it with `rhizome profile --name NAME`)",
            author_label(Some(name), key)
        )
    } else {
        format!(
            "none published: others see {} (publish one with `rhizome profile --name NAME`)",
            author_label(None, key)
        )
    }
}

fn authors_json(store: &SqliteStore, authors: &[LocalAuthor]) -> Result<serde_json::Value> {
    authors
        .iter()
        .map(|a| {
            let profile = store.profile(&a.public_key)?;
            Ok(
                json!({"name": a.name, "public_key": a.public_key, "default": a.is_default,
                      "profile": profile.map(|p| json!({"name": p.name, "about": p.about}))}),
            )
        })
        .collect()
}

/// A local author's line: local name, key, and the name others see if it differs.
fn author_line(store: &SqliteStore, a: &LocalAuthor, width: usize) -> Result<String> {
    let mark = if a.is_default { " (default)" } else { "" };
    let shown = match store.profile(&a.public_key)? {
        Some(p) if p.name != a.name => format!(
            "  others see {}",
            author_label(Some(&p.name), &a.public_key)
        ),
        Some(_) => String::new(),
        None => "  (no profile published)".to_string(),
    };
    Ok(format!("{:<width$} {}{mark}{shown}", a.name, a.public_key))
}

/// `rhizome author list`.
pub fn author_list(home: &Path, json: bool) -> Result<()> {
    let store = home::open_for_reading(home)?;
    let authors = store.authors()?;
    if json {
        say!("{}", authors_json(&store, &authors)?);
    } else {
        for a in &authors {
            say!("{}", author_line(&store, a, 20)?);
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
                   "authors": authors_json(&store, &authors)?})
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
            say!("  {}", author_line(&store, a, 18)?);
        }
    }
    Ok(())
}
