import { randomUUID } from 'node:crypto';

/** One pass's claim on the rows it leased. */
export interface OutboxLease {
  /** Only the holder of this id may record an outcome on a leased row. */
  id: string;
  /** Date.now() just before the claim began. */
  claimedAt: number;
}

export interface OutboxPass<T> {
  /**
   * Locks due rows (FOR UPDATE SKIP LOCKED) and leases the ones to send, in one short
   * transaction. `handled` is what the pass reports: sent, plus any the claim settled itself.
   */
  claim(lease: OutboxLease): Promise<{ send: T[]; handled: number }>;
  /** Sends one row with no transaction open, then records the outcome if the lease still holds. */
  deliver(item: T, lease: OutboxLease): Promise<void>;
  /** `deliver` threw (its record failed): the row stays leased and is tried again after the lease. */
  onDeliverError(item: T, err: unknown): void;
}

/** A lease must outlast the send's timeout, with room to record the outcome. */
export function defaultLeaseMs(timeoutMs: number): number {
  return timeoutMs + 30_000;
}

/**
 * One outbox pass: claim, send everything claimed concurrently, record each. Returns how many
 * rows it handled.
 */
export async function runOutboxPass<T>(pass: OutboxPass<T>): Promise<number> {
  const lease: OutboxLease = { id: randomUUID(), claimedAt: Date.now() };
  const { send, handled } = await pass.claim(lease);
  const results = await Promise.allSettled(send.map((item) => pass.deliver(item, lease)));
  for (const [i, r] of results.entries()) {
    if (r.status === 'rejected') pass.onDeliverError(send[i]!, r.reason);
  }
  return handled;
}
