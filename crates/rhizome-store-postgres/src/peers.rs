//! Other instances ([`PeerStore`]): trust, the `sent` and `acked` clocks kept apart (a lost
//! stick loses nothing), what their manifests publish, and blocked authors.

use postgres::Row;
use std::collections::{BTreeSet, HashSet};

use rhizome_core::privacy::HostDeclaration;
use rhizome_core::{Clock, InstanceId, PublicKey, UncheckedClock};
use rhizome_store::{Direction, Peer, PeerStore, Result as StoreResult, Trust};

use crate::{bad_row, instance_col, key_col, text_col, u64_col, End, PgStore, Result, Retry};

/// A clock this store wrote: its keys are not checked again (see [`UncheckedClock`]).
fn clock_col(text: &str, what: &str) -> Result<Clock> {
    serde_json::from_str::<UncheckedClock>(text)
        .map(UncheckedClock::trusted)
        .map_err(|e| bad_row(what, e))
}

fn clock_text(c: &Clock) -> String {
    serde_json::to_string(c).unwrap_or_else(|_| "{}".into())
}

const PEER_COLUMNS: &str = "instance_id, public_key, name, trust, sent, acked, last_exchange_at, \
     last_method, last_direction, age_recipient";

fn peer(r: &Row) -> Result<Peer> {
    Ok(Peer {
        instance_id: instance_col(r.get(0), "peers.instance_id")?,
        public_key: key_col(r.get(1), "peers.public_key")?,
        name: text_col(r.get(2), "peers.name")?,
        trust: Trust::parse(r.get(3)),
        sent: clock_col(r.get(4), "peers.sent")?,
        acked: clock_col(r.get(5), "peers.acked")?,
        last_exchange_at: r.get::<_, Option<i64>>(6).map(u64_col),
        last_method: r.get(7),
        last_direction: r.get(8),
        age_recipient: r
            .get::<_, Option<Vec<u8>>>(9)
            .map(|a| text_col(a, "peers.age_recipient"))
            .transpose()?,
    })
}

impl PeerStore for PgStore {
    fn peers(&self) -> StoreResult<Vec<Peer>> {
        self.with(|c| {
            c.query(
                &format!("SELECT {PEER_COLUMNS} FROM peers ORDER BY name, instance_id"),
                &[],
            )?
            .iter()
            .map(peer)
            .collect()
        })
    }

    fn peer(&self, id: &InstanceId) -> StoreResult<Option<Peer>> {
        self.with(|c| {
            c.query_opt(
                &format!("SELECT {PEER_COLUMNS} FROM peers WHERE instance_id = $1"),
                &[&&id.as_bytes()[..]],
            )?
            .as_ref()
            .map(peer)
            .transpose()
        })
    }

    fn record_exchange(
        &mut self,
        key: &PublicKey,
        name: &str,
        dir: Direction,
        clock: &Clock,
        at: u64,
        method: &str,
    ) -> StoreResult<()> {
        let id = InstanceId::of(key);
        let id = &id.as_bytes()[..];
        self.write(Retry::Conflicts, |c| {
            c.execute(
                "INSERT INTO peers (instance_id, public_key, name) VALUES ($1, $2, $3)
                 ON CONFLICT (instance_id) DO UPDATE SET name = excluded.name",
                &[&id, &&key.as_bytes()[..], &name.as_bytes()],
            )?;
            let (column, value, direction) = match dir {
                Direction::Export => {
                    // Locked: two processes exporting to one peer both raise `sent`.
                    let old: String = c
                        .query_one(
                            "SELECT sent FROM peers WHERE instance_id = $1 FOR UPDATE",
                            &[&id],
                        )?
                        .get(0);
                    let mut sent = clock_col(&old, "peers.sent")?;
                    sent.merge(clock);
                    ("sent", clock_text(&sent), "export")
                }
                Direction::Import => ("acked", clock_text(clock), "import"),
            };
            c.execute(
                &format!(
                    "UPDATE peers SET {column} = $1, last_exchange_at = $2, last_method = $3,
                         last_direction = $4 WHERE instance_id = $5"
                ),
                &[&value, &(at as i64), &method, &direction, &id],
            )?;
            Ok(End::Commit(()))
        })
    }

