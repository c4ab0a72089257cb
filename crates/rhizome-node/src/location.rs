//! Where an instance's store lives, and opening it: a home directory holding one SQLite file
//! (the embedded default), or a PostgreSQL database (hubs). A home is private to its owner:
//! created 0700 with every file in it 0600, and tightened to that when found looser.

use std::path::{Path, PathBuf};

use rhizome_store::{Store, StoreError};
use rhizome_store_postgres::PgStore;
use rhizome_store_sqlite::SqliteStore;

use crate::{NodeError, Result};

/// The database file inside a home.
pub const DB_FILE: &str = "rhizome.db";

impl StoreLocation {
    /// Where a bundle held by a Rhizome before blobs was kept: `<home>/quarantine/<id>.bundle`
    /// (only SQLite homes ever held one).
    pub(crate) fn legacy_held_file(&self, id: &str) -> Option<PathBuf> {
        match self {
            StoreLocation::Sqlite { home } => {
                Some(home.join("quarantine").join(format!("{id}.bundle")))
            }
            StoreLocation::Postgres { .. } => None,
        }
    }
}

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreLocation {
    /// `<home>/rhizome.db`, with held bundles in `<home>/quarantine/`.
    Sqlite {
        /// The home directory.
        home: PathBuf,
    },
    /// A PostgreSQL database (a hub): `postgres://USER@HOST:PORT/DB`; held bundles are kept
    /// in the database, so several hub processes share them.
    Postgres {
        /// The connection URL (it may hold a password: show [`StoreLocation::describe`]).
        url: String,
    },
}

impl StoreLocation {
    /// The location a front-end was given: `store` (a database URL) if any, else the home.
    pub fn from_args(home: &Path, store: Option<&str>) -> Result<Self> {
        match store {
            None => Ok(StoreLocation::Sqlite {
                home: home.to_path_buf(),
            }),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(StoreLocation::Postgres {
                    url: url.to_string(),
                })
            }
            Some(url) => Err(NodeError::invalid(format!(
                "--store {:?}: not a store URL this rhizome knows (postgres://USER@HOST:PORT/DB; without --store the home's SQLite file is used)",
                redact(url)
            ))),
        }
    }

    /// How to name this store to a person (a URL without its password).
    pub fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite { home } => home.display().to_string(),
            StoreLocation::Postgres { url } => redact(url),
        }
    }

    /// Opens the store of an existing instance. Never creates anything.
    pub fn open(&self) -> Result<Box<dyn Store>> {
        match self {
            StoreLocation::Sqlite { home } => {
                let db = home.join(DB_FILE);
                if !db.is_file() {
                    return Err(no_instance(home));
                }
                Ok(Box::new(SqliteStore::open_existing(&db)?))
            }
            StoreLocation::Postgres { url } => Ok(Box::new(PgStore::connect(url).map_err(
                |e| match e {
                    StoreError::NotInitialized => NodeError::Home(format!(
                        "no Rhizome instance in {} (create one with `rhizome init --name NAME --store URL`)",
                        redact(url)
                    )),
                    other => other.into(),
                },
            )?)),
        }
    }

    /// Opens an existing instance for reading only: falls back to a read-only open when a
    /// home cannot be written (a write-protected stick), so reading still works.
    pub fn open_for_reading(&self) -> Result<Box<dyn Store>> {
        match self.open() {
            Err(NodeError::Store(StoreError::ReadOnly { .. })) => match self {
                StoreLocation::Sqlite { home } => {
                    Ok(Box::new(SqliteStore::open_read_only(&home.join(DB_FILE))?))
                }
                StoreLocation::Postgres { .. } => self.open(),
            },
            other => other,
        }
    }

    /// Opens the store, creating an empty one if absent (where `init` will create an
    /// instance; scratch stores of benchmarks).
    pub fn create(&self) -> Result<Box<dyn Store>> {
        match self {
            StoreLocation::Sqlite { home } => {
                let mut builder = std::fs::DirBuilder::new();
                builder.recursive(true);
                #[cfg(unix)]
                std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
                builder.create(home).map_err(|e| {
                    NodeError::Home(format!("cannot create home {}: {e}", home.display()))
                })?;
                Ok(Box::new(SqliteStore::open(&home.join(DB_FILE))?))
            }
            StoreLocation::Postgres { url } => Ok(Box::new(PgStore::create(url)?)),
        }
    }

    /// Whether something is already stored here (so `init` must look before it asks for a
    /// passphrase).
    pub(crate) fn exists(&self) -> bool {
        match self {
            StoreLocation::Sqlite { home } => home.join(DB_FILE).exists(),
            // A server is always there; `init` then asks it whether it holds an instance.
            StoreLocation::Postgres { .. } => true,
        }
    }
}

impl StoreLocation {
    /// Makes a home private to its owner: takes every group and other permission off the home,
    /// and off every file and directory in it (links are left alone). Returns what a person
    /// should be told: one line naming what was loosened and is now tightened, or what could
    /// not be tightened; nothing when all was private already. A PostgreSQL store has no files.
    pub fn make_private(&self) -> Vec<String> {
        match self {
            #[cfg(unix)]
            StoreLocation::Sqlite { home } if home.is_dir() => {
                let (mut tightened, mut failed) = (Vec::new(), Vec::new());
                tighten(home, 0, &mut tightened, &mut failed);
                let mut notices = Vec::new();
                if !tightened.is_empty() {
                    notices.push(format!(
                        "notice: other users could read this home; made private (owner only): {}",
                        tightened.join(", ")
                    ));
                }
                if !failed.is_empty() {
                    notices.push(format!(
                        "warning: other users can read this home and it could not be made private: {}",
                        failed.join(", ")
                    ));
                }
                notices
            }
            _ => Vec::new(),
        }
    }
}

/// Takes group and other permissions off `path` and, for a directory, off what it holds,
/// two levels down (a home holds a database and a directory of held bundles; a mistaken
/// `--home` never reaches this: only a home whose store opened is tightened). Records `path (was MODE)` for each change, and each failure.
#[cfg(unix)]
fn tighten(path: &Path, depth: u32, tightened: &mut Vec<String>, failed: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        let private = std::fs::Permissions::from_mode(mode & 0o7700);
        match std::fs::set_permissions(path, private) {
            Ok(()) => tightened.push(format!("{} (was {mode:04o})", path.display())),
            Err(e) => failed.push(format!("{} ({e})", path.display())),
        }
    }
    if meta.is_dir() && depth < 2 {
        if let Ok(entries) = std::fs::read_dir(path) {
            for entry in entries.flatten() {
                tighten(&entry.path(), depth + 1, tightened, failed);
            }
        }
    }
}

fn no_instance(home: &Path) -> NodeError {
    NodeError::Home(format!(
        "no Rhizome instance in {} (create one with `rhizome init --name NAME --home {}`)",
        home.display(),
        home.display()
    ))
}

/// A database URL without its password, to show.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
