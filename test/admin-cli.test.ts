import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bearer, createHarness, randomSuffix, type Harness } from './helpers/harness.js';

const run = promisify(execFile);
let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

describe('admin CLI', () => {
  it('create-admin-key prints a working admin key alone on the last line', async () => {
    const { stdout } = await run('npx', ['tsx', 'src/cli/admin.ts', 'create-admin-key'], {
      env: { ...process.env, DATABASE_URL: inject('databaseUrl'), LOG_LEVEL: 'warn' },
      timeout: 60_000,
    });
    const key = stdout.trim().split('\n').at(-1)!;
    expect(key).toMatch(/^dcb_ak_[A-Za-z0-9_-]{43}$/);
    const res = await h.http.get('/v1/admin/merchants').set(bearer(key));
    expect(res.status).toBe(200);
    // Still a person's key: a bootstrap operator of its own.
    const { rows } = await h.c.pool.query<{ bootstrap: boolean }>(
      `SELECT o.bootstrap FROM api_keys k JOIN operators o ON o.id = k.operator_id
        WHERE k.key_hash = $1`,
      [createHash('sha256').update(key).digest()],
    );
    expect(rows).toEqual([{ bootstrap: true }]);
  });

  it('create-operator prints a one-time set-up link on the last line; create-admin-key --operator gives that person a key', async () => {
    const env = {
      ...process.env,
      DATABASE_URL: inject('databaseUrl'),
      LOG_LEVEL: 'warn',
      PUBLIC_BASE_URL: 'https://gateway.example',
    };
    const email = `root-${randomSuffix()}@example.test`;
    const made = await run(
      'npx',
      [
        'tsx',
        'src/cli/admin.ts',
        'create-operator',
        '--email',
        email,
        '--name',
        'Root Admin',
        '--role',
        'admin',
      ],
      { env, timeout: 60_000 },
    );
    const link = made.stdout.trim().split('\n').at(-1)!;
    const match = /^https:\/\/gateway\.example\/console\/setup#token=([A-Za-z0-9_-]{43})$/.exec(
      link,
    );
    expect(match, made.stdout).not.toBeNull();
    const { rows } = await h.c.pool.query<{ id: string; role: string; setup_token_hash: Buffer }>(
      'SELECT id, role, setup_token_hash FROM operators WHERE email = $1',
      [email],
    );
    expect(rows[0]!.role).toBe('admin');
    expect(rows[0]!.setup_token_hash).toEqual(createHash('sha256').update(match![1]!).digest());

    const keyed = await run(
      'npx',
      ['tsx', 'src/cli/admin.ts', 'create-admin-key', '--operator', email.toUpperCase()],
      { env, timeout: 60_000 },
    );
    const key = keyed.stdout.trim().split('\n').at(-1)!;
    const res = await h.http.get(`/v1/admin/operators/${rows[0]!.id}`).set(bearer(key));
    expect(res.status).toBe(200);
    const keys = await h.http
      .get('/v1/admin/api-keys')
      .query({ operator_id: rows[0]!.id })
      .set(bearer(key));
    expect(keys.body.data).toHaveLength(1);

    // A second person with the same address is refused, and says why.
    await expect(
      run('npx', ['tsx', 'src/cli/admin.ts', 'create-operator', '--email', email], {
        env,
        timeout: 60_000,
      }),
    ).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/already_exists/) });
  });

  it('refuses to run without DATABASE_URL', async () => {
    const env = { ...process.env };
    delete env.DATABASE_URL;
    await expect(
      run('npx', ['tsx', 'src/cli/admin.ts', 'create-admin-key'], { env, timeout: 60_000 }),
    ).rejects.toMatchObject({ code: 2 });
  });
});
