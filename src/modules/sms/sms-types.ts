/** `expired`: not delivered before its code expired (or its charge stopped waiting), so never sent. */
export type SmsStatus = 'pending' | 'delivering' | 'delivered' | 'failed' | 'expired';

export interface SmsRow {
  id: string;
  charge_id: string | null;
  carrier_id: string;
  msisdn: string;
  message: string | null;
  status: SmsStatus;
  attempts: number;
  last_status: number | null;
  last_error: string | null;
  expires_at: Date;
  created_at: Date;
  delivered_at: Date | null;
}

/** A message as the sandbox SMS inbox shows it: in sandbox there are no real subscribers. */
export interface SandboxSmsView {
  id: string;
  object: 'sms';
  msisdn: string;
  carrier: string;
  charge_id: string | null;
  message: string;
  created_at: string;
  delivered_at: string;
}

export function toSandboxSmsView(row: SmsRow & { carrier_code: string }): SandboxSmsView {
  return {
    id: row.id,
    object: 'sms',
    msisdn: row.msisdn,
    carrier: row.carrier_code,
    charge_id: row.charge_id,
    message: row.message ?? '',
    created_at: row.created_at.toISOString(),
    delivered_at: (row.delivered_at ?? row.created_at).toISOString(),
  };
}
