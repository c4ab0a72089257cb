-- Migration 1: identity, local authors, feeds, events.
CREATE TABLE instance (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    public_key BLOB NOT NULL,
    secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE local_authors (
    name TEXT PRIMARY KEY,
    public_key BLOB NOT NULL UNIQUE,
    secret TEXT NOT NULL,
    is_default INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE feeds (
    feed_id INTEGER PRIMARY KEY,
    author BLOB NOT NULL UNIQUE,
    head_seq INTEGER NOT NULL DEFAULT 0,
    head_hash BLOB
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,          -- (feed_id << 32) | seq
    h8 INTEGER NOT NULL,             -- first 8 bytes of hash, order-preserving
    hash BLOB NOT NULL,
    prev BLOB,
    type TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    payload_hash BLOB NOT NULL,
    payload_size INTEGER NOT NULL,
    payload BLOB,                    -- canonical JSON; NULL when withheld
    sig BLOB NOT NULL
);
CREATE INDEX events_h8 ON events(h8);
