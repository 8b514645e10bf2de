import { toPage, type Page } from '../../http/pagination.js';
import type { Pool } from '../../db/pool.js';
import { withTransaction } from '../../db/transaction.js';
import { pgCode } from '../../db/errors.js';
import { AppError } from '../../errors.js';
import type { Actor } from '../../http/context.js';
import { newId } from '../../lib/ids.js';
import { assertOutboundUrl, type OutboundTarget } from '../../lib/outbound-url.js';
import { currencyExponent, parseAmount } from '../money/money.js';
import { insertAuditEvent } from '../audit/audit-repo.js';
import * as repo from './carriers-repo.js';
import {
  defaultLimits,
  FUNDING_TYPES,
  LIMIT_NAMES,
  toCarrierView,
  type CarrierView,
  type LimitColumn,
} from './carriers-types.js';

type LimitsInput = Partial<
  Record<'prepaid' | 'postpaid', Partial<Record<(typeof LIMIT_NAMES)[number], string | null>>>
>;

export interface CreateCarrierInput {
  code: string;
  name: string;
  currency: string;
  timezone: string;
  revenue_share_bps: number;
  limits?: LimitsInput;
  otp_threshold?: string | null;
  sms_url?: string | null;
}

export interface UpdateCarrierInput {
  name?: string;
  revenue_share_bps?: number;
  limits?: LimitsInput;
  otp_threshold?: string | null;
  sms_url?: string | null;
}

export interface CarriersService {
  createCarrier(actor: Actor, input: CreateCarrierInput): Promise<CarrierView>;
  getCarrier(id: string): Promise<CarrierView>;
  listCarriers(filter: {
    status?: string;
    limit: number;
    startingAfter?: string;
  }): Promise<Page<CarrierView>>;
  updateCarrier(actor: Actor, id: string, input: UpdateCarrierInput): Promise<CarrierView>;
  setCarrierStatus(actor: Actor, id: string, status: 'active' | 'suspended'): Promise<CarrierView>;
}

export function assertTimezone(timezone: string): void {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
  } catch {
    throw new AppError('validation_failed', `Unknown IANA time zone "${timezone}".`, {
      param: 'timezone',
    });
  }
}

function limitColumns(
  currency: string,
  limits: LimitsInput | undefined,
): Partial<Record<LimitColumn, string | null>> {
  const out: Partial<Record<LimitColumn, string | null>> = {};
  for (const funding of FUNDING_TYPES) {
    const given = limits?.[funding];
    if (!given) continue;
    for (const name of LIMIT_NAMES) {
      const value = given[name];
      if (value === undefined) continue;
      out[`${funding}_${name}`] =
        value === null
          ? null
          : parseAmount(value, currency, `limits.${funding}.${name}`).toString();
    }
  }
  return out;
}

export function createCarriersService(deps: {
  pool: Pool;
  /** Where an sms_url may lead. */
  smsTarget: OutboundTarget;
}): CarriersService {
  const { pool, smsTarget } = deps;

  /** Judged before any transaction: resolving the host must not hold a row lock. */
  async function smsUrl(raw: string | null | undefined): Promise<string | null | undefined> {
    return typeof raw === 'string' ? assertOutboundUrl(raw, smsTarget, 'sms_url') : raw;
  }

  async function getRow(id: string) {
    const row = await repo.findCarrier(pool, id);
    if (!row) throw new AppError('not_found', `No carrier ${id}.`);
    return row;
  }

  return {
    async createCarrier(actor, input) {
      currencyExponent(input.currency);
      assertTimezone(input.timezone);
      const defaults = defaultLimits(input.currency);
      const base: Record<LimitColumn, string | null> = {
        prepaid_per_transaction_max: null,
        prepaid_daily_max: null,
        prepaid_monthly_max: null,
        postpaid_per_transaction_max: null,
        postpaid_daily_max: null,
        postpaid_monthly_max: null,
      };
      for (const funding of FUNDING_TYPES) {
        for (const name of LIMIT_NAMES) {
          const v = defaults[funding][name];
          base[`${funding}_${name}`] = v === null ? null : v.toString();
        }
      }
      const limits = { ...base, ...limitColumns(input.currency, input.limits) };
      const otp =
        input.otp_threshold === undefined || input.otp_threshold === null
          ? null
          : parseAmount(input.otp_threshold, input.currency, 'otp_threshold').toString();
      const sms = await smsUrl(input.sms_url);
      try {
        return await withTransaction(pool, async (tx) => {
          const row = await repo.insertCarrier(tx, {
            id: newId('car'),
            code: input.code,
            name: input.name,
            currency: input.currency,
            timezone: input.timezone,
            revenue_share_bps: input.revenue_share_bps,
            ...limits,
            otp_threshold: otp,
            sms_url: sms ?? null,
          });
          await insertAuditEvent(tx, actor, {
            action: 'carrier.created',
            objectType: 'carrier',
            objectId: row.id,
            summary: {
              code: row.code,
              currency: row.currency,
              revenue_share_bps: row.revenue_share_bps,
            },
          });
          return toCarrierView(row);
        });
      } catch (err) {
        if (pgCode(err) === '23505') {
          throw new AppError('already_exists', `A carrier with code "${input.code}" exists.`, {
            param: 'code',
          });
        }
        throw err;
      }
    },

    async getCarrier(id) {
      return toCarrierView(await getRow(id));
    },

    async listCarriers(filter) {
      const rows = await repo.listCarriers(pool, filter);
      return toPage(rows, filter.limit, toCarrierView);
    },

    async updateCarrier(actor, id, input) {
      const sms = await smsUrl(input.sms_url);
      return withTransaction(pool, async (tx) => {
        const current = await repo.findCarrierForUpdate(tx, id);
        if (!current) throw new AppError('not_found', `No carrier ${id}.`);
        const changes: repo.CarrierChanges = {
          name: input.name,
          revenue_share_bps: input.revenue_share_bps,
          sms_url: sms,
          ...limitColumns(current.currency, input.limits),
        };
        if (input.otp_threshold !== undefined) {
          changes.otp_threshold =
            input.otp_threshold === null
              ? null
              : parseAmount(input.otp_threshold, current.currency, 'otp_threshold').toString();
        }
        const row = await repo.updateCarrier(tx, id, changes);
        await insertAuditEvent(tx, actor, {
          action: 'carrier.updated',
          objectType: 'carrier',
          objectId: id,
          summary: {
            changed: Object.keys(changes).filter(
              (k) => changes[k as keyof typeof changes] !== undefined,
            ),
          },
        });
        return toCarrierView(row);
      });
    },

    setCarrierStatus: (actor, id, status) =>
      withTransaction(pool, async (tx) => {
        const current = await repo.findCarrierForUpdate(tx, id);
        if (!current) throw new AppError('not_found', `No carrier ${id}.`);
        const row =
          current.status === status ? current : await repo.updateCarrier(tx, id, { status });
        if (current.status !== status) {
          await insertAuditEvent(tx, actor, {
            action: status === 'active' ? 'carrier.activated' : 'carrier.suspended',
            objectType: 'carrier',
            objectId: id,
            summary: { from: current.status, to: status },
          });
        }
        return toCarrierView(row);
      }),
  };
}
