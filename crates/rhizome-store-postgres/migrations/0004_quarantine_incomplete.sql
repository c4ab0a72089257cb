-- Issue 10: a held bundle records whether it arrived whole. NULL: its trailer was valid (or
-- it was held before this migration, when nobody recorded it); else why it is not whole
-- (UTF-8, kept as bytes like the name: it may quote a bundle's text).
ALTER TABLE quarantine ADD COLUMN incomplete bytea;
