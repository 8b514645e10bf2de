import type { LoadScenario } from './config.js';

/** What the seed created, handed to the load generator in a file. */
export interface Fixtures {
  baseUrl: string;
  runId: string;
  currency: string;
  amount: string;
  merchants: { id: string; key: string }[];
  msisdns: string[];
}

export interface PlannedCharge {
  merchant: number;
  subscriber: number;
  key: string;
  body: string;
}

// A prime stride walks every subscriber before repeating one (when it does not divide the count).
const STRIDE = 7919;

/**
 * The n-th charge of a scenario, derived from n alone: a replay of spread charge n rebuilds
 * exactly the key and body that charge was sent with.
 */
export function plannedCharge(
  f: Fixtures,
  scenario: Exclude<LoadScenario, 'replay'>,
  n: number,
): PlannedCharge {
  const merchant = scenario === 'hot' ? 0 : n % f.merchants.length;
  const subscriber = (n * STRIDE) % f.msisdns.length;
  const body = JSON.stringify({
    msisdn: f.msisdns[subscriber],
    amount: f.amount,
    currency: f.currency,
    description: 'bench charge',
  });
  return { merchant, subscriber, key: `bench-${f.runId}-${scenario}-${n}`, body };
}

/** The subscriber numbers a run seeds: +8490 followed by seven digits. */
export function benchMsisdn(i: number): string {
  return `+8490${String(i).padStart(7, '0')}`;
}
