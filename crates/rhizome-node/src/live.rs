//! What a live peer (an HTTPS caller, or the server a client syncs with) asks of this node:
//! whether it may be served at all, what this instance holds (its clock), a pull cut for it
//! by the same export code as a stick (its privacy rule included), and what this instance
//! says about itself in its signed descriptor. The transport authenticates the peer; every
//! decision about it is made here, so that a front-end holds none.

use rhizome_core::privacy::HostDeclaration;
use rhizome_core::{Clock, InstanceId, PublicKey, SecretKey};
use rhizome_sync::codec;
use rhizome_sync::Refusal;

use crate::exchange::{Base, ExportRequest, PreparedExport};
use crate::{Node, Result, Transport, Trust};

/// What this instance publishes about itself (the HTTPS descriptor's content).
#[derive(Debug, Clone)]
pub struct SelfDescription {
    /// Instance id.
    pub instance_id: InstanceId,
    /// Instance key.
    pub public_key: PublicKey,
    /// Instance name.
    pub name: String,
    /// The age recipient bundles to this instance are encrypted to (PROTOCOL 8.12).
    pub age_recipient: String,
    /// The host declarations of the authors this instance hosts (PROTOCOL 9.2).
    pub hosts: Vec<HostDeclaration>,
}

impl Node {
    /// Everything this instance holds: each feed with its highest contiguous seq.
    pub fn clock(&self) -> Result<Clock> {
        Ok(self.store.clock()?)
    }

    /// The key this instance knows for a peer, if any (a live caller's signature is checked
    /// against it before any key it presents).
    pub fn peer_key(&self, id: &InstanceId) -> Result<Option<PublicKey>> {
        Ok(self.store.peer(id)?.map(|p| p.public_key))
    }

    /// A peer's standing here: `None` when never seen.
    pub fn standing(&self, id: &InstanceId) -> Result<Option<Trust>> {
        Ok(self.store.trust_of(id)?)
    }

    /// Why a live peer is refused before anything is read from it or sent to it: a blocked
    /// instance is refused whole, exactly as its bundles on a stick.
    pub fn refusal_for(&self, id: &InstanceId) -> Result<Option<Refusal>> {
        Ok(match self.store.trust_of(id)? {
            Some(Trust::Blocked) => Some(Refusal::Blocked(*id)),
            _ => None,
        })
    }

    /// Plans the bundle a live peer pulls: everything it lacks according to the clock it
    /// states, cut for it when it is known here (circle-limited payloads only if its host
    /// declarations allow them, PROTOCOL 9.3; the exchange is recorded), for anyone when it is
    /// not (no limited payload at all). `encrypt` asks for age encryption to the peer's
    /// published key, which must be known.
    pub fn prepare_pull(
        &self,
        caller: &InstanceId,
        stated: Clock,
        encrypt: bool,
    ) -> Result<PreparedExport> {
        let known = self.store.peer(caller)?.is_some();
        let req = ExportRequest {
            peer: known.then_some(*caller),
            base: Base::Stated(stated),
            compress: false,
            encrypt_to: if encrypt { vec![*caller] } else { Vec::new() },
            transport: Transport::Https,
        };
        self.prepare_export(&req, false)
    }

    /// Plans the bundle pushed to a live peer that holds `theirs`: cut for it when it is known
    /// here, for anyone otherwise, and to at most `max_bytes` of events (see
    /// [`rhizome_sync::ExportPlan::cut_to`]): a piece a bad link can carry whole. The rest
    /// goes in the next piece, planned from the peer's clock once this one is in.
    pub fn prepare_push(
        &self,
        peer: &InstanceId,
        theirs: Clock,
        max_bytes: u64,
    ) -> Result<PreparedExport> {
        let known = self.store.peer(peer)?.is_some();
        let req = ExportRequest {
            peer: known.then_some(*peer),
            base: Base::Stated(theirs),
            compress: false,
            encrypt_to: Vec::new(),
            transport: Transport::Https,
        };
        let mut prepared = self.prepare_export(&req, false)?;
        prepared.partial = prepared.plan.cut_to(&*self.store, max_bytes)?;
        Ok(prepared)
    }

    /// What this instance says about itself, with its key opened (the caller signs with it).
    pub fn describe_self(&self) -> Result<(SelfDescription, SecretKey)> {
        let identity = self.store.identity()?;
        let key = self.instance_key()?;
        let description = SelfDescription {
            instance_id: InstanceId::of(&identity.public_key),
            public_key: identity.public_key,
            name: identity.name,
            age_recipient: codec::instance_recipient(&key),
            hosts: self.store.local_hosts()?,
        };
        Ok((description, key))
    }
}
