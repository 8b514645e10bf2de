-- Up Migration

-- Wrong one-time codes per subscriber number, across every charge and merchant (SPEC §10): the
-- times of the wrong codes still inside the window, oldest first. A confirm takes this row's lock
-- (after its charge's) before it compares the code, so concurrent wrong codes on many charges of
-- one number are counted one after another and the limit is exact. Keyed by the number, not the
-- subscriber record: the limit follows the number through a port.
CREATE TABLE otp_number_failures (
  msisdn      text PRIMARY KEY,
  failed_at   timestamptz[] NOT NULL DEFAULT '{}',
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The wrong codes of `failed_at` still inside the window that ends now, oldest first.
CREATE FUNCTION otp_failures_in_window(failed_at timestamptz[], window_seconds integer)
RETURNS timestamptz[] LANGUAGE sql STABLE AS $$
  SELECT ARRAY(SELECT t FROM unnest(failed_at) AS t
                WHERE t > now() - make_interval(secs => window_seconds) ORDER BY t)
$$;

-- The one rule of the lock: a number with `max_failures` wrong codes inside the window is locked
-- until the oldest of those leaves the window; NULL when it is not locked. Nothing is recorded
-- while it is locked, so the lock ends at most one window after it began.
CREATE FUNCTION otp_number_locked_until(failed_at timestamptz[], window_seconds integer,
                                        max_failures integer)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN cardinality(w) >= max_failures
              THEN w[cardinality(w) - max_failures + 1] + make_interval(secs => window_seconds) END
    FROM otp_failures_in_window(failed_at, window_seconds) AS w
$$;

-- The carrier is told in carrier_events (migration 0013), type subscriber.otp_locked.

-- Down Migration
DROP FUNCTION otp_number_locked_until(timestamptz[], integer, integer);
DROP FUNCTION otp_failures_in_window(timestamptz[], integer);
DROP TABLE otp_number_failures;
