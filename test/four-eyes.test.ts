import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../src/lib/ids.js';
import { newMerchant, verifyLedger } from './helpers/factories.js';
import {
  bearer,
  createHarness,
  newAdminKey,
  newOperator,
  randomSuffix,
  type Harness,
} from './helpers/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

function create(key: string, ownerId: string) {
  return h.http
    .post('/v1/admin/adjustments')
    .set(bearer(key))
    .set('Idempotency-Key', `adj-${randomSuffix()}`)
    .send({
      account: { type: 'merchant_payable', owner_id: ownerId },
      amount: '2500',
      currency: 'VND',
      direction: 'credit',
      reason: 'four-eyes test',
    });
}

function decide(key: string, id: string, verb: 'approve' | 'reject') {
  return h.http
    .post(`/v1/admin/adjustments/${id}/${verb}`)
    .set(bearer(key))
    .set('Idempotency-Key', `${verb}-${randomSuffix()}`);
}

async function postedEntries(id: string): Promise<number> {
  const { rows } = await h.c.pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM journal_transactions WHERE reference_id = $1`,
    [id],
  );
  return rows[0]!.n;
}

/**
 * An admin key with no operator, as an instance older than operators could still mint while a
 * new one rolls out: written directly, since the API no longer makes one.
 */
async function legacyMachineAdminKey(): Promise<{ id: string; key: string }> {
  const key = `dcb_ak_${randomBytes(32).toString('base64url')}`;
  const id = newId('key');
  await h.c.pool.query(
    `INSERT INTO api_keys (id, key_hash, key_prefix, role) VALUES ($1, $2, $3, 'admin')`,
    [id, createHash('sha256').update(key).digest(), key.slice(0, 12)],
  );
  return { id, key };
}

describe('four-eyes by people', () => {
  it('one person holding two keys cannot approve their own adjustment with either', async () => {
    const alice = await newOperator(h, 'admin');
    const second = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(alice.key))
      .send({ role: 'admin', operator_id: alice.id, description: 'laptop' });
    expect(second.status, second.text).toBe(201);
    expect(second.body.operator_id).toBe(alice.id);
    const merchant = await newMerchant(h);

    const created = await create(alice.key, merchant.id);
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({
      created_by: alice.keyId,
      created_by_operator: alice.id,
      decided_by_operator: null,
    });
    const id = created.body.id as string;
    for (const key of [alice.key, second.body.key as string]) {
      const res = await decide(key, id, 'approve');
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe('forbidden');
      expect(res.body.detail).toMatch(/four-eyes/i);
      expect(res.body.created_by_operator).toBe(alice.id);
    }
    expect(await postedEntries(id)).toBe(0);
    const still = await h.http.get(`/v1/admin/adjustments/${id}`).set(bearer(alice.key));
    expect(still.body.status).toBe('pending_approval');
  });

  it('two different people pass: the adjustment posts, naming both, and the audit trail names them', async () => {
    const alice = await newOperator(h, 'admin');
    const bob = await newOperator(h, 'admin');
    const merchant = await newMerchant(h);
    const created = await create(alice.key, merchant.id);
    expect(created.status, created.text).toBe(201);
    const id = created.body.id as string;
    const approved = await decide(bob.key, id, 'approve');
    expect(approved.status, approved.text).toBe(200);
    expect(approved.body).toMatchObject({
      status: 'posted',
      created_by_operator: alice.id,
      decided_by: bob.keyId,
      decided_by_operator: bob.id,
    });
    expect(await postedEntries(id)).toBe(1);
    expect((await verifyLedger(h)).ok).toBe(true);

    const events = await h.http
      .get('/v1/admin/audit-events')
      .query({ object_id: id })
      .set(bearer(bob.key));
    expect(events.status).toBe(200);
    const byAction = Object.fromEntries(
      (events.body.data as { action: string; actor: { operator_id: string | null } }[]).map((e) => [
        e.action,
        e.actor.operator_id,
      ]),
    );
    expect(byAction).toEqual({ 'adjustment.created': alice.id, 'adjustment.approved': bob.id });
  });

  it('an admin cannot mint a personal key for another admin, so cannot approve as them', async () => {
    const alice = await newOperator(h, 'admin');
    const bob = await newOperator(h, 'admin');
    const minted = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(alice.key))
      .send({ role: 'admin', operator_id: bob.id });
    expect(minted.status, minted.text).toBe(403);
    expect(minted.body).toMatchObject({ code: 'forbidden', param: 'operator_id' });
    const noOperator = await h.http
      .post('/v1/admin/api-keys')
      .set(bearer(alice.key))
      .send({ role: 'admin' });
    expect(noOperator.status).toBe(400);
    expect(noOperator.body).toMatchObject({ code: 'validation_failed', param: 'operator_id' });
    const { rows } = await h.c.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM api_keys WHERE operator_id = $1',
      [bob.id],
    );
    expect(rows[0]!.n).toBe(1);
  });

  it('a machine key (no operator) can neither create, approve nor reject an adjustment', async () => {
    const machine = await legacyMachineAdminKey();
    const alice = await newOperator(h, 'admin');
    const merchant = await newMerchant(h);
    const refused = await create(machine.key, merchant.id);
    expect(refused.status, refused.text).toBe(403);
    expect(refused.body.code).toBe('operator_required');
    const { rows } = await h.c.pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM adjustments WHERE created_by_key_id = $1',
      [machine.id],
    );
    expect(rows[0]!.n).toBe(0);

    const created = await create(alice.key, merchant.id);
    expect(created.status).toBe(201);
    for (const verb of ['approve', 'reject'] as const) {
      const res = await decide(machine.key, created.body.id as string, verb);
      expect(res.status, res.text).toBe(403);
      expect(res.body.code).toBe('operator_required');
    }
    expect(await postedEntries(created.body.id as string)).toBe(0);
    // Reading stays open to it, as to any admin key.
    const read = await h.http
      .get(`/v1/admin/adjustments/${created.body.id as string}`)
      .set(bearer(machine.key));
    expect(read.status).toBe(200);
  });

  it('the database refuses a posted adjustment whose creator and approver are one person', async () => {
    const alice = await newOperator(h, 'admin');
    const merchant = await newMerchant(h);
    const created = await create(alice.key, merchant.id);
    expect(created.status).toBe(201);
    await expect(
      h.c.pool.query(
        `UPDATE adjustments SET status = 'posted', decided_by_key_id = 'key_other',
                decided_by_operator = created_by_operator, decided_at = now() WHERE id = $1`,
        [created.body.id],
      ),
    ).rejects.toMatchObject({ code: '23514' });
  });

  it('the bootstrap path gives every admin key a person of its own', async () => {
    const [a, b] = await Promise.all([newAdminKey(h), newAdminKey(h)]);
    const ops = await Promise.all(
      [a, b].map(async (key) => {
        const { rows } = await h.c.pool.query<{ operator_id: string; bootstrap: boolean }>(
          `SELECT k.operator_id, o.bootstrap FROM api_keys k JOIN operators o ON o.id = k.operator_id
            WHERE k.key_hash = $1`,
          [createHash('sha256').update(key).digest()],
        );
        return rows[0]!;
      }),
    );
    expect(ops.every((o) => o.bootstrap)).toBe(true);
    expect(ops[0]!.operator_id).not.toBe(ops[1]!.operator_id);
  });
});
