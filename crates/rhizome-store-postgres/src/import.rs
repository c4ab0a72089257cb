//! Bulk import ([`ImportStore`], [`ImportSession`]): each batch given to a session is written
//! by [`crate::batch`] in a transaction of its own, committed before `add` returns.
//!
//! Why not one long transaction, as SQLite has: processes sharing the database would wait for
//! each other's feed locks for as long as a transaction stays open, and a batch retried after
//! a deadlock or serialization failure would have to replay every batch before it. Committing
//! each batch (the import pipeline hands a few thousand events at a time) keeps locks short and
//! the retry at hand; PostgreSQL commits cost a WAL flush, not the page rewrites that made
//! SQLite prefer long transactions.

use rhizome_core::{InstanceId, VerifiedEvent};
use rhizome_store::{BatchResult, ImportSession, ImportStore, Result as StoreResult, Store};

use crate::batch::{self, Mode};
use crate::PgStore;

impl ImportStore for PgStore {
    fn begin_import(
        &mut self,
        carrier: Option<&InstanceId>,
    ) -> StoreResult<Box<dyn ImportSession + '_>> {
        Ok(Box::new(PgImport {
            store: self,
            carrier: carrier.copied(),
            events: 0,
        }))
    }

    fn reader(&self) -> StoreResult<Box<dyn Store>> {
        Ok(Box::new(self.attach()?))
    }
}

/// An import session: batches committed one by one (see the module docs).
struct PgImport<'a> {
    store: &'a mut PgStore,
    carrier: Option<InstanceId>,
    events: usize,
}

impl ImportSession for PgImport<'_> {
    fn add(&mut self, events: &[VerifiedEvent]) -> StoreResult<BatchResult> {
        let written = batch::write(self.store, events, Mode::Import(self.carrier))?;
        self.events += events.len();
        Ok(BatchResult {
            outcomes: written.outcomes,
            promoted: written.promoted,
        })
    }

    fn events(&self) -> usize {
        self.events
    }

    fn commit(self: Box<Self>) -> StoreResult<()> {
        // Every batch is committed already.
        Ok(())
    }
}
