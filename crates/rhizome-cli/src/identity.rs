//! `init`, `author add|list`, `whoami`.

use anyhow::Result;
use rhizome_core::PublicKey;
use rhizome_node::read::label;
use rhizome_node::{AuthorInfo, InitRequest, Node, Protection, StoreLocation};
use serde_json::json;
use std::path::Path;

use crate::cli::InitArgs;
use crate::home;

/// `rhizome init`.
pub fn init(home_dir: &Path, location: &StoreLocation, args: &InitArgs, json: bool) -> Result<()> {
    let request = InitRequest {
        name: args.name.clone(),
        author: args.author.clone(),
        protection: if args.no_passphrase {
            Protection::Plain
        } else {
            Protection::Passphrase
        },
        publish_profile: !args.no_profile,
    };
    let (node, info) = Node::init(location.clone(), home::keys(), &request)?;
    home::notify(node);
    let Some(first) = info.authors.first() else {
        anyhow::bail!("the new instance has no author");
    };
    if json {
        say!(
            "{}",
            json!({"instance_id": info.instance_id, "name": args.name, "public_key": info.public_key,
                   "home": home_dir, "keys_encrypted": !args.no_passphrase,
                   "author": {"name": first.name, "public_key": first.public_key,
                              "profile_event": first.profile_event}})
        );
    } else {
        say!(
            "Created instance {:?} in {}",
            args.name,
            location.describe()
        );
        say!("  instance id  {}", info.instance_id);
        say!("  author       {} ({})", first.name, first.public_key);
        say!(
            "  profile      {}",
            published_note(
                &first.name,
                &first.public_key,
                first.profile_event.is_some()
            )
        );
        if args.no_passphrase {
            say!("  keys         NOT encrypted (--no-passphrase): anyone who can read the store can sign as you");
        } else {
            say!("  keys         sealed with your passphrase (Argon2id + XChaCha20-Poly1305)");
        }
    }
    Ok(())
}

/// `rhizome author add`.
pub fn author_add(
    location: &StoreLocation,
    name: &str,
    with_profile: bool,
    json: bool,
) -> Result<()> {
    let author = home::open(location)?.add_author(name, with_profile)?;
    if json {
        say!(
            "{}",
            json!({"name": name, "public_key": author.public_key,
                   "profile_event": author.profile_event})
        );
    } else {
        say!("Added author {name} ({})", author.public_key);
        say!(
            "  profile  {}",
            published_note(name, &author.public_key, author.profile_event.is_some())
        );
    }
    Ok(())
}

/// What a person is told when a profile was (or was not) published for them.
fn published_note(name: &str, key: &PublicKey, published: bool) -> String {
    if published {
        format!(
            "published: others see {} (public; change it with `rhizome profile --name NAME`)",
            label(Some(name), key)
        )
    } else {
        format!(
            "none published: others see {} (publish one with `rhizome profile --name NAME`)",
            label(None, key)
        )
    }
}

/// A local author's line: local name, key, and the name others see if it differs.
fn author_line(a: &AuthorInfo, width: usize) -> String {
    let mark = if a.is_default { " (default)" } else { "" };
    let shown = match &a.profile {
        Some(p) if p.name != a.name => {
            format!("  others see {}", label(Some(&p.name), &a.public_key))
        }
        Some(_) => String::new(),
        None => "  (no profile published)".to_string(),
    };
    format!("{:<width$} {}{mark}{shown}", a.name, a.public_key)
}

/// `rhizome author list`.
pub fn author_list(location: &StoreLocation, json: bool) -> Result<()> {
    let authors = home::open_for_reading(location)?.authors()?;
    if json {
        say!("{}", serde_json::to_value(&authors)?);
    } else {
        for a in &authors {
            say!("{}", author_line(a, 20));
        }
    }
    Ok(())
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
            say!("  {}", author_line(a, 18));
        }
    }
    Ok(())
}
