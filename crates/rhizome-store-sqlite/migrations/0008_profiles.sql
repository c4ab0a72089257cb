-- Migration 8: each author's latest PROFILE (the name shown beside a key fingerprint), filled
-- by replaying the log.
-- rhizome: replay-views
CREATE TABLE main.v_profiles (author BLOB NOT NULL PRIMARY KEY, seq INTEGER NOT NULL,
    name TEXT NOT NULL, about TEXT) WITHOUT ROWID;
