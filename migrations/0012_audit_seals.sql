-- Up Migration

-- The hash chain moves out of audit_events, so an audit event is written once and never changed.
-- Sealing used to update each event row in place: a non-HOT update (seq is indexed) writing six
-- index entries and leaving a dead tuple in a table with seven indexes. A seal is now one narrow
-- row appended here. No foreign key to audit_events: a seal whose event has been deleted is
-- evidence, and verification reports it.
CREATE TABLE audit_seals (
  seq        bigint PRIMARY KEY,
  event_id   text NOT NULL UNIQUE,
  prev_hash  text NOT NULL,
  hash       text NOT NULL,
  sealed_at  timestamptz NOT NULL DEFAULT now()
);

-- Events waiting for the sealer, keyed in the order it takes them, so the one index serves both
-- picking a batch and removing it. A trigger fills it, so no writer (the services, the one-step
-- charge function, a bulk load) can leave an event out of the chain; the sealer removes rows in
-- the transaction that inserts their seals.
CREATE TABLE audit_unsealed (
  occurred_at  timestamptz NOT NULL,
  event_id     text NOT NULL,
  PRIMARY KEY (occurred_at, event_id)
);

-- Statement-level, so a bulk insert queues its events in one statement.
CREATE FUNCTION audit_events_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO audit_unsealed (occurred_at, event_id) SELECT occurred_at, id FROM new_events;
  RETURN NULL;
END $$;

-- Existing data: seals keep their seq and hashes (sealed_at is the migration's time); events
-- not yet sealed join the queue.
INSERT INTO audit_seals (seq, event_id, prev_hash, hash)
SELECT seq, id, prev_hash, hash FROM audit_events WHERE seq IS NOT NULL;
INSERT INTO audit_unsealed (occurred_at, event_id)
SELECT occurred_at, id FROM audit_events WHERE seq IS NULL;

DROP TRIGGER audit_events_append_only ON audit_events;
DROP TRIGGER audit_events_no_truncate ON audit_events;
DROP FUNCTION audit_events_append_only();
DROP INDEX audit_events_unsealed_idx;
ALTER TABLE audit_events
  DROP CONSTRAINT audit_events_seq_key,
  DROP COLUMN seq,
  DROP COLUMN prev_hash,
  DROP COLUMN hash;

CREATE TRIGGER audit_events_enqueue AFTER INSERT ON audit_events
  REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_enqueue();

-- Audit events and their seals are append-only, like the books.
CREATE FUNCTION audit_forbid_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit rows are immutable (% on %)', TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;
CREATE TRIGGER audit_events_immutable BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_forbid_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_forbid_change();
CREATE TRIGGER audit_seals_immutable BEFORE UPDATE OR DELETE ON audit_seals
  FOR EACH ROW EXECUTE FUNCTION audit_forbid_change();
CREATE TRIGGER audit_seals_no_truncate BEFORE TRUNCATE ON audit_seals
  FOR EACH STATEMENT EXECUTE FUNCTION audit_forbid_change();

-- Down Migration
DROP TRIGGER audit_seals_no_truncate ON audit_seals;
DROP TRIGGER audit_seals_immutable ON audit_seals;
DROP TRIGGER audit_events_no_truncate ON audit_events;
DROP TRIGGER audit_events_immutable ON audit_events;
DROP FUNCTION audit_forbid_change();
DROP TRIGGER audit_events_enqueue ON audit_events;
DROP FUNCTION audit_events_enqueue();

ALTER TABLE audit_events ADD COLUMN seq bigint UNIQUE, ADD COLUMN prev_hash text, ADD COLUMN hash text;
UPDATE audit_events e SET seq = s.seq, prev_hash = s.prev_hash, hash = s.hash
  FROM audit_seals s WHERE s.event_id = e.id;
CREATE INDEX audit_events_unsealed_idx ON audit_events (occurred_at, id) WHERE seq IS NULL;

-- The guard of migration 0005.
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' THEN
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP;
  END IF;
  IF OLD.seq IS NOT NULL OR OLD.prev_hash IS NOT NULL OR OLD.hash IS NOT NULL THEN
    RAISE EXCEPTION 'audit event % is sealed and cannot change', OLD.id;
  END IF;
  IF NEW.seq IS NULL OR NEW.prev_hash IS NULL OR NEW.hash IS NULL THEN
    RAISE EXCEPTION 'sealing audit event % sets seq, prev_hash and hash together', OLD.id;
  END IF;
  IF (to_jsonb(NEW) - 'seq' - 'prev_hash' - 'hash') IS DISTINCT FROM
     (to_jsonb(OLD) - 'seq' - 'prev_hash' - 'hash') THEN
    RAISE EXCEPTION 'the content of audit event % cannot change', OLD.id;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_events_append_only
  BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
  BEFORE TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

DROP TABLE audit_unsealed;
DROP TABLE audit_seals;
