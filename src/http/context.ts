export type Role = 'merchant' | 'carrier' | 'admin' | 'auditor';

/** Who is calling: resolved from the API key by the auth middleware. */
export interface AuthContext {
  /** The API key's id; for a console session, the session's id (it names its rate-limit bucket). */
  keyId: string;
  role: Role;
  /**
   * The merchant's or carrier's id; for admin and auditor keys, the key id itself; for an admin's
   * or auditor's console session, the operator's id (so idempotency keys belong to the person).
   */
  ownerId: string;
  /** The person acting: the operator a personal key or a console session belongs to; null for machine keys. */
  operatorId: string | null;
  /** The console session the request came with; absent for API keys. */
  sessionId?: string;
}

/** Who did something, as recorded in audit events. */
export interface Actor {
  /** 'anonymous': someone not (yet) known, such as a sign-in with an unknown email. */
  type: Role | 'system' | 'anonymous';
  id: string | null;
  apiKeyId: string | null;
  /** The person who acted (SPEC §9.2); absent or null when a machine key or a worker did. */
  operatorId?: string | null;
  ip: string | null;
  requestId: string | null;
}

export const SYSTEM_ACTOR = (worker: string): Actor => ({
  type: 'system',
  id: worker,
  apiKeyId: null,
  ip: null,
  requestId: null,
});

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Request {
      requestId: string;
      auth?: AuthContext;
    }
  }
}
