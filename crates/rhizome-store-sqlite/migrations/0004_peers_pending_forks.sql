-- Migration 4: peers and their clocks; events waiting for their predecessors; fork evidence.
CREATE TABLE peers (
    instance_id BLOB PRIMARY KEY,
    public_key BLOB NOT NULL,
    name TEXT NOT NULL,
    trust TEXT NOT NULL DEFAULT 'unknown',
    sent TEXT NOT NULL DEFAULT '{}',
    acked TEXT NOT NULL DEFAULT '{}',
    last_exchange_at INTEGER,
    last_method TEXT,
    last_direction TEXT
) WITHOUT ROWID;
CREATE TABLE pending (
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    line BLOB NOT NULL,
    PRIMARY KEY (author, seq, hash)
) WITHOUT ROWID;
CREATE TABLE forks (
    author BLOB NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,       -- the event not in the log
    held BLOB NOT NULL,       -- what the log holds at that seq (or its head)
    kind TEXT NOT NULL,       -- same_seq | prev_mismatch
    carrier BLOB,             -- instance that brought it
    line BLOB NOT NULL,
    PRIMARY KEY (author, seq, hash)
) WITHOUT ROWID;
