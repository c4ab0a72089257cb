-- Migration 6: circle privacy and encryption. `limited` lists the events whose payload names an
-- audience (PROTOCOL 9; the members as a JSON array of keys), so an export decides what to
-- withhold without reading payloads; `local_hosts` holds this instance's declarations signed by
-- its authors, `peer_hosts` those other instances presented; a peer's age recipient comes from
-- its manifests.
CREATE TABLE limited (id INTEGER PRIMARY KEY, members TEXT NOT NULL);
INSERT INTO limited (id, members)
    SELECT id, COALESCE(json_extract(CAST(payload AS TEXT), '$.audience.members'), '[]')
    FROM events
    WHERE payload IS NOT NULL AND json_type(CAST(payload AS TEXT), '$.audience') IS NOT NULL;
CREATE TABLE local_hosts (
    author BLOB PRIMARY KEY,
    instance_id BLOB NOT NULL,
    issued_at INTEGER NOT NULL,
    sig BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE peer_hosts (
    instance_id BLOB NOT NULL,
    author BLOB NOT NULL,
    issued_at INTEGER NOT NULL,
    sig BLOB NOT NULL,
    PRIMARY KEY (instance_id, author)
) WITHOUT ROWID;
ALTER TABLE peers ADD COLUMN age_recipient TEXT;
