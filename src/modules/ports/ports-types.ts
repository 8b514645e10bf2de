import type { FundingType } from '../carriers/carriers-types.js';

/**
 * pending ─accept─► accepted ─complete─► completed; pending ─reject─► rejected;
 * pending | accepted ─cancel─► cancelled. An admin may complete a pending port too.
 */
export type PortStatus = 'pending' | 'accepted' | 'rejected' | 'cancelled' | 'completed';

export const OPEN_PORT_STATUSES: readonly PortStatus[] = ['pending', 'accepted'];

export interface PortRow {
  id: string;
  msisdn: string;
  gaining_carrier_id: string;
  losing_carrier_id: string;
  losing_subscriber_id: string;
  gaining_subscriber_id: string | null;
  funding_type: FundingType;
  status: PortStatus;
  effective_at: Date;
  rejection_reason: string | null;
  returned_balance: string | null;
  cancelled_charges: number | null;
  created_at: Date;
  updated_at: Date;
  accepted_at: Date | null;
  closed_at: Date | null;
}

export type PortEventType =
  'port.requested' | 'port.accepted' | 'port.rejected' | 'port.cancelled' | 'port.completed';

/** Who looks at a port: what each may see differs (see toPortView). */
export type PortViewer = 'gaining' | 'losing' | 'admin';

export interface PortView {
  id: string;
  object: 'port';
  msisdn: string;
  status: PortStatus;
  funding_type: FundingType;
  gaining_carrier: string;
  losing_carrier: string | null;
  effective_at: string;
  rejection_reason: string | null;
  /** The prepaid balance handed back to the losing carrier (minor units as a decimal string). */
  returned_balance: string | null;
  cancelled_charges: number | null;
  created_at: string;
  updated_at: string;
  accepted_at: string | null;
  closed_at: string | null;
}

/**
 * The port as `viewer` sees it. The gaining carrier learns who the losing carrier is only once
 * that carrier accepted (or the port completed): opening a port-in must not become a way to ask
 * who holds a number, which a PUT does not tell either. What the losing carrier got back is the
 * losing carrier's and the admin's business.
 */
export function toPortView(
  row: PortRow,
  viewer: PortViewer,
  formatMinor: (minor: bigint) => string,
): PortView {
  const revealLosing =
    viewer !== 'gaining' || row.accepted_at !== null || row.status === 'completed';
  return {
    id: row.id,
    object: 'port',
    msisdn: row.msisdn,
    status: row.status,
    funding_type: row.funding_type,
    gaining_carrier: row.gaining_carrier_id,
    losing_carrier: revealLosing ? row.losing_carrier_id : null,
    effective_at: row.effective_at.toISOString(),
    rejection_reason: row.rejection_reason,
    returned_balance:
      viewer === 'gaining' || row.returned_balance === null
        ? null
        : formatMinor(BigInt(row.returned_balance)),
    cancelled_charges: viewer === 'gaining' ? null : row.cancelled_charges,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    accepted_at: row.accepted_at?.toISOString() ?? null,
    closed_at: row.closed_at?.toISOString() ?? null,
  };
}
