//! Other instances ([`PeerStore`]): trust, the `sent` and `acked` clocks kept apart (a lost
//! stick loses nothing), what their manifests publish, and blocked authors.

use rusqlite::{params, OptionalExtension};

use rhizome_core::privacy::HostDeclaration;
use rhizome_core::{Clock, InstanceId, PublicKey, UncheckedClock};
use rhizome_store::{Direction, Peer, PeerStore, Result as StoreResult, StoreError, Trust};

use crate::{classify, instance_col, key_col, run, Result, SqliteStore};

/// A clock this store wrote: its keys are not checked again (see [`UncheckedClock`]).
fn clock_col(text: &str, what: &str) -> StoreResult<Clock> {
    serde_json::from_str::<UncheckedClock>(text)
        .map(UncheckedClock::trusted)
        .map_err(|e| StoreError::BadRow {
            location: what.into(),
            detail: e.to_string(),
        })
}

fn clock_text(c: &Clock) -> String {
    serde_json::to_string(c).unwrap_or_else(|_| "{}".into())
}

impl PeerStore for SqliteStore {
    fn peers(&self) -> StoreResult<Vec<Peer>> {
        run(|| self.peers_where("1", &[]))
    }

    fn peer(&self, id: &InstanceId) -> StoreResult<Option<Peer>> {
        run(|| {
            let id = id.as_bytes().to_vec();
            Ok(self.peers_where("instance_id = ?1", &[&id])?.pop())
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
        run(|| {
            let id = InstanceId::of(key);
            let tx = self.write_tx()?;
            tx.execute(
                "INSERT INTO peers (instance_id, public_key, name) VALUES (?1, ?2, ?3)
             ON CONFLICT (instance_id) DO UPDATE SET name = excluded.name",
                params![&id.as_bytes()[..], &key.as_bytes()[..], name],
            )?;
            let (column, value, direction) = match dir {
                Direction::Export => {
                    let old: String = tx.query_row(
                        "SELECT sent FROM peers WHERE instance_id = ?1",
                        [&id.as_bytes()[..]],
                        |r| r.get(0),
                    )?;
                    let mut sent = clock_col(&old, "peers.sent")?;
                    sent.merge(clock);
                    ("sent", clock_text(&sent), "export")
                }
                Direction::Import => ("acked", clock_text(clock), "import"),
            };
            tx.execute(
            &format!(
                "UPDATE peers SET {column} = ?1, last_exchange_at = ?2, last_method = ?3, last_direction = ?4
                 WHERE instance_id = ?5"
            ),
            params![value, at as i64, method, direction, &id.as_bytes()[..]],
        )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn record_publications(
        &mut self,
        id: &InstanceId,
        age_recipient: Option<&str>,
        hosts: &[HostDeclaration],
    ) -> StoreResult<()> {
        run(|| {
            let tx = self.write_tx()?;
            if let Some(r) = age_recipient {
                tx.execute(
                    "UPDATE peers SET age_recipient = ?1 WHERE instance_id = ?2",
                    params![r, &id.as_bytes()[..]],
                )?;
            }
            for d in hosts.iter().filter(|d| d.instance_id == *id) {
                tx.prepare_cached(
                "INSERT INTO peer_hosts (instance_id, author, issued_at, sig) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (instance_id, author) DO UPDATE SET issued_at = excluded.issued_at, sig = excluded.sig
                 WHERE excluded.issued_at > peer_hosts.issued_at",
            )?
            .execute(params![
                &id.as_bytes()[..],
                &d.author.as_bytes()[..],
                d.issued_at as i64,
                &d.sig.as_bytes()[..]
            ])?;
            }
            tx.commit()?;
            Ok(())
        })
    }

    fn peer_hosts(&self, id: &InstanceId) -> StoreResult<std::collections::HashSet<PublicKey>> {
        run(|| {
            let mut stmt = self
                .conn
                .prepare_cached("SELECT author FROM peer_hosts WHERE instance_id = ?1")?;
            let rows = stmt
                .query_map([&id.as_bytes()[..]], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.iter()
                .map(|k| key_col(k, "peer_hosts.author"))
                .collect()
        })
    }

    fn add_peer(&mut self, key: &PublicKey, name: &str, trust: Trust) -> StoreResult<()> {
        run(|| {
            let id = InstanceId::of(key);
            self.conn
            .execute(
                "INSERT INTO peers (instance_id, public_key, name, trust) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (instance_id) DO UPDATE SET name = excluded.name, trust = excluded.trust",
                params![&id.as_bytes()[..], &key.as_bytes()[..], name, trust.as_str()],
            )
            .map_err(|e| classify(&self.path, e))?;
            Ok(())
        })
    }

    fn set_trust(&mut self, id: &InstanceId, trust: Trust) -> StoreResult<bool> {
        run(|| {
            let tx = self.write_tx()?;
            if trust == Trust::Unknown {
                tx.execute(
                    "DELETE FROM blocked_instances WHERE instance_id = ?1",
                    [&id.as_bytes()[..]],
                )?;
            }
            let n = tx.execute(
                "UPDATE peers SET trust = ?1 WHERE instance_id = ?2",
                params![trust.as_str(), &id.as_bytes()[..]],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
    }

    fn block_instance(&mut self, id: &InstanceId) -> StoreResult<()> {
        run(|| {
            self.conn
                .execute(
                    "INSERT OR IGNORE INTO blocked_instances (instance_id) VALUES (?1)",
                    [&id.as_bytes()[..]],
                )
                .map_err(|e| classify(&self.path, e))?;
            Ok(())
        })
    }

    fn trust_of(&self, id: &InstanceId) -> StoreResult<Option<Trust>> {
        run(|| {
            let row: Option<(Option<String>, bool)> = self
                .conn
                .query_row(
                    "SELECT (SELECT trust FROM peers WHERE instance_id = ?1),
                            EXISTS (SELECT 1 FROM blocked_instances WHERE instance_id = ?1)",
                    [&id.as_bytes()[..]],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(match row {
                Some((_, true)) => Some(Trust::Blocked),
                Some((Some(t), false)) => Some(Trust::parse(&t)),
                _ => None,
            })
        })
    }

    fn block_author(&mut self, author: &PublicKey) -> StoreResult<bool> {
        run(|| {
            let n = self
                .conn
                .execute(
                    "INSERT OR IGNORE INTO blocked_authors (author) VALUES (?1)",
                    [&author.as_bytes()[..]],
                )
                .map_err(|e| classify(&self.path, e))?;
            Ok(n == 1)
        })
    }

    fn unblock_author(&mut self, author: &PublicKey) -> StoreResult<bool> {
        run(|| {
            let n = self
                .conn
                .execute(
                    "DELETE FROM blocked_authors WHERE author = ?1",
                    [&author.as_bytes()[..]],
                )
                .map_err(|e| classify(&self.path, e))?;
            Ok(n == 1)
        })
    }

    fn blocked_authors(&self) -> StoreResult<std::collections::BTreeSet<PublicKey>> {
        run(|| {
            let mut stmt = self.conn.prepare("SELECT author FROM blocked_authors")?;
            let rows = stmt
                .query_map([], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.iter()
                .map(|k| key_col(k, "blocked_authors.author"))
                .collect()
        })
    }
}

impl SqliteStore {
    fn peers_where(&self, cond: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Peer>> {
        let sql = format!(
            "SELECT instance_id, public_key, name, trust, sent, acked, last_exchange_at, last_method, last_direction, age_recipient
             FROM peers WHERE {cond} ORDER BY name, instance_id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, Option<i64>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(
                |(id, key, name, trust, sent, acked, at, method, dir, age)| {
                    Ok(Peer {
                        instance_id: instance_col(&id, "peers.instance_id")?,
                        public_key: key_col(&key, "peers.public_key")?,
                        name,
                        trust: Trust::parse(&trust),
                        sent: clock_col(&sent, "peers.sent")?,
                        acked: clock_col(&acked, "peers.acked")?,
                        last_exchange_at: at.map(|a| a as u64),
                        last_method: method,
                        last_direction: dir,
                        age_recipient: age,
                    })
                },
            )
            .collect()
    }
}
