-- Up Migration

-- Four-eyes compares people (SPEC §9.2): each decision names the operator behind the key. The
-- key columns stay, as the record of which key was used.
ALTER TABLE adjustments ADD COLUMN created_by_operator text REFERENCES operators (id);
ALTER TABLE adjustments ADD COLUMN decided_by_operator text REFERENCES operators (id);

-- Corrections made before operators existed take the operator migration 0014 gave their key.
UPDATE adjustments a SET created_by_operator = k.operator_id
  FROM api_keys k WHERE k.id = a.created_by_key_id;
UPDATE adjustments a SET decided_by_operator = k.operator_id
  FROM api_keys k WHERE k.id = a.decided_by_key_id;

-- Kept by the database as well: a posted correction was created and approved by two people.
-- NOT VALID: corrections posted before this migration were checked by key lineage instead.
ALTER TABLE adjustments ADD CONSTRAINT adjustments_four_eyes_by_people
  CHECK (status <> 'posted'
         OR (created_by_operator IS NOT NULL AND decided_by_operator IS NOT NULL
             AND created_by_operator <> decided_by_operator)) NOT VALID;

CREATE INDEX adjustments_created_by_operator_idx ON adjustments (created_by_operator)
  WHERE created_by_operator IS NOT NULL;

-- Audit events are searched by the person who acted.
CREATE INDEX audit_events_actor_operator_idx ON audit_events (actor_operator, occurred_at, id)
  WHERE actor_operator IS NOT NULL;

-- Down Migration
DROP INDEX IF EXISTS audit_events_actor_operator_idx;
ALTER TABLE adjustments DROP CONSTRAINT IF EXISTS adjustments_four_eyes_by_people;
ALTER TABLE adjustments DROP COLUMN IF EXISTS decided_by_operator;
ALTER TABLE adjustments DROP COLUMN IF EXISTS created_by_operator;
