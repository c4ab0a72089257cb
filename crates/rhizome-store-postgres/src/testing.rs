//! The PostgreSQL server that tests run against, shared by the tests of every crate that needs
//! one, and a schema of a test's own on it.
//!
//! A test that needs the server runs against `RHIZOME_TEST_POSTGRES`, or against
//! [`DEFAULT_SERVER`] when the variable is unset, and fails loudly when it cannot reach it:
//! a PostgreSQL test never passes without having run. `RHIZOME_TEST_POSTGRES=skip` is the one
//! explicit opt-out, and each test it skips says so on stderr.

use crate::with_causes;
use postgres::{Client, NoTls};
use std::io::Write;

/// Where the tests look when `RHIZOME_TEST_POSTGRES` is unset: a local server with trust auth.
pub const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server for `test`, its database created when missing, or `None` after saying on stderr
/// that `test` is skipped because the environment opted out.
///
/// # Panics
/// When the server cannot be reached: the message names it and the opt-out.
pub fn server(test: &str) -> Option<String> {
    let url = match std::env::var("RHIZOME_TEST_POSTGRES") {
        Ok(v) if v.trim() == "skip" => {
            // To the process's stderr, not through `eprintln!`, which the harness captures.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (RHIZOME_TEST_POSTGRES=skip): {test} needs a PostgreSQL server"
            );
            return None;
        }
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => DEFAULT_SERVER.to_string(),
    };
    if let Err(e) = ensure_database(&url) {
        panic!(
            "{test} needs a PostgreSQL server and cannot use {url}: {e}\n\
             Start one there, name another with RHIZOME_TEST_POSTGRES=postgres://USER@HOST:PORT/DB, \
             or opt out with RHIZOME_TEST_POSTGRES=skip"
        );
    }
    Some(url)
}

/// Connects to `url`; when its database does not exist yet, creates it from the server's
/// `postgres` database first (a fresh server has no `test` database).
fn ensure_database(url: &str) -> Result<(), String> {
    let config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    let missing = match config.connect(NoTls) {
        Ok(_) => return Ok(()),
        Err(e) => match e.as_db_error() {
            Some(db) if db.code().code() == "3D000" => e,
            _ => return Err(with_causes(&e)),
        },
    };
    let Some(name) = config.get_dbname() else {
        return Err(with_causes(&missing));
    };
    let mut maintenance = config.clone();
    maintenance.dbname("postgres");
    let mut client = maintenance.connect(NoTls).map_err(|e| with_causes(&e))?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match client.batch_execute(&format!("CREATE DATABASE {quoted}")) {
        // Another test created it first (42P04), or at the same moment (23505 on the catalog).
        Err(e)
            if e.as_db_error()
                .is_some_and(|d| ["42P04", "23505"].contains(&d.code().code())) =>
        {
            Ok(())
        }
        other => other.map_err(|e| with_causes(&e)),
    }
}

/// A plain connection to the server, for what a test does beside the store.
///
/// # Panics
/// When the server cannot be reached.
pub fn admin(url: &str) -> Client {
    Client::connect(url, NoTls).unwrap_or_else(|e| panic!("PostgreSQL at {url}: {e}"))
}

/// A schema of a test's own on the server, dropped when the guard goes (even on failure).
pub struct Schema {
    /// A connection for what the test does beside the store (it also drops the schema).
    pub admin: Client,
    /// The schema's name.
    pub name: String,
    /// A store URL whose `search_path` is this schema.
    pub url: String,
}

impl Schema {
    /// Creates (again, if a crashed run left it) the schema `<prefix>_<pid>`.
    ///
    /// # Panics
    /// When the server refuses.
    pub fn new(server: &str, prefix: &str) -> Schema {
        let mut admin = admin(server);
        let name = format!("{prefix}_{}", std::process::id());
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .unwrap_or_else(|e| panic!("creating schema {name}: {e}"));
        let sep = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{sep}options=-csearch_path%3D{name}");
        Schema { admin, name, url }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}
