import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { eventHash } from '../src/modules/audit/audit-chain.js';
import { listChainPage } from '../src/modules/audit/audit-repo.js';
import { createAuditService } from '../src/modules/audit/audit-service.js';
import type { ChainVerification } from '../src/modules/audit/audit-types.js';
import { auditSealer, freshDatabase, sealAll, staffKey } from './helpers/audit.js';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';

// Every test here breaks the chain on purpose, so each gets a database of its own: a broken
// chain in the run's shared database would fail every other file's verification.
const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
});

interface SealedEvent {
  id: string;
  seq: number;
  prev_hash: string;
  hash: string;
}

interface Chain {
  h: Harness;
  url: string;
  adminKey: string;
  /** Sealed events in seq order. */
  events: SealedEvent[];
}

/** A fresh database holding `merchants` onboarded merchants (plus the admin key), all sealed. */
async function sealedChain(merchants: number, batchSize = 500): Promise<Chain> {
  const db = await freshDatabase();
  cleanups.push(() => db.drop());
  const h = await createHarness({
    databaseUrl: db.url,
    env: { AUDIT_SEAL_BATCH_SIZE: String(batchSize) },
  });
  cleanups.push(() => h.close());
  const admin = await staffKey(h);
  for (let i = 0; i < merchants; i++) {
    const res = await h.http
      .post('/v1/admin/merchants')
      .set(bearer(admin.key))
      .send({ name: `Tamper ${randomSuffix()}`, fee_bps: i });
    expect(res.status).toBe(201);
  }
  await sealAll(auditSealer(h));
  return { h, url: db.url, adminKey: admin.key, events: await sealedEvents(h) };
}

/** Writes one more audit event (a new staff key) and returns its id, still waiting to be sealed. */
async function oneUnsealedEvent(chain: Chain): Promise<string> {
  await staffKey(chain.h);
  const { rows } = await chain.h.c.pool.query<{ event_id: string }>(
    'SELECT event_id FROM audit_unsealed',
  );
  expect(rows).toHaveLength(1);
  return rows[0]!.event_id;
}

async function sealedEvents(h: Harness): Promise<SealedEvent[]> {
  const { rows } = await h.c.pool.query<SealedEvent & { seq: string }>(
    'SELECT event_id AS id, seq, prev_hash, hash FROM audit_seals ORDER BY seq',
  );
  return rows.map((r) => ({ ...r, seq: Number(r.seq) }));
}

async function verify(chain: Chain): Promise<ChainVerification> {
  const res = await chain.h.http.get('/v1/admin/audit-events/verify').set(bearer(chain.adminKey));
  expect(res.status).toBe(200);
  return res.body as ChainVerification;
}

/** What someone with direct SQL access does: switch the guards off, change history, switch them on. */
async function tamper(chain: Chain, sql: string, values: unknown[]): Promise<void> {
  const client = await chain.h.c.pool.connect();
  try {
    await client.query('BEGIN');
    await client.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_immutable');
    await client.query('ALTER TABLE audit_seals DISABLE TRIGGER audit_seals_immutable');
    const { rowCount } = await client.query(sql, values);
    expect(rowCount).toBeGreaterThan(0);
    await client.query('ALTER TABLE audit_seals ENABLE TRIGGER audit_seals_immutable');
    await client.query('ALTER TABLE audit_events ENABLE TRIGGER audit_events_immutable');
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK');
    throw err;
  } finally {
    client.release();
  }
}

const execFileAsync = promisify(execFile);

/** `npm run admin -- verify-audit` against the given database: its exit code and JSON output. */
async function verifyWithCli(url: string): Promise<{ code: number; verdict: ChainVerification }> {
  try {
    const { stdout } = await execFileAsync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/admin.ts', 'verify-audit'],
      { env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'silent' } },
    );
    return { code: 0, verdict: JSON.parse(stdout) as ChainVerification };
  } catch (err) {
    const failed = err as { code?: number; stdout?: string };
    return { code: failed.code ?? -1, verdict: JSON.parse(failed.stdout ?? 'null') };
  }
}

