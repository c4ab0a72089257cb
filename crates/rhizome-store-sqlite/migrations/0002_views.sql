-- Migration 2: views, and the follow set that decides the timeline (local authors followed).
-- rhizome: replay-views
CREATE TABLE follows (author BLOB PRIMARY KEY) WITHOUT ROWID;
INSERT INTO follows SELECT public_key FROM local_authors;
CREATE TABLE main.v_timeline (ts INTEGER NOT NULL, hash BLOB NOT NULL, author BLOB NOT NULL,
    seq INTEGER NOT NULL, kind TEXT NOT NULL, target BLOB, PRIMARY KEY (ts, hash)) WITHOUT ROWID;
CREATE INDEX main.v_timeline_author ON v_timeline (author, ts, hash);
CREATE TABLE main.v_replies (target BLOB NOT NULL, hash BLOB NOT NULL, author BLOB NOT NULL,
    seq INTEGER NOT NULL, ts INTEGER NOT NULL, PRIMARY KEY (target, hash)) WITHOUT ROWID;
CREATE TABLE main.v_likes (target BLOB NOT NULL, author BLOB NOT NULL,
    PRIMARY KEY (target, author)) WITHOUT ROWID;
CREATE TABLE main.v_stars (author BLOB NOT NULL, target BLOB NOT NULL, seq INTEGER NOT NULL,
    starred INTEGER NOT NULL, PRIMARY KEY (author, target)) WITHOUT ROWID;
CREATE TABLE main.v_circles (owner BLOB NOT NULL, id BLOB NOT NULL, name TEXT NOT NULL,
    PRIMARY KEY (owner, id)) WITHOUT ROWID;
CREATE UNIQUE INDEX main.v_circles_name ON v_circles (owner, name);
CREATE TABLE main.v_circle_members (owner BLOB NOT NULL, id BLOB NOT NULL, member BLOB NOT NULL,
    PRIMARY KEY (owner, id, member)) WITHOUT ROWID;
CREATE TABLE main.v_tags (tag TEXT NOT NULL, target BLOB NOT NULL, author BLOB NOT NULL,
    PRIMARY KEY (tag, target, author)) WITHOUT ROWID;
CREATE INDEX main.v_tags_target ON v_tags (target);
CREATE TABLE main.v_skipped (hash BLOB NOT NULL PRIMARY KEY, author BLOB NOT NULL,
    seq INTEGER NOT NULL, type TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL) WITHOUT ROWID;
