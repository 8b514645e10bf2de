import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError, describeConfig, loadConfig } from '../src/config.js';

describe('config', () => {
  it('defaults to sandbox on an embedded database when nothing is configured', () => {
    const config = loadConfig({});
    expect(config.DATABASE_URL).toBeUndefined();
    expect(config.SANDBOX).toBe(true);
    expect(config.PORT).toBe(8080);
    expect(config.IDEMPOTENCY_RETENTION_HOURS).toBe(72);
  });

  it('turns sandbox off by default when a database is configured', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/gw' });
    expect(config.SANDBOX).toBe(false);
  });

  it('rejects invalid values and names every wrong variable', () => {
    let caught: unknown;
    try {
      loadConfig({
        PORT: 'eighty',
        DATABASE_URL: 'http://not-postgres',
        LOG_LEVEL: 'loud',
        SANDBOX: 'maybe',
      });
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const message = (caught as ConfigError).message;
    for (const name of ['PORT', 'DATABASE_URL', 'LOG_LEVEL', 'SANDBOX'])
      expect(message).toContain(name);
  });

  it('refuses an idempotency retention below 72 hours', () => {
    expect(() => loadConfig({ IDEMPOTENCY_RETENTION_HOURS: '24' })).toThrow(
      /IDEMPOTENCY_RETENTION_HOURS/,
    );
  });

  it('every variable is documented in the README configuration table', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const missing = describeConfig()
      .map((v) => v.name)
      .filter((name) => !readme.includes(`| \`${name}\` |`));
    expect(missing).toEqual([]);
  });
});
