-- Migration 3: ids of records imported by `rhizome migrate`, so a second run adds nothing.
CREATE TABLE legacy_ids (legacy TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
