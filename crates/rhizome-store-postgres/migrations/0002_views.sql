-- Migration 2: the follow set and the materialized views. Same tables, columns, column order
-- and primary keys as SQLite's, so that `view_digests` hashes the same rows in the same order:
-- integers as bigint (`starred` as integer 0/1, not boolean), blobs as bytea, free strings (tag,
-- circle name, profile name and about, skip detail) as bytea holding UTF-8, codes as text COLLATE "C".
CREATE TABLE follows (author bytea PRIMARY KEY);
INSERT INTO follows (author) SELECT public_key FROM local_authors ON CONFLICT DO NOTHING;
CREATE TABLE v_timeline (ts bigint NOT NULL, hash bytea NOT NULL, author bytea NOT NULL,
    seq bigint NOT NULL, kind text COLLATE "C" NOT NULL, target bytea, PRIMARY KEY (ts, hash));
CREATE INDEX v_timeline_author ON v_timeline (author, ts, hash);
CREATE TABLE v_replies (target bytea NOT NULL, hash bytea NOT NULL, author bytea NOT NULL,
    seq bigint NOT NULL, ts bigint NOT NULL, PRIMARY KEY (target, hash));
CREATE INDEX v_replies_hash ON v_replies (hash);
CREATE TABLE v_likes (target bytea NOT NULL, author bytea NOT NULL, PRIMARY KEY (target, author));
CREATE TABLE v_stars (author bytea NOT NULL, target bytea NOT NULL, seq bigint NOT NULL,
    starred integer NOT NULL, PRIMARY KEY (author, target));
CREATE TABLE v_circles (owner bytea NOT NULL, id bytea NOT NULL, name bytea NOT NULL,
    PRIMARY KEY (owner, id));
CREATE UNIQUE INDEX v_circles_name ON v_circles (owner, name);
CREATE TABLE v_circle_members (owner bytea NOT NULL, id bytea NOT NULL, member bytea NOT NULL,
    PRIMARY KEY (owner, id, member));
CREATE TABLE v_tags (tag bytea NOT NULL, target bytea NOT NULL, author bytea NOT NULL,
    PRIMARY KEY (tag, target, author));
CREATE INDEX v_tags_target ON v_tags (target);
-- Each author's latest PROFILE (the name shown beside a key fingerprint).
CREATE TABLE v_profiles (author bytea NOT NULL PRIMARY KEY, seq bigint NOT NULL,
    name bytea NOT NULL, about bytea);
CREATE TABLE v_skipped (hash bytea NOT NULL PRIMARY KEY, author bytea NOT NULL,
    seq bigint NOT NULL, type text COLLATE "C" NOT NULL, reason text COLLATE "C" NOT NULL,
    detail bytea NOT NULL);
