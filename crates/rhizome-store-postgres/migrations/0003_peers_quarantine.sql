-- Migration 3: peers and their clocks (JSON text), what their manifests publish, blocked
-- authors, held bundles, and the blobs that hold them: in the database, in chunks, so that
-- every hub process behind a load balancer reads the same ones.
CREATE TABLE peers (
    instance_id bytea PRIMARY KEY,
    public_key bytea NOT NULL,
    name bytea NOT NULL,
    trust text NOT NULL DEFAULT 'unknown',
    sent text NOT NULL DEFAULT '{}',
    acked text NOT NULL DEFAULT '{}',
    last_exchange_at bigint,
    last_method text,
    last_direction text,
    age_recipient bytea
);
CREATE TABLE peer_hosts (
    instance_id bytea NOT NULL,
    author bytea NOT NULL,
    issued_at bigint NOT NULL,
    sig bytea NOT NULL,
    PRIMARY KEY (instance_id, author)
);
CREATE TABLE blocked_authors (author bytea PRIMARY KEY);
-- Instances blocked by id before any of their bundles was seen (their key is not known yet).
CREATE TABLE blocked_instances (instance_id bytea PRIMARY KEY);
CREATE TABLE quarantine (
    id text COLLATE "C" PRIMARY KEY, -- first 16 hex of SHA-256 of the bundle
    instance_id bytea NOT NULL,
    public_key bytea NOT NULL,
    name bytea NOT NULL,
    events bigint NOT NULL,
    feeds bigint NOT NULL,
    invalid bigint NOT NULL,         -- lines that failed verification
    arrived_at bigint NOT NULL,
    blob bytea                       -- the held bundle: its blob id (SHA-256)
);
-- A blob's chunks are written under a random upload id in one transaction, and the blob row
-- (named by the SHA-256 of all the bytes) is added by the same transaction when it finishes:
-- a blob is there whole or not at all.
CREATE TABLE blobs (
    id bytea PRIMARY KEY,
    upload bytea NOT NULL UNIQUE,
    size bigint NOT NULL
);
CREATE TABLE blob_chunks (
    upload bytea NOT NULL,
    n integer NOT NULL,
    data bytea NOT NULL,
    PRIMARY KEY (upload, n)
);
