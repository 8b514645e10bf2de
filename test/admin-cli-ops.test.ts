import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freshDatabase, staffKey } from './helpers/audit.js';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';

const exec = promisify(execFile);
let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

async function admin(args: string[], databaseUrl = inject('databaseUrl')): Promise<CliRun> {
  try {
    const { stdout, stderr } = await exec('npx', ['tsx', 'src/cli/admin.ts', ...args], {
      env: { ...process.env, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

// Each command is a fresh tsx process: allow for a loaded machine.
describe('admin CLI: operations', { timeout: 120_000 }, () => {
  it('onboard-carrier and onboard-merchant create tenants the API then serves', async () => {
    const key = await staffKey(h);
    const code = `cli-${randomSuffix()}`;
    const carrier = await admin([
      'onboard-carrier',
      '--code',
      code,
      '--name',
      'CLI Telecom',
      '--currency',
      'VND',
      '--timezone',
      'Asia/Ho_Chi_Minh',
      '--revenue-share-bps',
      '3000',
    ]);
    expect(carrier.code, carrier.stderr).toBe(0);
    const created = JSON.parse(carrier.stdout) as { id: string };
    const served = await h.http.get(`/v1/admin/carriers/${created.id}`).set(bearer(key.key));
    expect(served.status).toBe(200);
    expect(served.body).toEqual(created);
    expect(served.body).toMatchObject({ code, revenue_share_bps: 3000, status: 'active' });
    expect(served.body.limits.prepaid.per_transaction_max).toBe('5000000');

    const again = await admin([
      'onboard-carrier',
      '--code',
      code,
      '--name',
      'Again',
      '--currency',
      'VND',
      '--timezone',
      'Asia/Ho_Chi_Minh',
      '--revenue-share-bps',
      '1',
    ]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^already_exists/m);

    const merchant = await admin(['onboard-merchant', '--name', 'CLI Shop', '--fee-bps', '250']);
    expect(merchant.code, merchant.stderr).toBe(0);
    const shop = JSON.parse(merchant.stdout) as { id: string };
    const read = await h.http.get(`/v1/admin/merchants/${shop.id}`).set(bearer(key.key));
    expect(read.body).toMatchObject({ name: 'CLI Shop', fee_bps: 250, status: 'active' });
    const trail = await h.http
      .get('/v1/admin/audit-events')
      .query({ object_id: shop.id })
      .set(bearer(key.key));
    expect(trail.body.data).toEqual([
      expect.objectContaining({
        action: 'merchant.created',
        actor: expect.objectContaining({ type: 'system', id: 'admin-cli' }),
      }),
    ]);
  });

  it('refuses missing or out-of-range options with the usage (exit 2) and bad values with the code (exit 1)', async () => {
    const missing = await admin(['onboard-merchant', '--name', 'No fee']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--fee-bps is required');
    const range = await admin(['onboard-merchant', '--name', 'Greedy', '--fee-bps', '10001']);
    expect(range.code).toBe(2);
    expect(range.stderr).toContain('from 0 to 10000');
    const zone = await admin([
      'onboard-carrier',
      '--code',
      `cli-${randomSuffix()}`,
      '--name',
      'Nowhere',
      '--currency',
      'VND',
      '--timezone',
      'Mars/Olympus',
      '--revenue-share-bps',
      '1',
    ]);
    expect(zone.code).toBe(1);
    expect(zone.stderr).toMatch(/^validation_failed \(timezone\)/m);
  });

  it('verify-ledger prints the verification and exits 1 once the books do not balance', async () => {
    const db = await freshDatabase();
    try {
      const ok = await admin(['verify-ledger'], db.url);
      expect(ok.code, ok.stderr).toBe(0);
      expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, unbalanced_transactions: [] });

      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      await client.query(
        `INSERT INTO ledger_accounts (id, kind, owner_id, currency, hot, posted)
         VALUES ('acc_cli', 'gateway_fees', 'gateway', 'VND', false, 5)`,
      );
      await client.query(
        `INSERT INTO journal_transactions (id, kind, reference_id) VALUES ('txn_cli', 'adjustment', 'x')`,
      );
      await client.query(
        `INSERT INTO journal_entries (transaction_id, account_id, amount, currency)
         VALUES ('txn_cli', 'acc_cli', 5, 'VND')`,
      );
      await client.end();
      const bad = await admin(['verify-ledger'], db.url);
      expect(bad.code).toBe(1);
      const verdict = JSON.parse(bad.stdout) as { ok: boolean; unbalanced_transactions: unknown[] };
      expect(verdict.ok).toBe(false);
      expect(verdict.unbalanced_transactions).toEqual([
        { transaction_id: 'txn_cli', currency: 'VND', sum: '5' },
      ]);
    } finally {
      await db.drop();
    }
  });
});
