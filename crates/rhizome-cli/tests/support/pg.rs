//! The PostgreSQL server the tests use and a schema of a test's own: see
//! `rhizome_store_postgres::testing` (a test fails when the server cannot be reached, unless
//! `RHIZOME_TEST_POSTGRES=skip`).

pub use rhizome_store_postgres::testing::{server, Schema};