describe('audit chain sealer', () => {
  it('seals in (occurred_at, id) order from the genesis hash, each batch continuing from the head', async () => {
    const chain = await sealedChain(0, 4);
    const admin = await staffKey(chain.h);
    for (let i = 0; i < 8; i++) {
      await chain.h.http
        .post('/v1/admin/merchants')
        .set(bearer(admin.key))
        .send({ name: `Batch ${i}`, fee_bps: 1 })
        .expect(201);
    }
    const sealer = auditSealer(chain.h);
    // 1 event from sealedChain's admin key was sealed already; 1 + 8 are waiting.
    expect([await sealer.runOnce(), await sealer.runOnce(), await sealer.runOnce()]).toEqual([
      4, 4, 1,
    ]);
    expect(await sealer.runOnce()).toBe(0);

    const events = await sealedEvents(chain.h);
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(events[0]!.prev_hash).toBe('0'.repeat(64));
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.prev_hash).toBe(events[i - 1]!.hash);
    }
    const { rows: byTime } = await chain.h.c.pool.query<{ id: string }>(
      'SELECT id FROM audit_events ORDER BY occurred_at, id',
    );
    expect(byTime.map((r) => r.id)).toEqual(events.map((e) => e.id));
    const { rows: head } = await chain.h.c.pool.query(
      'SELECT seq, event_id, hash FROM audit_chain_head',
    );
    expect(head[0]).toEqual({ seq: '10', event_id: events[9]!.id, hash: events[9]!.hash });

    expect(await verify(chain)).toEqual({
      ok: true,
      checked: 10,
      unsealed: 0,
      head: { seq: 10, id: events[9]!.id, hash: events[9]!.hash },
    });
  });
});

describe('audit chain verification detects tampering', () => {
  it('reports an event whose summary was rewritten in SQL at its seq, in the API and the CLI', async () => {
    const chain = await sealedChain(8);
    expect(chain.events).toHaveLength(9);
    expect(await verify(chain)).toMatchObject({ ok: true, checked: 9, unsealed: 0 });
    expect(await verifyWithCli(chain.url)).toMatchObject({ code: 0, verdict: { ok: true } });

    const victim = chain.events[4]!;
    await tamper(chain, `UPDATE audit_events SET summary = '{"x":1}' WHERE id = $1`, [victim.id]);

    const verdict = await verify(chain);
    expect(verdict).toMatchObject({
      ok: false,
      checked: 5,
      first_bad: { seq: 5, id: victim.id, reason: 'hash_mismatch' },
    });
    // Reading the chain two events at a time finds the same row.
    const paged = await createAuditService({
      pool: chain.h.c.pool,
      verifyPageSize: 2,
    }).verifyChain();
    expect(paged).toEqual(verdict);
    const cli = await verifyWithCli(chain.url);
    expect(cli.code).toBe(1);
    expect(cli.verdict).toEqual(verdict);
  });

  it.each([
    [
      'occurred_at moved by one microsecond',
      `occurred_at = occurred_at + interval '1 microsecond'`,
    ],
    ['actor_id replaced', `actor_id = 'key_someone_else'`],
    ['request_id replaced', `request_id = 'req_forged'`],
    ['object_id replaced', `object_id = 'mer_forged'`],
  ])('reports an event with %s', async (_what, set) => {
    const chain = await sealedChain(5);
    const victim = chain.events[3]!;
    await tamper(chain, `UPDATE audit_events SET ${set} WHERE id = $1`, [victim.id]);
    expect(await verify(chain)).toMatchObject({
      ok: false,
      first_bad: { seq: 4, id: victim.id, reason: 'hash_mismatch' },
    });
  });

  it('reports a deleted event as missing at its seq, named by its seal', async () => {
    const chain = await sealedChain(8);
    const victim = chain.events[3]!;
    await tamper(chain, 'DELETE FROM audit_events WHERE id = $1', [victim.id]);
    expect(await verify(chain)).toMatchObject({
      ok: false,
      checked: 4,
      first_bad: { seq: 4, id: victim.id, reason: 'missing' },
    });
  });

  it('reports an event taken off the sealer queue as unchained', async () => {
    const chain = await sealedChain(2);
    const hidden = await oneUnsealedEvent(chain);
    await tamper(chain, 'DELETE FROM audit_unsealed WHERE event_id = $1', [hidden]);
    await sealAll(auditSealer(chain.h));
    expect(await verify(chain)).toMatchObject({
      ok: false,
      checked: chain.events.length,
      first_bad: { seq: null, id: hidden, reason: 'unchained' },
      unsealed: 0,
    });
  });

  it('reports a deleted event and seal as a gap at the event after it', async () => {
    const chain = await sealedChain(8);
    const victim = chain.events[3]!;
    await tamper(chain, 'DELETE FROM audit_events WHERE id = $1', [victim.id]);
    await tamper(chain, 'DELETE FROM audit_seals WHERE event_id = $1', [victim.id]);
    expect(await verify(chain)).toMatchObject({
      ok: false,
      checked: 4,
      first_bad: { seq: 5, id: chain.events[4]!.id, reason: 'seq_gap' },
    });
  });

  it('reports a gap closed by renumbering as a broken link', async () => {
    const chain = await sealedChain(6);
    const victim = chain.events[2]!;
    await tamper(chain, 'DELETE FROM audit_events WHERE id = $1', [victim.id]);
    await tamper(chain, 'DELETE FROM audit_seals WHERE event_id = $1', [victim.id]);
    // Two steps, so the seq key never sees two rows with one seq mid-statement.
    await tamper(chain, 'UPDATE audit_seals SET seq = -(seq - 1) WHERE seq > 3', []);
    await tamper(chain, 'UPDATE audit_seals SET seq = -seq WHERE seq < 0', []);
    expect(await verify(chain)).toMatchObject({
      ok: false,
      first_bad: { seq: 3, id: chain.events[3]!.id, reason: 'prev_hash_mismatch' },
    });
  });

  it('reports an altered event whose seal was re-hashed to match as a broken link at the next seal', async () => {
    const chain = await sealedChain(8);
    const victim = chain.events[4]!;
    await tamper(chain, `UPDATE audit_events SET summary = '{"x":1}' WHERE id = $1`, [victim.id]);
    const [link] = await listChainPage(chain.h.c.pool, victim.seq - 1, victim.seq, 1);
    const forged = eventHash(victim.prev_hash, link!.event!);
    await tamper(chain, 'UPDATE audit_seals SET hash = $2 WHERE event_id = $1', [
      victim.id,
      forged,
    ]);
    expect(await verify(chain)).toMatchObject({
      ok: false,
      checked: 6,
      first_bad: { seq: 6, id: chain.events[5]!.id, reason: 'prev_hash_mismatch' },
    });
  });

  it('reports events cut from the tail as missing, and a rewritten head', async () => {
    const chain = await sealedChain(8);
    const cut = async (event: SealedEvent) => {
      await tamper(chain, 'DELETE FROM audit_events WHERE id = $1', [event.id]);
      await tamper(chain, 'DELETE FROM audit_seals WHERE event_id = $1', [event.id]);
    };
    const last = chain.events[8]!;
    await cut(last);
    expect(await verify(chain)).toMatchObject({
      ok: false,
      checked: 8,
      first_bad: { seq: 9, id: last.id, reason: 'missing' },
    });
    await cut(chain.events[7]!);
    expect(await verify(chain)).toMatchObject({
      ok: false,
      checked: 7,
      first_bad: { seq: 8, id: null, reason: 'missing' },
    });

    const other = await sealedChain(3);
    await other.h.c.pool.query(`UPDATE audit_chain_head SET hash = repeat('a', 64)`);
    expect(await verify(other)).toMatchObject({
      ok: false,
      checked: 4,
      first_bad: { seq: 4, id: other.events[3]!.id, reason: 'head_mismatch' },
    });
  });
});