    fn record_publications(
        &mut self,
        id: &InstanceId,
        age_recipient: Option<&str>,
        hosts: &[HostDeclaration],
    ) -> StoreResult<()> {
        let iid = &id.as_bytes()[..];
        self.write(Retry::Conflicts, |c| {
            if let Some(r) = age_recipient {
                c.execute(
                    "UPDATE peers SET age_recipient = $1 WHERE instance_id = $2",
                    &[&r.as_bytes(), &iid],
                )?;
            }
            for d in hosts.iter().filter(|d| d.instance_id == *id) {
                // The newest declaration per author wins, whatever the order they arrive in.
                c.execute(
                    "INSERT INTO peer_hosts (instance_id, author, issued_at, sig) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (instance_id, author) DO UPDATE
                         SET issued_at = excluded.issued_at, sig = excluded.sig
                         WHERE excluded.issued_at > peer_hosts.issued_at",
                    &[
                        &iid,
                        &&d.author.as_bytes()[..],
                        &(d.issued_at as i64),
                        &&d.sig.as_bytes()[..],
                    ],
                )?;
            }
            Ok(End::Commit(()))
        })
    }

    fn peer_hosts(&self, id: &InstanceId) -> StoreResult<HashSet<PublicKey>> {
        self.with(|c| {
            c.query(
                "SELECT author FROM peer_hosts WHERE instance_id = $1",
                &[&&id.as_bytes()[..]],
            )?
            .into_iter()
            .map(|r| key_col(r.get(0), "peer_hosts.author"))
            .collect()
        })
    }

    fn add_peer(&mut self, key: &PublicKey, name: &str, trust: Trust) -> StoreResult<()> {
        let id = InstanceId::of(key);
        self.with(|c| {
            c.execute(
                "INSERT INTO peers (instance_id, public_key, name, trust) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (instance_id) DO UPDATE SET name = excluded.name, trust = excluded.trust",
                &[
                    &&id.as_bytes()[..],
                    &&key.as_bytes()[..],
                    &name.as_bytes(),
                    &trust.as_str(),
                ],
            )?;
            Ok(())
        })
    }

    fn set_trust(&mut self, id: &InstanceId, trust: Trust) -> StoreResult<bool> {
        let iid = &id.as_bytes()[..];
        self.write(Retry::Conflicts, |c| {
            if trust == Trust::Unknown {
                c.execute(
                    "DELETE FROM blocked_instances WHERE instance_id = $1",
                    &[&iid],
                )?;
            }
            let n = c.execute(
                "UPDATE peers SET trust = $1 WHERE instance_id = $2",
                &[&trust.as_str(), &iid],
            )?;
            Ok(End::Commit(n == 1))
        })
    }

    fn block_instance(&mut self, id: &InstanceId) -> StoreResult<()> {
        self.with(|c| {
            c.execute(
                "INSERT INTO blocked_instances (instance_id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&&id.as_bytes()[..]],
            )?;
            Ok(())
        })
    }

    fn trust_of(&self, id: &InstanceId) -> StoreResult<Option<Trust>> {
        self.with(|c| {
            let r = c.query_one(
                "SELECT (SELECT trust FROM peers WHERE instance_id = $1),
                        EXISTS (SELECT 1 FROM blocked_instances WHERE instance_id = $1)",
                &[&&id.as_bytes()[..]],
            )?;
            Ok(match (r.get::<_, Option<&str>>(0), r.get::<_, bool>(1)) {
                (_, true) => Some(Trust::Blocked),
                (Some(t), false) => Some(Trust::parse(t)),
                (None, false) => None,
            })
        })
    }

    fn block_author(&mut self, author: &PublicKey) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "INSERT INTO blocked_authors (author) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&&author.as_bytes()[..]],
            )? == 1)
        })
    }

    fn unblock_author(&mut self, author: &PublicKey) -> StoreResult<bool> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM blocked_authors WHERE author = $1",
                &[&&author.as_bytes()[..]],
            )? == 1)
        })
    }

    fn blocked_authors(&self) -> StoreResult<BTreeSet<PublicKey>> {
        self.with(|c| {
            c.query("SELECT author FROM blocked_authors", &[])?
                .into_iter()
                .map(|r| key_col(r.get(0), "blocked_authors.author"))
                .collect()
        })
    }
}
