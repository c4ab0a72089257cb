-- Issue 10: a held bundle records whether it arrived whole. NULL: its trailer was valid (or
-- it was held before this migration, when nobody recorded it); else why it is not whole.
ALTER TABLE quarantine ADD COLUMN incomplete TEXT;