describe('audit events and their seals are append-only in the database', () => {
  it('refuses an UPDATE of an audit event, sealed or not', async () => {
    const chain = await sealedChain(1);
    const sealed = chain.events[1]!;
    const unsealed = await oneUnsealedEvent(chain);

    for (const id of [sealed.id, unsealed]) {
      // 23001: refused by the guard trigger, not by some incidental constraint.
      await expect(
        chain.h.c.pool.query(`UPDATE audit_events SET summary = '{"x":1}' WHERE id = $1`, [id]),
      ).rejects.toMatchObject({ code: '23001' });
    }
    expect(await verify(chain)).toMatchObject({ ok: true, checked: 2, unsealed: 1 });
    await sealAll(auditSealer(chain.h));
    expect(await verify(chain)).toMatchObject({ ok: true, checked: 3, unsealed: 0 });
  });

  it('refuses to delete or truncate an event, to alter, delete or truncate a seal, and to move the head back', async () => {
    const chain = await sealedChain(2);
    const sealed = chain.events[1]!;
    const unsealed = await oneUnsealedEvent(chain);

    // 23001 from the audit guards, P0001 from the head's: never some incidental constraint.
    const refusals: [string, unknown[], string][] = [
      ['DELETE FROM audit_events WHERE id = $1', [sealed.id], '23001'],
      ['DELETE FROM audit_events WHERE id = $1', [unsealed], '23001'],
      ['TRUNCATE audit_events', [], '23001'],
      ['UPDATE audit_seals SET hash = prev_hash WHERE event_id = $1', [sealed.id], '23001'],
      ['UPDATE audit_seals SET seq = 99 WHERE event_id = $1', [sealed.id], '23001'],
      ['DELETE FROM audit_seals WHERE event_id = $1', [sealed.id], '23001'],
      ['TRUNCATE audit_seals', [], '23001'],
      ['UPDATE audit_chain_head SET seq = seq - 1', [], 'P0001'],
      ['DELETE FROM audit_chain_head', [], 'P0001'],
    ];
    for (const [sql, values, code] of refusals) {
      await expect(chain.h.c.pool.query(sql, values), sql).rejects.toMatchObject({ code });
    }
    await sealAll(auditSealer(chain.h));
    expect(await verify(chain)).toMatchObject({ ok: true, checked: 4, unsealed: 0 });
  });
});
