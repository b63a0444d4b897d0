-- A group resolved by a published draft keeps the knowledge version that publication made: a rollback to an older
-- version (or a publication built on one) reopens it, since its change is no longer what the bot answers from.

ALTER TABLE answer_groups ADD COLUMN resolved_version text;
