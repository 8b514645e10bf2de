import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { rolesForArea } from '../../../src/http/auth.js';
import { OPENAPI_PATH } from '../../../src/paths.js';

export const ROLES = ['merchant', 'carrier', 'admin', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  items?: JsonSchema;
  nullable?: boolean;
  $ref?: string;
  /** The component a resolved schema came from (`Amount`, `Msisdn`, …), kept for generators. */
  refName?: string;
  [k: string]: unknown;
}

export interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required: boolean;
  schema: JsonSchema;
}

/** One method of one path of openapi.yaml, with its references resolved. */
export interface Operation {
  id: string;
  method: string;
  /** The template, e.g. /v1/charges/{id}/capture. */
  path: string;
  /** The first tag: `admin`, `merchant`, `carrier`, or one a later route brings. */
  tag: string;
  parameters: Parameter[];
  body?: { required: boolean; contentTypes: string[]; schema?: JsonSchema };
  /** Sends Idempotency-Key. */
  idempotent: boolean;
  /** Media types of its 2xx answers (e.g. `text/csv` where `Accept` chooses CSV). */
  produces: string[];
}

type Doc = {
  paths: Record<string, Record<string, unknown>>;
  components: Record<string, Record<string, unknown>>;
};

function resolver(doc: Doc) {
  const resolve = <T>(node: T): T => {
    const ref = (node as { $ref?: string } | undefined)?.$ref;
    if (!ref) return node;
    const [, section, name] = /^#\/components\/([^/]+)\/(.+)$/.exec(ref) ?? [];
    const target = doc.components[section!]?.[name!];
    if (!target) throw new Error(`unresolvable $ref ${ref}`);
    return resolve(target as T);
  };
  /** Resolves every $ref inside a schema (the contract has no recursive schemas). */
  const deep = (schema: JsonSchema): JsonSchema => {
    const s = resolve(schema);
    const refName = /^#\/components\/schemas\/(.+)$/.exec(schema.$ref ?? '')?.[1];
    const out: JsonSchema = { ...s, ...(refName ? { refName } : {}) };
    if (s.properties) {
      out.properties = Object.fromEntries(
        Object.entries(s.properties).map(([k, v]) => [k, deep(v)]),
      );
    }
    if (s.items) out.items = deep(s.items);
    if (typeof s.additionalProperties === 'object' && s.additionalProperties !== null) {
      out.additionalProperties = deep(s.additionalProperties as JsonSchema);
    }
    return out;
  };
  return { resolve, deep };
}

/** Every operation the contract describes. */
export function contractOperations(): Operation[] {
  const doc = parse(readFileSync(OPENAPI_PATH, 'utf8')) as Doc;
  const { resolve, deep } = resolver(doc);
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    const shared = (item.parameters as unknown[] | undefined) ?? [];
    for (const [method, raw] of Object.entries(item)) {
      if (!['get', 'post', 'put', 'patch', 'delete'].includes(method)) continue;
      const op = raw as {
        operationId: string;
        tags: string[];
        parameters?: unknown[];
        requestBody?: { required?: boolean; content: Record<string, { schema?: JsonSchema }> };
        responses?: Record<string, { content?: Record<string, unknown> }>;
      };
      // Console sign-in takes no API key and audits its failures by design: those operations
      // have their own hostile-input and abuse tests (test/session.security.test.ts).
      if (op.tags[0] === 'session') continue;
      const parameters = [...shared, ...(op.parameters ?? [])].map((p) => {
        const r = resolve(p) as Parameter & { schema: JsonSchema };
        return { ...r, required: r.required ?? false, schema: deep(r.schema ?? {}) };
      });
      const content = op.requestBody?.content;
      const json = content?.['application/json']?.schema;
      out.push({
        id: op.operationId,
        method: method.toUpperCase(),
        path,
        tag: op.tags[0] ?? '',
        parameters,
        body: content
          ? {
              required: op.requestBody?.required ?? false,
              contentTypes: Object.keys(content),
              schema: json ? deep(json) : undefined,
            }
          : undefined,
        idempotent: parameters.some((p) => p.name === 'Idempotency-Key'),
        produces: [
          ...new Set(
            Object.entries(op.responses ?? {})
              .filter(([status]) => status.startsWith('2'))
              .flatMap(([, r]) => Object.keys(resolve(r).content ?? {})),
          ),
        ],
      });
    }
  }
  return out;
}

/**
 * Who may call an operation (SPEC §3, §7): a tag's role; admin reads are open to auditors too.
 * The sandbox SMS inbox is readable with merchant, carrier and admin keys (each sees its own).
 */
export function allowedRoles(op: Operation): Role[] {
  if (op.path === '/v1/sandbox/sms') return ['merchant', 'carrier', 'admin'];
  if (op.tag === 'admin') return op.method === 'GET' ? ['admin', 'auditor'] : ['admin'];
  if ((ROLES as readonly string[]).includes(op.tag)) return [op.tag as Role];
  // An operation under a tag of its own: the role gate's areas decide (SPEC §3).
  return rolesForArea(op.method, op.path) ?? [...ROLES];
}

/**
 * The kind of object an operation's path parameter names, from the path (`/v1/charges/{id}` →
 * `charge`); undefined for a route this list does not know yet, which is then fuzzed with ids of
 * the right shape that name nothing.
 */
export function objectKind(op: Operation, param: string): string | undefined {
  if (param === 'msisdn') return 'msisdn';
  const rules: [RegExp, string][] = [
    [/^\/v1\/admin\/carriers\//, 'carrier'],
    [/^\/v1\/admin\/merchants\//, 'merchant'],
    [/^\/v1\/admin\/api-keys\//, 'apiKey'],
    [/^\/v1\/(admin|carrier)\/settlements\//, 'settlement'],
    [/^\/v1\/carrier\/reconciliations\//, 'reconciliation'],
    [/^\/v1\/charges\//, 'charge'],
    [/^\/v1\/refunds\//, 'refund'],
    [/^\/v1\/events\//, 'event'],
    [/^\/v1\/admin\/adjustments\//, 'adjustment'],
    [/^\/v1\/admin\/operators\//, 'operator'],
    [/^\/v1\/(carrier\/port-outs|admin\/ports)\//, 'port'],
  ];
  return rules.find(([re]) => re.test(op.path))?.[1];
}
