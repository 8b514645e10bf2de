import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { OPENAPI_PATH } from '../../../src/paths.js';

export type Role = 'merchant' | 'carrier' | 'admin' | 'auditor';

export interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  enum?: unknown[];
  items?: JsonSchema;
  nullable?: boolean;
  $ref?: string;
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
  tag: 'admin' | 'merchant' | 'carrier';
  parameters: Parameter[];
  body?: { required: boolean; contentTypes: string[]; schema?: JsonSchema };
  /** Sends Idempotency-Key. */
  idempotent: boolean;
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
    const out: JsonSchema = { ...s };
    if (s.properties) {
      out.properties = Object.fromEntries(
        Object.entries(s.properties).map(([k, v]) => [k, deep(v)]),
      );
    }
    if (s.items) out.items = deep(s.items);
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
        tag: op.tags[0] as Operation['tag'],
        parameters,
        body: content
          ? {
              required: op.requestBody?.required ?? false,
              contentTypes: Object.keys(content),
              schema: json ? deep(json) : undefined,
            }
          : undefined,
        idempotent: parameters.some((p) => p.name === 'Idempotency-Key'),
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
  return [op.tag];
}
