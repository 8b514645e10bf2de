import { toPage, type Page } from '../../http/pagination.js';
import type { Pool } from '../../db/pool.js';
import { AppError } from '../../errors.js';
import { eventHash, GENESIS_HASH } from './audit-chain.js';
import * as repo from './audit-repo.js';
import {
  toAuditEventView,
  type AuditEventFilter,
  type AuditEventView,
  type ChainFault,
  type ChainVerification,
} from './audit-types.js';

export interface AuditService {
  listEvents(
    filter: AuditEventFilter,
    page: { limit: number; startingAfter?: string },
  ): Promise<Page<AuditEventView>>;
  /** Re-hashes the sealed chain in seq order, a page at a time, up to the head it starts from. */
  verifyChain(): Promise<ChainVerification>;
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:[Zz]|[+-](\d{2}):(\d{2}))$/;

/**
 * The contract checks the shape of a date-time; this also refuses impossible ones such as
 * 2025-02-30, which PostgreSQL would answer with an error instead of rows.
 */
export function assertRfc3339(value: string | undefined, param: string): void {
  if (value === undefined) return;
  const m = RFC3339.exec(value);
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0, offH = 0, offM = 0] = (
    m?.slice(1) ?? []
  ).map((part) => Number(part ?? 0));
  const date = new Date(Date.UTC(year, month - 1, day));
  const real =
    m !== null &&
    date.getUTCFullYear() === year &&
    date.getUTCMonth() === month - 1 &&
    date.getUTCDate() === day &&
    hour <= 23 &&
    minute <= 59 &&
    second <= 59 &&
    offH <= 23 &&
    offM <= 59;
  if (!real) {
    throw new AppError('validation_failed', `${param} must be an RFC 3339 date-time.`, { param });
  }
}

export function createAuditService(deps: { pool: Pool; verifyPageSize?: number }): AuditService {
  const { pool } = deps;
  const pageSize = deps.verifyPageSize ?? 1000;

  return {
    async listEvents(filter, page) {
      assertRfc3339(filter.createdGte, 'created_gte');
      assertRfc3339(filter.createdLt, 'created_lt');
      let after: { id: string; occurred_at: string } | undefined;
      if (page.startingAfter !== undefined) {
        after = await repo.findEventPosition(pool, page.startingAfter);
        if (!after) {
          throw new AppError('invalid_cursor', `No audit event ${page.startingAfter}.`, {
            param: 'starting_after',
          });
        }
      }
      const rows = await repo.listAuditEvents(pool, filter, { limit: page.limit, after });
      return toPage(rows, page.limit, toAuditEventView);
    },

    async verifyChain() {
      // One snapshot for the head and the unsealed count; events sealed while the pages are
      // read lie beyond this head and are left to the next verification.
      const state = await repo.readChainState(pool);
      const head = { seq: Number(state.seq), id: state.event_id, hash: state.hash };
      const verdict = (
        checked: number,
        firstBad?: ChainVerification['first_bad'],
      ): ChainVerification => ({
        ok: firstBad === undefined,
        checked,
        ...(firstBad ? { first_bad: firstBad } : {}),
        unsealed: state.unsealed,
        head,
      });

      let checked = 0;
      let expectedSeq = 1;
      let prevHash = GENESIS_HASH;
      while (expectedSeq <= head.seq) {
        const links = await repo.listChainPage(pool, expectedSeq - 1, head.seq, pageSize);
        if (links.length === 0) break;
        for (const link of links) {
          checked++;
          const seq = Number(link.seq);
          const fault: ChainFault | undefined =
            seq !== expectedSeq
              ? 'seq_gap'
              : link.event === null
                ? 'missing'
                : link.prev_hash !== prevHash
                  ? 'prev_hash_mismatch'
                  : link.hash !== eventHash(prevHash, link.event)
                    ? 'hash_mismatch'
                    : undefined;
          if (fault) return verdict(checked, { seq, id: link.event_id, reason: fault });
          prevHash = link.hash;
          expectedSeq++;
        }
      }
      if (expectedSeq <= head.seq) {
        // Seals are gone from the tail: name the first missing seq (its id is known only for the
        // head's own).
        const id = expectedSeq === head.seq ? head.id : null;
        return verdict(checked, { seq: expectedSeq, id, reason: 'missing' });
      }
      if (prevHash !== head.hash) {
        return verdict(checked, { seq: head.seq, id: head.id, reason: 'head_mismatch' });
      }
      const unchained = await repo.findUnchainedEvent(pool);
      if (unchained !== undefined) {
        return verdict(checked, { seq: null, id: unchained, reason: 'unchained' });
      }
      return verdict(checked);
    },
  };
}
