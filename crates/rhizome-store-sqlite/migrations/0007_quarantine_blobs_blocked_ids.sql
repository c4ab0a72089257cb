-- Migration 7: held bundles are blobs named by their SHA-256 (`<home>/quarantine/<hex>.bundle`),
-- recorded by content rather than by a path that depended on the working directory (rows held
-- before keep `blob` NULL and are found again by their id); and instances blocked by id before
-- any of their bundles was seen (their key is not known yet).
ALTER TABLE quarantine ADD COLUMN blob BLOB;
CREATE TABLE blocked_instances (instance_id BLOB PRIMARY KEY) WITHOUT ROWID;
