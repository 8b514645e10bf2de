-- Up Migration

-- Per-owner override of the per-API-key rate limit: {"rate": <requests per second>, "burst": <n>}.
-- NULL means the configured default (RATE_LIMIT_KEY_RATE / RATE_LIMIT_KEY_BURST). Admin and auditor
-- keys are their own owners, so their override lives on the key.
CREATE FUNCTION rate_limit_override_valid(v jsonb) RETURNS boolean
  LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
      WHEN jsonb_typeof(v) <> 'object' THEN false
      WHEN jsonb_typeof(v -> 'rate') <> 'number' OR jsonb_typeof(v -> 'burst') <> 'number' THEN false
      ELSE (v ->> 'rate')::numeric > 0
        AND (v ->> 'rate')::numeric <= 1000000
        AND (v ->> 'burst')::numeric >= 1
        AND (v ->> 'burst')::numeric <= 1000000
        AND (v ->> 'burst')::numeric = trunc((v ->> 'burst')::numeric)
        AND (v - 'rate' - 'burst') = '{}'::jsonb
    END
  $$;

ALTER TABLE merchants ADD COLUMN rate_limit jsonb
  CHECK (rate_limit IS NULL OR rate_limit_override_valid(rate_limit));
ALTER TABLE carriers ADD COLUMN rate_limit jsonb
  CHECK (rate_limit IS NULL OR rate_limit_override_valid(rate_limit));
ALTER TABLE api_keys ADD COLUMN rate_limit jsonb
  CHECK (rate_limit IS NULL OR rate_limit_override_valid(rate_limit));

-- Down Migration
ALTER TABLE api_keys DROP COLUMN rate_limit;
ALTER TABLE carriers DROP COLUMN rate_limit;
ALTER TABLE merchants DROP COLUMN rate_limit;
DROP FUNCTION rate_limit_override_valid(jsonb);
