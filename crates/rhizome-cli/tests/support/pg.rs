//! A PostgreSQL schema of a test's own (RHIZOME_TEST_POSTGRES), dropped when its guard goes.

use std::io::Write;

/// The server URL, or None after saying loudly on stderr that `test` is skipped.
pub fn server(test: &str) -> Option<String> {
    match std::env::var("RHIZOME_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (RHIZOME_TEST_POSTGRES not set): {test} needs a PostgreSQL server, \
                 e.g. RHIZOME_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test"
            );
            None
        }
    }
}

pub struct Schema {
    admin: postgres::Client,
    pub name: String,
    /// The store URL whose search_path is this schema.
    pub url: String,
}

impl Schema {
    pub fn new(server: &str, test: &str) -> Schema {
        let mut admin = postgres::Client::connect(server, postgres::NoTls).unwrap_or_else(|e| {
            panic!("RHIZOME_TEST_POSTGRES={server} is set but unreachable: {e}")
        });
        let name = format!("rz_https_{test}_{}", std::process::id());
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .unwrap();
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
