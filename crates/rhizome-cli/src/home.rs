//! Where an instance lives, and the terminal's side of keys: passphrases from
//! `RHIZOME_PASSPHRASE` or a prompt. Everything else about keys and stores is the node's.

use anyhow::Result;
use rhizome_node::{KeySession, Node, NodeError, Policy, StoreLocation, Unlock};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

use crate::exit::{fail, HOME};

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

/// Passphrases for a person at a terminal, or a script: `RHIZOME_PASSPHRASE`, else a prompt.
/// Bundles encrypted to a passphrase: `RHIZOME_BUNDLE_PASSPHRASE`.
pub struct Prompt;

impl Unlock for Prompt {
    fn passphrase(&self, new: bool) -> Result<Zeroizing<String>, NodeError> {
        if let Ok(p) = std::env::var("RHIZOME_PASSPHRASE") {
            if p.is_empty() {
                return Err(NodeError::Passphrase(
                    "RHIZOME_PASSPHRASE is set but empty".into(),
                ));
            }
            return Ok(p.into());
        }
        if !std::io::stdin().is_terminal() {
            return Err(NodeError::Passphrase(
                "a passphrase is needed: set RHIZOME_PASSPHRASE (no terminal to prompt on)".into(),
            ));
        }
        let read = |prompt: &str| {
            rpassword::prompt_password(prompt)
                .map(Zeroizing::new)
                .map_err(|e| NodeError::Passphrase(format!("reading the passphrase: {e}")))
        };
        let p = read("Passphrase: ")?;
        if p.is_empty() {
            return Err(NodeError::Passphrase(
                "empty passphrase (use --no-passphrase to opt out explicitly)".into(),
            ));
        }
        if new && *read("Passphrase again: ")? != *p {
            return Err(NodeError::Passphrase("the two passphrases differ".into()));
        }
        Ok(p)
    }

    fn bundle_passphrase(&self) -> Option<Zeroizing<String>> {
        std::env::var("RHIZOME_BUNDLE_PASSPHRASE")
            .ok()
            .map(Zeroizing::new)
    }
}

/// `RHIZOME_TRUST_ON_FIRST_USE=1`: bundles from instances never seen before are imported at
/// once (and the instance trusted) instead of being held for approval. For hubs and labs.
pub fn policy() -> Policy {
    Policy {
        trust_on_first_use: matches!(
            std::env::var("RHIZOME_TRUST_ON_FIRST_USE").as_deref(),
            Ok("1" | "true" | "yes" | "on")
        ),
    }
}

/// Where the store is: `--store URL` if given, else the home.
pub fn location(home: &Path, store: Option<&str>) -> Result<StoreLocation> {
    Ok(StoreLocation::from_args(home, store)?)
}

/// A key session that asks at the terminal.
pub fn keys() -> Arc<KeySession> {
    KeySession::new(Prompt)
}

/// Shows the node's notices (a home made private) on stderr.
pub fn notify(mut node: Node) -> Node {
    for n in node.take_notices() {
        eprintln!("{}", rhizome_node::text::printable(&n));
    }
    node
}

/// Opens an existing instance.
pub fn open(location: &StoreLocation) -> Result<Node> {
    Ok(notify(Node::open(location.clone(), keys(), policy())?))
}

/// Opens an existing instance for a command that only reads.
pub fn open_for_reading(location: &StoreLocation) -> Result<Node> {
    Ok(notify(Node::open_for_reading(location.clone(), keys())?))
}
