import { toPage, type Page } from '../../http/pagination.js';
import type { Pool } from '../../db/pool.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as subscribersRepo from '../subscribers/subscribers-repo.js';
import * as chargesRepo from '../charges/charges-repo.js';
import { chargeParties, refundLegs } from '../charges/charges-shared.js';
import { chargeSplit } from '../charges/charges-types.js';
import { insertEvent } from '../events/events-repo.js';
import type {
  IdempotencyService,
  IdempotentRequest,
  StoredOutcome,
} from '../idempotency/idempotency-service.js';
import type { LedgerService } from '../ledger/ledger-service.js';
import { formatAmount, parseAmount, refundSplit } from '../money/money.js';
import * as repo from './refunds-repo.js';

export interface RefundView {
  id: string;
  object: 'refund';
  charge: string;
  status: 'succeeded';
  amount: string;
  currency: string;
  reason: string | null;
  split: { carrier_share: string; gateway_fee: string; merchant_net: string };
  created_at: string;
}

export function toRefundView(r: repo.RefundRow): RefundView {
  const fmt = (v: string) => formatAmount(BigInt(v), r.currency);
  return {
    id: r.id,
    object: 'refund',
    charge: r.charge_id,
    status: r.status,
    amount: fmt(r.amount),
    currency: r.currency,
    reason: r.reason,
    split: {
      carrier_share: fmt(r.carrier_share),
      gateway_fee: fmt(r.gateway_fee),
      merchant_net: fmt(r.merchant_net),
    },
    created_at: r.created_at.toISOString(),
  };
}

export interface RefundsService {
  createRefund(
    actor: Actor,
    merchantId: string,
    chargeId: string,
    input: { amount?: string; reason?: string },
    idem: IdempotentRequest,
  ): Promise<StoredOutcome>;
  getRefund(merchantId: string, refundId: string): Promise<RefundView>;
  listChargeRefunds(
    merchantId: string,
    chargeId: string,
    page: { limit: number; startingAfter?: string },
  ): Promise<Page<RefundView>>;
}

export function createRefundsService(deps: {
  pool: Pool;
  ledger: LedgerService;
  idempotency: IdempotencyService;
}): RefundsService {
  const { pool, ledger, idempotency } = deps;

  return {
    createRefund: (actor, merchantId, chargeId, input, idem) =>
      idempotency.run(idem, async (tx) => {
        // The charge row lock serialises refunds of one charge, so their sum never passes the captured amount.
        const charge = await chargesRepo.findCharge(tx, chargeId, { merchantId, forUpdate: true });
        if (!charge) throw new AppError('not_found', `No charge ${chargeId}.`);
        if (charge.status !== 'succeeded') {
          throw new AppError(
            'invalid_state',
            `Only succeeded charges can be refunded; this one is ${charge.status}.`,
            {
              extra: { charge_id: charge.id, current_status: charge.status },
            },
          );
        }
        const captured = BigInt(charge.amount_captured);
        const refunded = BigInt(charge.amount_refunded);
        const remaining = captured - refunded;
        const amount =
          input.amount === undefined ? remaining : parseAmount(input.amount, charge.currency);
        if (amount <= 0n || amount > remaining) {
          throw new AppError(
            'refund_exceeds_charge',
            `At most ${formatAmount(remaining, charge.currency)} ${charge.currency} remains refundable.`,
            {
              param: 'amount',
              extra: { charge_id: charge.id, refundable: formatAmount(remaining, charge.currency) },
            },
          );
        }
        const split = chargeSplit(charge)!;
        const parts = refundSplit(
          split,
          captured,
          refunded,
          {
            carrierShare: BigInt(charge.refunded_carrier_share),
            gatewayFee: BigInt(charge.refunded_gateway_fee),
            merchantNet: BigInt(charge.refunded_merchant_net),
          },
          amount,
        );
        const parties = await chargeParties(
          ledger,
          charge.merchant_id,
          charge.carrier_id,
          charge.currency,
        );
        const subscriber = await chargesRepo.findChargeSubscriber(tx, charge.subscriber_id);
        // Under the account lock a port completion holds, whether the number has left: a prepaid
        // record ported out has handed its balance to its carrier, and so does this refund, rather
        // than leave money on a record nobody can spend. Its carrier's legs are reversed either way.
        const held = await subscribersRepo.lockHeldSubscriber(tx, {
          id: charge.subscriber_id,
          account_id: subscriber.account_id,
        });
        const credited =
          held || subscriber.funding_type !== 'prepaid'
            ? { id: subscriber.account_id, hot: false }
            : await ledger.partyAccount('carrier_funding', charge.carrier_id, charge.currency);
        const id = newId('re');
        await ledger.post(tx, {
          kind: 'refund',
          referenceId: id,
          currency: charge.currency,
          legs: refundLegs(credited, parties, amount, parts),
        });
        const refund = await repo.insertRefund(tx, {
          id,
          chargeId: charge.id,
          merchantId: charge.merchant_id,
          amount,
          currency: charge.currency,
          reason: input.reason ?? null,
          ...parts,
        });
        await chargesRepo.addChargeRefund(tx, charge.id, { amount, ...parts });
        const view = toRefundView(refund);
        await insertAuditEvent(tx, actor, {
          action: 'refund.succeeded',
          objectType: 'refund',
          objectId: id,
          summary: {
            charge_id: charge.id,
            amount: amount.toString(),
            currency: charge.currency,
            reason: input.reason ?? null,
          },
        });
        await insertEvent(tx, {
          merchantId: charge.merchant_id,
          type: 'refund.succeeded',
          subjectId: id,
          data: view as unknown as Record<string, unknown>,
        });
        return { status: 201, body: view };
      }),

    async getRefund(merchantId, refundId) {
      const row = await repo.findRefund(pool, refundId, merchantId);
      if (!row) throw new AppError('not_found', `No refund ${refundId}.`);
      return toRefundView(row);
    },

    async listChargeRefunds(merchantId, chargeId, page) {
      const charge = await chargesRepo.findCharge(pool, chargeId, { merchantId });
      if (!charge) throw new AppError('not_found', `No charge ${chargeId}.`);
      const rows = await repo.listChargeRefunds(pool, { chargeId, merchantId, ...page });
      return toPage(rows, page.limit, toRefundView);
    },
  };
}
