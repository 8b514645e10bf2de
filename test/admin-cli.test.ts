import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { bearer, createHarness, type Harness } from './helpers/harness.js';

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
  });

  it('refuses to run without DATABASE_URL', async () => {
    const env = { ...process.env };
    delete env.DATABASE_URL;
    await expect(
      run('npx', ['tsx', 'src/cli/admin.ts', 'create-admin-key'], { env, timeout: 60_000 }),
    ).rejects.toMatchObject({ code: 2 });
  });
});
