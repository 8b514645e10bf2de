import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTransaction } from '../src/db/transaction.js';
import { SYSTEM_ACTOR } from '../src/http/context.js';
import { canonicalJson, eventHash } from '../src/modules/audit/audit-chain.js';
import { insertAuditEvent } from '../src/modules/audit/audit-repo.js';
import { auditSealer, sealUntilSealed, staffKey, unsealedAmong } from './helpers/audit.js';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';

// Two harnesses are two pools: two gateway instances whose sealers race for the same chain.
// Small batches make the sealers take turns many times.
let h1: Harness;
let h2: Harness;
beforeAll(async () => {
  const env = { AUDIT_SEAL_BATCH_SIZE: '7' };
  [h1, h2] = await Promise.all([createHarness({ env }), createHarness({ env })]);
});
afterAll(async () => {
  await Promise.all([h1.close(), h2.close()]);
});

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function eventIds(h: Harness, objectId: string, action: string): Promise<string[]> {
  const { rows } = await h.c.pool.query<{ id: string }>(
    'SELECT id FROM audit_events WHERE object_id = $1 AND action = $2',
    [objectId, action],
  );
  return rows.map((r) => r.id);
}

describe('audit chain sealing', () => {
  it('seals 50 concurrent writes exactly once while two sealers race: seq has no gaps and the chain verifies', async () => {
    const admin = await staffKey(h1);
    const sealers = [auditSealer(h1), auditSealer(h2)];
    let writing = true;
    const sealed = [0, 0];
    const failures: unknown[] = [];
    const loops = sealers.map(async (sealer, i) => {
      try {
        while (writing && failures.length === 0) {
          const n = await sealer.runOnce();
          sealed[i] = (sealed[i] ?? 0) + n;
          if (n === 0) await sleep(2);
        }
      } catch (err) {
        failures.push(err);
      }
    });

    const writes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        (i % 2 === 0 ? h1 : h2).http
          .post('/v1/admin/merchants')
          .set(bearer(admin.key))
          .send({ name: `Chain ${randomSuffix()}`, fee_bps: 10 }),
      ),
    );
    expect(writes.map((r) => r.status)).toEqual(Array(50).fill(201));
    const ids = await h1.c.pool
      .query<{ id: string }>(
        `SELECT id FROM audit_events WHERE actor_id = $1 AND action = 'merchant.created'`,
        [admin.id],
      )
      .then((r) => r.rows.map((row) => row.id));
    expect(ids).toHaveLength(50);

    // Keep both sealers racing until every one of these events is in the chain.
    for (let i = 0; i < 500 && failures.length === 0; i++) {
      if ((await unsealedAmong(h1, ids)) === 0) break;
      await sleep(10);
    }
    writing = false;
    await Promise.all(loops);
    expect(failures).toEqual([]);
    expect(await unsealedAmong(h1, ids)).toBe(0);
    expect(sealed[0]! + sealed[1]!).toBeGreaterThanOrEqual(50);

    // One snapshot: every sealed event has its own seq, 1..n without a hole, and the head is n.
    const { rows } = await h1.c.pool.query<{
      n: string;
      distinct_seqs: string;
      min: string;
      max: string;
      head: string;
    }>(
      `SELECT count(*) AS n, count(DISTINCT seq) AS distinct_seqs, min(seq) AS min, max(seq) AS max,
              (SELECT seq FROM audit_chain_head) AS head
         FROM audit_seals`,
    );
    const chain = rows[0]!;
    expect(chain.min).toBe('1');
    expect(chain.distinct_seqs).toBe(chain.n);
    expect(chain.max).toBe(chain.n);
    expect(chain.head).toBe(chain.n);

    const verify = await h2.http.get('/v1/admin/audit-events/verify').set(bearer(admin.key));
    expect(verify.status).toBe(200);
    expect(verify.body).toMatchObject({ ok: true });
    expect(verify.body.first_bad).toBeUndefined();
    expect(verify.body.checked).toBe(verify.body.head.seq);
    expect(verify.body.checked).toBeGreaterThanOrEqual(Number(chain.n));
    const mine = await h1.c.pool.query<{ max: string }>(
      'SELECT max(seq) AS max FROM audit_seals WHERE event_id = ANY($1)',
      [ids],
    );
    expect(verify.body.checked).toBeGreaterThanOrEqual(Number(mine.rows[0]!.max));
  });

  it('seals an event whose transaction commits late after newer ones, with a higher seq, and the chain still verifies', async () => {
    const objectId = `late-${randomSuffix()}`;
    const late = await h1.c.pool.connect();
    try {
      await late.query('BEGIN');
      await insertAuditEvent(late, SYSTEM_ACTOR('test'), {
        action: 'test.late',
        objectType: 'test',
        objectId,
      });
      // Committed after the late event was written, so it occurred later.
      await withTransaction(h2.c.pool, (tx) =>
        insertAuditEvent(tx, SYSTEM_ACTOR('test'), {
          action: 'test.early',
          objectType: 'test',
          objectId,
        }),
      );
      const early = await eventIds(h2, objectId, 'test.early');
      await sealUntilSealed(h1, early, auditSealer(h1), auditSealer(h2));
      await late.query('COMMIT');
    } finally {
      late.release();
    }
    await sealUntilSealed(h1, await eventIds(h1, objectId, 'test.late'), auditSealer(h1));

    const { rows } = await h1.c.pool.query<{ action: string; seq: string; occurred_at: Date }>(
      `SELECT e.action, s.seq, e.occurred_at
         FROM audit_events AS e JOIN audit_seals AS s ON s.event_id = e.id
        WHERE e.object_id = $1`,
      [objectId],
    );
    const byAction = Object.fromEntries(rows.map((r) => [r.action, r]));
    expect(byAction['test.late']!.occurred_at.getTime()).toBeLessThanOrEqual(
      byAction['test.early']!.occurred_at.getTime(),
    );
    expect(Number(byAction['test.late']!.seq)).toBeGreaterThan(Number(byAction['test.early']!.seq));

    const verdict = await h1.c.audit.verifyChain();
    expect(verdict).toMatchObject({ ok: true });
    expect(verdict.checked).toBeGreaterThanOrEqual(Number(byAction['test.late']!.seq));
  });

  it('lets anyone recompute each hash from the listed events alone', async () => {
    const admin = await staffKey(h1);
    for (let i = 0; i < 3; i++) {
      const res = await h1.http
        .post('/v1/admin/merchants')
        .set(bearer(admin.key))
        .send({ name: `Ünïcode ✓ ${i} "quoted"`, fee_bps: 10 + i });
      expect(res.status).toBe(201);
    }
    const created = await h1.c.pool.query<{ id: string }>(
      'SELECT id FROM audit_events WHERE actor_id = $1',
      [admin.id],
    );
    await sealUntilSealed(
      h1,
      created.rows.map((r) => r.id),
      auditSealer(h1),
    );
    const res = await h1.http
      .get('/v1/admin/audit-events')
      .query({ actor_id: admin.id })
      .set(bearer(admin.key));
    expect(res.body.data).toHaveLength(3);
    for (const e of res.body.data) {
      expect(e.seq).toBeGreaterThan(0);
      const content = {
        id: e.id,
        occurred_at: e.occurred_at,
        actor_type: e.actor.type,
        actor_id: e.actor.id,
        api_key_id: e.actor.api_key_id,
        // Hashed only when a person acted (absent keys are dropped by canonicalJson).
        actor_operator: e.actor.operator_id ?? undefined,
        actor_ip: e.actor.ip,
        action: e.action,
        object_type: e.object.type,
        object_id: e.object.id,
        request_id: e.request_id,
        summary: e.summary,
      };
      const expected = createHash('sha256')
        .update(e.prev_hash + canonicalJson(content))
        .digest('hex');
      expect(e.hash).toBe(expected);
    }
  });
});

