-- Up Migration

-- The end of the sealed hash chain. The sealer advances it in the same transaction as the rows
-- it seals, so a verifier can tell a chain cut short at its tail from one that simply ends there.
CREATE TABLE audit_chain_head (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  seq        bigint NOT NULL CHECK (seq >= 0),
  event_id   text,
  hash       text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  sealed_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((seq = 0) = (event_id IS NULL))
);
INSERT INTO audit_chain_head (seq, event_id, hash) VALUES (0, NULL, repeat('0', 64));

CREATE FUNCTION audit_chain_head_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'UPDATE' THEN
    RAISE EXCEPTION 'the audit chain head is never removed';
  END IF;
  IF NEW.seq < OLD.seq THEN
    RAISE EXCEPTION 'the audit chain head only moves forward (% -> %)', OLD.seq, NEW.seq;
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER audit_chain_head_forward_only
  BEFORE UPDATE OR DELETE ON audit_chain_head
  FOR EACH ROW EXECUTE FUNCTION audit_chain_head_forward_only();
CREATE TRIGGER audit_chain_head_no_truncate
  BEFORE TRUNCATE ON audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION audit_chain_head_forward_only();

-- Audit events are append-only. The one update allowed is the sealer's: it sets seq, prev_hash
-- and hash together, once, on an unsealed row, leaving every content column as it was.
-- INSERT fires nothing, so the charge path stays one plain INSERT.
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

-- The admin search lists newest first by (occurred_at, id) after an equality filter; the id in
-- each index lets the keyset cursor and the order be served by the index alone. They replace
-- the two-column indexes of 0001 (same leading columns), so each INSERT maintains no more
-- indexes than before.
CREATE INDEX audit_events_object_time_idx ON audit_events (object_type, object_id, occurred_at, id);
CREATE INDEX audit_events_actor_time_idx ON audit_events (actor_id, occurred_at, id);
CREATE INDEX audit_events_action_time_idx ON audit_events (action, occurred_at, id);
DROP INDEX audit_events_object_idx;
DROP INDEX audit_events_actor_idx;
DROP INDEX audit_events_action_idx;

-- Down Migration
CREATE INDEX audit_events_object_idx ON audit_events (object_type, object_id);
CREATE INDEX audit_events_actor_idx ON audit_events (actor_id, occurred_at);
CREATE INDEX audit_events_action_idx ON audit_events (action, occurred_at);
DROP INDEX audit_events_action_time_idx;
DROP INDEX audit_events_actor_time_idx;
DROP INDEX audit_events_object_time_idx;
DROP TRIGGER audit_events_no_truncate ON audit_events;
DROP TRIGGER audit_events_append_only ON audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE audit_chain_head;
DROP FUNCTION audit_chain_head_forward_only();
