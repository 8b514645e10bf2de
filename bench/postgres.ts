import pg from 'pg';

/** The same server and credentials as `baseUrl`, another database. */
export function databaseUrl(baseUrl: string, database: string): string {
  const url = new URL(baseUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function onMaintenance<T>(baseUrl: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: baseUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const NAME = /^[a-z0-9_]{1,63}$/;

export async function createDatabase(baseUrl: string, name: string): Promise<string> {
  if (!NAME.test(name)) throw new Error(`Refusing database name ${name}.`);
  await onMaintenance(baseUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  return databaseUrl(baseUrl, name);
}

/** Drops a bench database even if something is still connected to it. */
export async function dropDatabase(baseUrl: string, name: string): Promise<void> {
  if (!NAME.test(name)) throw new Error(`Refusing database name ${name}.`);
  await onMaintenance(baseUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
}

export async function serverSettings(baseUrl: string): Promise<Record<string, string>> {
  return onMaintenance(baseUrl, async (c) => {
    const { rows } = await c.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings
        WHERE name IN ('server_version', 'max_connections', 'synchronous_commit', 'fsync',
                       'shared_buffers', 'wal_sync_method', 'commit_delay')`,
    );
    return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  });
}

/** Runs one query on a database and closes the connection. */
export async function queryOnce<R extends pg.QueryResultRow>(
  url: string,
  text: string,
  values: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Process ids of the server backends connected to one database. */
export async function backendPids(baseUrl: string, database: string): Promise<number[]> {
  const rows = await queryOnce<{ pid: number }>(
    baseUrl,
    'SELECT pid FROM pg_stat_activity WHERE datname = $1',
    [database],
  );
  return rows.map((r) => r.pid);
}
