//! `init`, `author add|list`, `whoami`.

use anyhow::Result;
use rhizome_node::{AuthorInfo, InitRequest, Node, Protection, StoreLocation};
use serde_json::json;
use std::path::Path;

use crate::home;

/// `rhizome init`.
pub fn init(
    home_dir: &Path,
    location: &StoreLocation,
    name: &str,
    author: Option<&str>,
    no_passphrase: bool,
    json: bool,
) -> Result<()> {
    let request = InitRequest {
        name: name.to_string(),
        author: author.map(str::to_string),
        protection: if no_passphrase {
            Protection::Plain
        } else {
            Protection::Passphrase
        },
    };
    let (_, info) = Node::init(location.clone(), home::keys(), &request)?;
    let first = info.authors.first();
    if json {
        say!(
            "{}",
            json!({"instance_id": info.instance_id, "name": name, "public_key": info.public_key,
                   "home": home_dir, "keys_encrypted": !no_passphrase,
                   "author": {"name": first.map(|a| &a.name), "public_key": first.map(|a| a.public_key)}})
        );
    } else {
        say!("Created instance {name:?} in {}", location.describe());
        say!("  instance id  {}", info.instance_id);
        if let Some(a) = first {
            say!("  author       {} ({})", a.name, a.public_key);
        }
        if no_passphrase {
            say!("  keys         NOT encrypted (--no-passphrase): anyone who can read the store can sign as you");
        } else {
            say!("  keys         sealed with your passphrase (Argon2id + XChaCha20-Poly1305)");
        }
    }
    Ok(())
}

/// `rhizome author add`.
pub fn author_add(location: &StoreLocation, name: &str, json: bool) -> Result<()> {
    let author = home::open(location)?.add_author(name)?;
    if json {
        say!("{}", json!({"name": name, "public_key": author.public_key}));
    } else {
        say!("Added author {name} ({})", author.public_key);
    }
    Ok(())
}

/// `rhizome author list`.
pub fn author_list(location: &StoreLocation, json: bool) -> Result<()> {
    let authors = home::open_for_reading(location)?.authors()?;
    if json {
        say!("{}", serde_json::to_value(&authors)?);
    } else {
        for a in &authors {
            say!("{:<20} {}{}", a.name, a.public_key, default_mark(a));
        }
    }
    Ok(())
}

fn default_mark(a: &AuthorInfo) -> &'static str {
    if a.is_default {
        " (default)"
    } else {
        ""
    }
}

/// `rhizome whoami`.
pub fn whoami(home_dir: &Path, location: &StoreLocation, json: bool) -> Result<()> {
    let info = home::open_for_reading(location)?.whoami()?;
    if json {
        let mut v = serde_json::to_value(&info)?;
        v["home"] = json!(home_dir);
        say!("{v}");
    } else {
        say!("instance     {}", info.name);
        say!("instance id  {}", info.instance_id);
        say!("public key   {}", info.public_key);
        say!("home         {}", location.describe());
        if info.keys_encrypted {
            say!("keys         sealed with a passphrase");
        } else {
            say!("keys         NOT encrypted (created with --no-passphrase)");
        }
        say!("authors");
        for a in &info.authors {
            say!("  {:<18} {}{}", a.name, a.public_key, default_mark(a));
        }
    }
    Ok(())
}
