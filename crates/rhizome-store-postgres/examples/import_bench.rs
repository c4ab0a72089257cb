//! Imports a bundle file into a fresh store and prints the import's throughput: the same
//! pipeline as `rhizome import` (`rhizome_sync::import_bundle`), on PostgreSQL or SQLite.
//!
//! ```text
//! cargo run --release -p rhizome-store-postgres --example import_bench -- \
//!     postgres://postgres@127.0.0.1:5432/test --schema bench D/full.bundle
//! cargo run --release -p rhizome-store-postgres --example import_bench -- sqlite:D/b6.db D/full.bundle
//! ```
//!
//! With `--schema NAME`, the schema NAME is dropped (with everything in it) and created
//! again first, and the store lives there. Plain bundles only (as `rhizome bench bundle`
//! writes them). Run it under `/usr/bin/time -v` for the peak RSS.
#![allow(clippy::unwrap_used)]

use rhizome_store::Store;
use rhizome_store_postgres::PgStore;
use rhizome_store_sqlite::SqliteStore;
use std::io::BufReader;
use std::time::Instant;

fn main() {
    if let Err(e) = run() {
        eprintln!("import_bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: import_bench (postgres://URL [--schema NAME] | sqlite:PATH) BUNDLE";
    let (target, rest) = args.split_first().ok_or(usage)?;
    let (schema, bundle) = match rest {
        [flag, name, bundle] if flag == "--schema" => (Some(name.as_str()), bundle),
        [bundle] => (None, bundle),
        _ => return Err(usage.into()),
    };
    let mut store: Box<dyn Store> = if let Some(path) = target.strip_prefix("sqlite:") {
        if std::path::Path::new(path).exists() {
            return Err(format!("{path} exists: give a new file").into());
        }
        Box::new(SqliteStore::open(path.as_ref())?)
    } else {
        let url = match schema {
            Some(name) => {
                if !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    return Err("--schema: lowercase letters, digits and _ only".into());
                }
                let mut admin = postgres::Client::connect(target, postgres::NoTls)?;
                admin.batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
                ))?;
                let sep = if target.contains('?') { '&' } else { '?' };
                format!("{target}{sep}options=-csearch_path%3D{name}")
            }
            None => target.clone(),
        };
        Box::new(PgStore::create(&url)?)
    };
    let file = std::fs::File::open(bundle)?;
    let reader = BufReader::with_capacity(1 << 20, file);
    let opts = rhizome_sync::ImportOptions {
        now: 0,
        method: "usb".into(),
    };
    let started = Instant::now();
    let report = rhizome_sync::import_bundle(&mut *store, reader, &opts, &mut |_| {})?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{} events read, {} new, {} duplicate, {:?} in {:.2} s: {:.0} events/s",
        report.events_read,
        report.new,
        report.duplicate,
        report.status,
        seconds,
        report.events_read as f64 / seconds
    );
    println!(
        "store: {} events, {} feeds, {} pending",
        store.stats()?.events,
        store.stats()?.feeds,
        store.pending_count()?
    );
    Ok(())
}
