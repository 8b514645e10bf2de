import pg from 'pg';
import type { Logger } from '../../logger.js';
import { AUTH_CHANGES_CHANNEL, type AuthChange } from './api-keys-repo.js';

/**
 * Hears every instance's revocations and suspensions (PostgreSQL LISTEN on one dedicated
 * connection) so each instance evicts what it cached at once. PostgreSQL rather than Redis: the
 * notification is sent by the transaction that makes the change and delivered only when it
 * commits, so no instance hears of a change that did not happen or misses one that did while
 * the listener is up; and it works without Redis. When the connection drops, the listener
 * reconnects with a growing delay (the cache lifetime bounds a change meanwhile) and, once
 * listening again, asks for everything cached to be dropped: changes made while it was deaf
 * are not replayed.
 */
export interface AuthChangesListener {
  /** Connects and listens; resolves after the first attempt, whether or not it connected. */
  start(): Promise<void>;
  /** Stops listening and reconnecting; the process may exit afterwards. */
  stop(): Promise<void>;
  /** Whether LISTEN is in effect right now. */
  readonly listening: boolean;
}

export function createAuthChangesListener(deps: {
  connectionString: string;
  logger: Logger;
  onChange: (change: AuthChange) => void;
  /** Called each time listening (re)starts: whatever was cached may have changed unheard. */
  onResync: () => void;
  /** First reconnection delay, in ms; it grows with each failed attempt up to 5 s. */
  retryMs?: number;
  /** How often the connection is probed, so that a silent one is noticed and replaced. */
  heartbeatMs?: number;
}): AuthChangesListener {
  const { connectionString, logger, onChange, onResync } = deps;
  const retryMs = deps.retryMs ?? 250;
  const heartbeatMs = deps.heartbeatMs ?? 5000;
  let client: pg.Client | null = null;
  let stopped = false;
  let failures = 0;
  let retry: NodeJS.Timeout | undefined;
  let heartbeat: NodeJS.Timeout | undefined;

  function received(payload: string | undefined): void {
    try {
      const change = JSON.parse(payload ?? '') as Partial<AuthChange>;
      if (
        (change.kind === 'api_key' || change.kind === 'operator') &&
        typeof change.id === 'string'
      )
        onChange({ kind: change.kind, id: change.id });
    } catch {
      logger.warn('unreadable auth change notification');
    }
  }

  function lost(c: pg.Client, err?: Error): void {
    if (client !== c) return;
    client = null;
    clearInterval(heartbeat);
    c.end().catch(() => undefined);
    if (!stopped) {
      logger.warn({ err: err?.message }, 'auth change listener lost its connection; reconnecting');
      scheduleConnect();
    }
  }

  function scheduleConnect(): void {
    if (stopped || retry !== undefined) return;
    failures += 1;
    retry = setTimeout(
      () => {
        retry = undefined;
        void connect();
      },
      Math.min(retryMs * failures, 5000),
    );
    retry.unref();
  }

  async function connect(): Promise<void> {
    const c = new pg.Client({
      connectionString,
      application_name: 'dcb-auth-changes',
      keepAlive: true,
      connectionTimeoutMillis: 2000,
      query_timeout: 2000,
    });
    c.on('error', (err: Error) => lost(c, err));
    c.on('end', () => lost(c));
    c.on('notification', (msg) => {
      if (msg.channel === AUTH_CHANGES_CHANNEL) received(msg.payload);
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${AUTH_CHANGES_CHANNEL}`);
    } catch (err) {
      c.end().catch(() => undefined);
      logger.debug({ err: (err as Error).message }, 'auth change listener could not connect');
      scheduleConnect();
      return;
    }
    if (stopped) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    failures = 0;
    onResync();
    heartbeat = setInterval(() => {
      c.query('SELECT 1').catch((err: Error) => lost(c, err));
    }, heartbeatMs);
    heartbeat.unref();
    logger.debug('auth change listener listening');
  }

  return {
    get listening() {
      return client !== null;
    },
    start: () => connect(),
    async stop() {
      stopped = true;
      clearTimeout(retry);
      clearInterval(heartbeat);
      const c = client;
      client = null;
      if (c) await c.end().catch(() => undefined);
    },
  };
}
