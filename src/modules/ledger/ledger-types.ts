export type AccountKind =
  | 'subscriber'
  | 'merchant_payable'
  | 'carrier_share'
  | 'gateway_fees'
  | 'carrier_funding'
  /** Suspense: the counter-leg of manual adjustments, one per currency. */
  | 'adjustments';
export type JournalKind = 'topup' | 'capture' | 'refund' | 'adjustment' | 'settlement' | 'port_out';

/** Accounts credited by every charge: written append-only and rolled up in batches. */
export const HOT_KINDS: ReadonlySet<AccountKind> = new Set([
  'merchant_payable',
  'carrier_share',
  'gateway_fees',
  'carrier_funding',
]);

export const GATEWAY_OWNER = 'gateway';

export interface AccountRef {
  id: string;
  hot: boolean;
}

/** One side of a journal transaction: a signed amount (positive raises the account's balance). */
export interface Leg {
  account: AccountRef;
  amount: bigint;
}

export interface JournalInput {
  id: string;
  kind: JournalKind;
  referenceId: string;
  currency: string;
  legs: Leg[];
}

/**
 * A journal transaction whose only row-balance leg is a decrease: the debit is applied with its
 * floor check and the transaction posted in one statement (the one-step charge, see
 * charges-repo executeOneStepCharge), where LedgerService.post takes one statement per row leg
 * and another for the journal. Made by prepareDebitJournal.
 */
export interface DebitJournal extends JournalInput {
  debit: { accountId: string; amount: bigint };
}

export interface AccountBalance {
  id: string;
  kind: AccountKind;
  owner_id: string;
  currency: string;
  posted: bigint;
  pending: bigint;
  available: bigint;
}
