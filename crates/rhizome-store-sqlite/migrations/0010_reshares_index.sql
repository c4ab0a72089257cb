-- Issue 13: a thread shows who reshared its root. Reshares are v_timeline rows with a target;
-- this index finds them by target without scanning the timeline. An index, not a view table:
-- rebuilds clear and refill the rows and keep it, so digests are unchanged.
CREATE INDEX main.v_timeline_target ON v_timeline (target, ts, hash);
