import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import type { Worker } from '../../workers/workers.js';
import { eventHash } from './audit-chain.js';
import * as repo from './audit-repo.js';

/**
 * Seals audit events into the hash chain, one batch per pass. Writers never wait for it: they
 * only INSERT (a trigger queues each event in audit_unsealed), and the sealer takes committed
 * events off the queue afterwards and appends their seals to audit_seals; an event row is never
 * updated. Sealers on several instances are serialised by a transaction-level advisory lock; one
 * that finds it taken does nothing.
 *
 * Order: a batch is taken by (occurred_at, id), but a transaction that commits late can add an
 * event older than ones already sealed. It is sealed in a later batch with a higher seq: the
 * chain's order is seq, the order in which events became visible to the sealer.
 */
export function createAuditSealer(deps: { pool: Pool; batchSize: number }): Worker {
  const { pool, batchSize } = deps;
  return {
    name: 'audit-sealer',
    // One chain-head update and one transaction per pass: fewer, fuller batches under load.
    batchSize,
    runOnce: () =>
      withTransaction(pool, async (tx) => {
        if (!(await repo.tryLockSealer(tx))) return 0;
        const events = await repo.takeUnsealedEvents(tx, batchSize);
        if (events.length === 0) return 0;
        const head = await repo.readChainHead(tx);
        let seq = Number(head.seq);
        let prevHash = head.hash;
        const seals = events.map((event) => {
          const hash = eventHash(prevHash, event);
          const seal = { id: event.id, seq: ++seq, prevHash, hash };
          prevHash = hash;
          return seal;
        });
        await repo.insertSeals(tx, seals);
        const last = seals[seals.length - 1]!;
        await repo.advanceChainHead(tx, { seq: last.seq, eventId: last.id, hash: last.hash });
        return seals.length;
      }),
  };
}
