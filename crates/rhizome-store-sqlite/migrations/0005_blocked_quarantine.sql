-- Migration 5: authors whose events are dropped on import and hidden from the views; bundles from
-- unknown instances held until a person approves them.
CREATE TABLE blocked_authors (author BLOB PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE quarantine (
    id TEXT PRIMARY KEY,          -- first 16 hex of SHA-256 of the bundle file
    instance_id BLOB NOT NULL,
    public_key BLOB NOT NULL,
    name TEXT NOT NULL,
    events INTEGER NOT NULL,
    feeds INTEGER NOT NULL,
    invalid INTEGER NOT NULL,     -- lines that failed verification
    arrived_at INTEGER NOT NULL,
    file TEXT NOT NULL
) WITHOUT ROWID;