describe('canonical JSON', () => {
  it('sorts keys at every depth, keeps array order and drops no characters', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: null, y: 'é' }], c: true } })).toBe(
      '{"a":{"c":true,"d":[3,{"y":"é","z":null}]},"b":1}',
    );
    expect(canonicalJson({ '\u00e9': 1, e: 2, E: 3 })).toBe('{"E":3,"e":2,"é":1}');
    expect(canonicalJson('line\nbreak "q"')).toBe('"line\\nbreak \\"q\\""');
    expect(canonicalJson({ a: 1, b: undefined })).toBe('{"a":1}');
  });
});

describe('the person in the hash', () => {
  const base = {
    id: 'evt_01jd4x8m6b2k9s7q3w5e1r0t2y',
    occurred_at: '2025-05-01T08:30:00.123456Z',
    actor_type: 'admin',
    actor_id: 'key_1',
    api_key_id: 'key_1',
    actor_ip: '127.0.0.1',
    action: 'merchant.suspended',
    object_type: 'merchant',
    object_id: 'mer_1',
    request_id: 'req-1',
    summary: { from: 'active', to: 'suspended' },
  };
  const prev = 'ab'.repeat(32);
  const sha = (text: string) => createHash('sha256').update(text).digest('hex');

  it('an event without an operator hashes exactly as events did before operators existed', () => {
    expect(eventHash(prev, { ...base, actor_operator: null })).toBe(
      sha(prev + canonicalJson(base)),
    );
  });

  it('an event with an operator covers it: changing the person breaks the seal', () => {
    const signed = eventHash(prev, { ...base, actor_operator: 'op_1' });
    expect(signed).toBe(sha(prev + canonicalJson({ ...base, actor_operator: 'op_1' })));
    expect(signed).not.toBe(eventHash(prev, { ...base, actor_operator: 'op_2' }));
    expect(signed).not.toBe(eventHash(prev, { ...base, actor_operator: null }));
  });
});
