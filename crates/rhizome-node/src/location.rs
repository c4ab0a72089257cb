//! Where an instance's store lives, and opening it: a home directory holding one SQLite file
//! (the embedded default), or a PostgreSQL database (hubs).

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
                std::fs::create_dir_all(home).map_err(|e| {
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
