import { expect } from 'vitest';
import { bearer, newAdminKey, randomSuffix, type Harness } from './harness.js';
import { newCarrier, type CarrierFixture } from './factories.js';

/** POSTs a refund with a fresh Idempotency-Key. */
export function refund(
  h: Harness,
  merchantKey: string,
  chargeId: string,
  body: Record<string, unknown> = {},
) {
  return h.http
    .post(`/v1/charges/${chargeId}/refunds`)
    .set(bearer(merchantKey))
    .set('Idempotency-Key', `r-${randomSuffix()}`)
    .send(body);
}

/** The carrier's local date `daysAgo` days before today, as YYYY-MM-DD (database clock). */
export async function localDate(h: Harness, timezone: string, daysAgo: number): Promise<string> {
  const { rows } = await h.c.pool.query<{ d: string }>(
    `SELECT ((now() AT TIME ZONE $1)::date - $2::int)::text AS d`,
    [timezone, daysAgo],
  );
  return rows[0]!.d;
}

/** The instant of a local wall-clock time ("YYYY-MM-DD HH:MM:SS.FFF") in a zone, as RFC 3339 UTC. */
export async function localInstant(
  h: Harness,
  timezone: string,
  wallClock: string,
): Promise<string> {
  const { rows } = await h.c.pool.query<{ t: string }>(
    `SELECT to_char(($2::timestamp AT TIME ZONE $1) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t`,
    [timezone, wallClock],
  );
  return rows[0]!.t;
}

/** Moves when a charge counts (its capture) to a chosen instant. */
export async function setCapturedAt(h: Harness, chargeId: string, at: string): Promise<void> {
  await h.c.pool.query('UPDATE charges SET captured_at = $2, created_at = $2 WHERE id = $1', [
    chargeId,
    at,
  ]);
}

export async function setRefundCreatedAt(h: Harness, refundId: string, at: string): Promise<void> {
  await h.c.pool.query('UPDATE refunds SET created_at = $2 WHERE id = $1', [refundId, at]);
}

export interface CarrierWithDays {
  carrier: CarrierFixture;
  admin: string;
  /** Statement id by local date, from `daysBack` days ago through today. */
  statements: Map<string, string>;
}

/**
 * A carrier onboarded `daysBack` days ago (so it has a statement for each day since), with the
 * statements opened the way the settlement worker opens them.
 */
export async function carrierWithDays(
  h: Harness,
  overrides: Record<string, unknown> = {},
  daysBack = 3,
): Promise<CarrierWithDays> {
  const carrier = await newCarrier(h, overrides);
  await h.c.pool.query(
    `UPDATE carriers SET created_at = now() - make_interval(days => $2) WHERE id = $1`,
    [carrier.id, daysBack],
  );
  await h.c.settlements.openStatements();
  const res = await h.http.get('/v1/carrier/settlements?limit=100').set(bearer(carrier.key));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const statements = new Map<string, string>();
  for (const s of res.body.data as { business_date: string; id: string }[])
    statements.set(s.business_date, s.id);
  expect(statements.size).toBeGreaterThanOrEqual(daysBack + 1);
  return { carrier, admin: await newAdminKey(h), statements };
}

export function closeStatement(h: Harness, admin: string, id: string) {
  return h.http.post(`/v1/admin/settlements/${id}/close`).set(bearer(admin));
}

/** Closes the statements of the given dates in order, expecting each to close. */
export async function closeDays(
  h: Harness,
  c: CarrierWithDays,
  dates: string[],
): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const d of dates) {
    const res = await closeStatement(h, c.admin, c.statements.get(d)!);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.status).toBe('closed');
    out.push(res.body);
  }
  return out;
}
