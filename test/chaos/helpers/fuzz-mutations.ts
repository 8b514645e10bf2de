import fc from 'fast-check';
import type { FuzzWorld } from './fuzz-world.js';
import {
  isAmountField,
  isUrlField,
  JSON_TYPE,
  validBase,
  wire,
  type Base,
  type WireRequest,
} from './fuzz-requests.js';
import { allowedRoles, ROLES, type JsonSchema, type Operation } from './openapi-operations.js';

/**
 * The hostile-input rules of SPEC §3 and §10 as mutations: each takes a valid request and breaks
 * exactly one rule, and says how the gateway must refuse it.
 */

export interface Expectation {
  /** Acceptable statuses (all refusals). */
  status: number[];
  /** Acceptable problem codes; any when absent. */
  code?: string[];
  /** The field the problem must name in `param` (dotted path, e.g. `account.owner_id`). */
  param?: string;
}

export interface Mutant {
  op: Operation;
  /** The rule broken, e.g. `string-control`, and how, e.g. `body.metadata.k U+0000`. */
  mutation: string;
  variant: string;
  request: WireRequest;
  expect: Expectation;
}

/** One field of a JSON body, found by walking the value along its schema. */
interface Field {
  path: string[];
  schema: JsonSchema;
  required: boolean;
  /** A member of a free-form map (`metadata`): its key is data too. */
  inMap: boolean;
}

function fieldsOf(value: unknown, schema: JsonSchema | undefined, path: string[] = []): Field[] {
  if (!schema || value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  const out: Field[] = [];
  const addl = schema.additionalProperties;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const declared = schema.properties?.[k];
    const s = declared ?? (typeof addl === 'object' && addl !== null ? (addl as JsonSchema) : {});
    const field: Field = {
      path: [...path, k],
      schema: s,
      required: schema.required?.includes(k) ?? false,
      inMap: declared === undefined,
    };
    out.push(field, ...fieldsOf(v, s, field.path));
  }
  return out;
}

/** The objects of a body with a closed member list, by path (the root is []). */
function closedObjects(value: unknown, schema: JsonSchema | undefined, path: string[] = []) {
  if (!schema || value === null || typeof value !== 'object' || Array.isArray(value)) return [];
  const out: { path: string[]; schema: JsonSchema }[] = [];
  if (schema.additionalProperties === false) out.push({ path, schema });
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const s = schema.properties?.[k];
    if (s) out.push(...closedObjects(v, s, [...path, k]));
  }
  return out;
}

const clone = <T>(v: T): T => structuredClone(v);

function edit(
  json: unknown,
  path: string[],
  fn: (parent: Record<string, unknown>, key: string) => void,
) {
  const copy = clone(json) as Record<string, unknown>;
  let node = copy;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string, unknown>;
  fn(node, path[path.length - 1]!);
  return copy;
}

const withJson = (base: Base, json: unknown): Base => ({ ...base, body: { json } });
const dotted = (path: string[]) => path.join('.');
const label = (ch: string) => `U+${ch.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;

/**
 * Characters SPEC §10 refuses in any string: NUL, lone surrogates, and control characters other
 * than tab and newline (C0, DEL and C1 are all Unicode control characters).
 */
export const BAD_CHARS = [
  '\u0000',
  '\uD800',
  '\uDFFF',
  '\u0001',
  '\u0008',
  '\u000B',
  '\u000C',
  '\u000D',
  '\u001B',
  '\u001F',
  '\u007F',
  '\u0085',
  '\u009F',
];
/** The same as percent-encoded UTF-8 for a query string (a URL cannot carry lone surrogates). */
const BAD_QUERY_CHARS = [
  '%00',
  '%01',
  '%08',
  '%0B',
  '%0D',
  '%1B',
  '%1F',
  '%7F',
  '%C2%85',
  '%C2%9F',
];

/** An amount that is not the canonical decimal string: SPEC §10 refuses it (invalid_amount). */
export const NON_CANONICAL_AMOUNTS = [
  '015000',
  '00',
  '+1',
  '-5',
  '1e3',
  '1E3',
  ' 1',
  '1 ',
  '\t1',
  '1.',
  '.5',
  '1,000',
  '1_000',
  '0x10',
  '１０００',
  '٣',
  'NaN',
  'Infinity',
  '',
];
export const NUMBER_AMOUNTS = [15000, 1000, 1, 0, -1, 1.5, 1e21, 2 ** 53 + 2];

/** Outbound URLs that name a non-public address in some spelling (SPEC §10). */
export const NON_PUBLIC_URLS = [
  'http://[::ffff:127.0.0.1]:1/x',
  'http://[::ffff:7f00:1]/',
  'http://[::ffff:169.254.169.254]/latest/meta-data',
  'http://[::ffff:a9fe:a9fe]/',
  'http://[::127.0.0.1]/',
  'http://[0:0:0:0:0:ffff:10.0.0.1]/',
  'http://2130706433/',
  'http://0x7f.1/',
  'http://0x7f000001/',
  'http://0177.0.0.1/',
  'http://017700000001/',
  'http://127.1/',
  'http://0/',
  'http://0.0.0.0/',
  'http://[::]/',
  'http://[::1]/',
  'http://localhost:8080/',
  'http://hooks.localhost/',
  'http://10.1.2.3/',
  'http://172.16.0.1/',
  'http://192.168.0.1/',
  'http://100.64.0.1/',
  'http://169.254.169.254/latest/meta-data',
  'http://0xa9fea9fe/',
  'http://[fe80::1]/',
  'http://[fc00::1]/',
  'http://[fd12:3456::1]/',
  'http://224.0.0.1/',
  'http://255.255.255.255/',
  'http://[ff02::1]/',
];

/** Names under which a key could be smuggled in a query string. */
const CREDENTIAL_PARAMS = ['api_key', 'access_token', 'apikey', 'key', 'token'];

const INVALID_JSON = [
  '{',
  '{"a":',
  "{'amount':'1000'}",
  '[1,2',
  'nul',
  '\u0000',
  '{"a":1,}',
  '{"a" 1}',
];
const WRONG_CONTENT_TYPES = [
  'text/plain',
  'application/xml',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/json; charset=utf-16',
  'text/csv',
];

/** Values of a JSON type the field does not have (none for a field of any type). */
function wrongTypeValues(schema: JsonSchema): unknown[] {
  if (schema.type === undefined) return [];
  const all: unknown[] = ['x', 7, 1.5, true, { a: 'b' }, ['a'], null];
  return all.filter((v) => {
    if (v === null) return !schema.nullable;
    if (Array.isArray(v)) return schema.type !== 'array';
    if (typeof v === 'object') return schema.type !== 'object';
    if (typeof v === 'string') return schema.type !== undefined && schema.type !== 'string';
    if (typeof v === 'number') return schema.type !== 'integer' && schema.type !== 'number';
    return schema.type !== 'boolean';
  });
}

type Candidate = { weight: number; arbitrary: fc.Arbitrary<Mutant> };

function bodyMutations(base: Base): Candidate[] {
  const op = base.op;
  if (!base.body || !('json' in base.body)) return [];
  const json = base.body.json;
  const schema = op.body?.schema;
  const fields = fieldsOf(json, schema);
  const strings = fields.filter((f) => f.schema.type === 'string' || f.inMap);
  const amounts = fields.filter((f) => isAmountField(f.path[f.path.length - 1]!, f.schema));
  const urls = fields.filter((f) => isUrlField(f.path[f.path.length - 1]!));
  const maps = fields.filter((f) => typeof f.schema.additionalProperties === 'object' && !f.inMap);
  const closed = closedObjects(json, schema);
  const bounded = fields.filter((f) => f.schema.type === 'string' && f.schema.maxLength);
  const out: Candidate[] = [];
  const mutant = (mutation: string, variant: string, b: Base, expect: Expectation): Mutant => ({
    op,
    mutation,
    variant,
    request: wire(b),
    expect,
  });

  if (strings.length > 0) {
    out.push({
      weight: 30,
      arbitrary: fc
        .tuple(fc.constantFrom(...strings), fc.constantFrom(...BAD_CHARS), fc.nat(), fc.boolean())
        .map(([f, ch, at, alone]) => {
          const next = edit(json, f.path, (parent, key) => {
            const given = parent[key];
            // Between code points, so that the character named is the only one out of place.
            const old = Array.from(typeof given === 'string' ? given : '');
            const i = at % (old.length + 1);
            parent[key] = alone ? ch : [...old.slice(0, i), ch, ...old.slice(i)].join('');
          });
          // An amount with a control character breaks two rules; either code names it.
          const amount = isAmountField(f.path[f.path.length - 1]!, f.schema);
          return mutant(
            'string-control',
            `${label(ch)} in body.${dotted(f.path)}`,
            withJson(base, next),
            {
              status: [400],
              code: amount ? ['invalid_string', 'invalid_amount'] : ['invalid_string'],
              param: dotted(f.path),
            },
          );
        }),
    });
  }
  if (maps.length > 0) {
    out.push({
      weight: 8,
      arbitrary: fc
        .tuple(fc.constantFrom(...maps), fc.constantFrom(...BAD_CHARS))
        .map(([f, ch]) => {
          const next = edit(json, f.path, (parent, key) => {
            parent[key] = { ...(parent[key] as object), [`k${ch}ey`]: 'v' };
          });
          return mutant(
            'key-control',
            `${label(ch)} in a key of body.${dotted(f.path)}`,
            withJson(base, next),
            {
              status: [400],
              code: ['invalid_string'],
            },
          );
        }),
    });
  }
  if (closed.length > 0) {
    out.push({
      weight: 5,
      arbitrary: fc
        .tuple(fc.constantFrom(...closed), fc.constantFrom(...BAD_CHARS))
        .map(([o, ch]) => {
          const key = `extra${ch}field`;
          const next =
            o.path.length === 0
              ? { ...(json as object), [key]: 'v' }
              : edit(json, o.path, (parent, k) => {
                  parent[k] = { ...(parent[k] as object), [key]: 'v' };
                });
          return mutant(
            'key-control',
            `${label(ch)} in an unknown key of body${o.path.length ? '.' : ''}${dotted(o.path)}`,
            withJson(base, next),
            {
              status: [400],
              code: ['invalid_string', 'validation_failed'],
            },
          );
        }),
    });
  }
  if (amounts.length > 0) {
    out.push({
      weight: 10,
      arbitrary: fc
        .tuple(fc.constantFrom(...amounts), fc.constantFrom(...NUMBER_AMOUNTS))
        .map(([f, n]) => {
          const next = edit(json, f.path, (parent, key) => (parent[key] = n));
          return mutant(
            'amount-number',
            `${JSON.stringify(n)} in body.${dotted(f.path)}`,
            withJson(base, next),
            {
              status: [400],
              code: ['invalid_amount'],
              param: dotted(f.path),
            },
          );
        }),
    });
    out.push({
      weight: 10,
      arbitrary: fc
        .tuple(fc.constantFrom(...amounts), fc.constantFrom(...NON_CANONICAL_AMOUNTS))
        .map(([f, s]) => {
          const next = edit(json, f.path, (parent, key) => (parent[key] = s));
          return mutant(
            'amount-non-canonical',
            `${JSON.stringify(s)} in body.${dotted(f.path)}`,
            withJson(base, next),
            {
              status: [400],
              code: ['invalid_amount'],
              param: dotted(f.path),
            },
          );
        }),
    });
  }
  if (urls.length > 0) {
    out.push({
      weight: 15,
      arbitrary: fc
        .tuple(fc.constantFrom(...urls), fc.constantFrom(...NON_PUBLIC_URLS))
        .map(([f, url]) => {
          const next = edit(json, f.path, (parent, key) => (parent[key] = url));
          return mutant(
            'url-non-public',
            `${url} in body.${dotted(f.path)}`,
            withJson(base, next),
            {
              status: [400],
              param: dotted(f.path),
            },
          );
        }),
    });
  }
  const typed = fields.filter((f) => !f.inMap && wrongTypeValues(f.schema).length > 0);
  if (typed.length > 0) {
    out.push({
      weight: 6,
      arbitrary: fc.constantFrom(...typed).chain((f) =>
        fc.constantFrom(...wrongTypeValues(f.schema)).map((v) => {
          const next = edit(json, f.path, (parent, key) => (parent[key] = v));
          const amount = isAmountField(f.path[f.path.length - 1]!, f.schema);
          return mutant(
            'wrong-type',
            `${JSON.stringify(v)} in body.${dotted(f.path)}`,
            withJson(base, next),
            {
              status: [400],
              code: amount ? ['invalid_amount', 'validation_failed'] : ['validation_failed'],
            },
          );
        }),
      ),
    });
  }
  const required = fields.filter((f) => f.required);
  if (required.length > 0) {
    out.push({
      weight: 5,
      arbitrary: fc.constantFrom(...required).map((f) => {
        const next = edit(json, f.path, (parent, key) => delete parent[key]);
        return mutant('missing-required', `body.${dotted(f.path)}`, withJson(base, next), {
          status: [400],
          code: ['validation_failed'],
        });
      }),
    });
  }
  if (closed.length > 0) {
    out.push({
      weight: 5,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...closed),
          fc.constantFrom('extra', 'admin', '__proto__', 'constructor', 'amount_minor'),
        )
        .map(([o, key]) => {
          // An own member even for "__proto__", which a spread or an assignment would not make.
          const add = (o: unknown) => {
            const copy = clone(o) as Record<string, unknown>;
            Object.defineProperty(copy, key, {
              value: 'x',
              enumerable: true,
              writable: true,
              configurable: true,
            });
            return copy;
          };
          const next =
            o.path.length === 0
              ? add(json)
              : edit(json, o.path, (parent, k) => (parent[k] = add(parent[k])));
          return mutant(
            'unknown-field',
            `${key} in body${o.path.length ? '.' : ''}${dotted(o.path)}`,
            withJson(base, next),
            {
              status: [400],
              code: ['validation_failed'],
            },
          );
        }),
    });
  }
  if (bounded.length > 0) {
    out.push({
      weight: 4,
      arbitrary: fc.tuple(fc.constantFrom(...bounded), fc.boolean()).map(([f, huge]) => {
        const n = huge ? 70_000 : Number(f.schema.maxLength) + 1;
        const next = edit(json, f.path, (parent, key) => (parent[key] = '7'.repeat(n)));
        return mutant(
          'oversized-string',
          `${n} chars in body.${dotted(f.path)}`,
          withJson(base, next),
          {
            status: huge ? [413] : [400],
          },
        );
      }),
    });
  }
  out.push({
    weight: 3,
    arbitrary: fc.integer({ min: 17, max: 400 }).map((depth) => {
      let nested: unknown = 'x';
      for (let i = 0; i < depth; i++) nested = { a: nested };
      const target = maps[0]?.path ?? ['deep'];
      const next =
        target.length === 1
          ? { ...(json as object), [target[0]!]: nested }
          : edit(json, target, (parent, key) => (parent[key] = nested));
      return mutant(
        'deep-nesting',
        `${depth} levels in body.${dotted(target)}`,
        withJson(base, next),
        {
          status: [400],
        },
      );
    }),
  });
  out.push({
    weight: 3,
    arbitrary: fc
      .constantFrom(...INVALID_JSON, '['.repeat(32_000) + ']'.repeat(32_000))
      .map((raw) => {
        const req = wire(base);
        return {
          op,
          mutation: 'invalid-json',
          variant: raw.length > 40 ? `${raw.length} bytes of nesting` : JSON.stringify(raw),
          request: { ...req, body: raw },
          expect: { status: [400], code: raw.length > 40 ? undefined : ['invalid_json'] },
        };
      }),
  });
  return out;
}

function contentTypeMutations(base: Base): Candidate[] {
  const op = base.op;
  if (!base.body) return [];
  const accepted = op.body?.contentTypes ?? [];
  const wrong = WRONG_CONTENT_TYPES.filter((t) => !accepted.includes(t.split(';')[0]!));
  if (!accepted.includes(JSON_TYPE)) wrong.push(JSON_TYPE);
  return [
    {
      weight: 5,
      arbitrary: fc.constantFrom(...wrong).map((type) => {
        const req = wire(base);
        const body =
          type === JSON_TYPE && !('json' in base.body!) ? '{"carrier_ref":"x"}' : req.body;
        return {
          op,
          mutation: 'wrong-content-type',
          variant: type,
          request: { ...req, body, headers: { ...req.headers, 'content-type': type } },
          // A JSON body announced in a charset it is not in may also be refused as invalid JSON.
          expect: type.includes('charset')
            ? { status: [415, 400], code: ['unsupported_media_type', 'invalid_json'] }
            : { status: [415], code: ['unsupported_media_type'] },
        };
      }),
    },
  ];
}

function csvMutations(base: Base): Candidate[] {
  if (!base.body || 'json' in base.body) return [];
  return [
    {
      weight: 4,
      arbitrary: fc
        .constantFrom(
          '',
          'a,b,c\n1,2,3\n',
          'carrier_ref,gateway_ref\n',
          '\u0000\n',
          'gateway_ref\u0000,x\n',
        )
        .map((text) => ({
          op: base.op,
          mutation: 'csv-bad-header',
          variant: JSON.stringify(text),
          request: wire({
            ...base,
            body: { text, contentType: (base.body as { contentType: string }).contentType },
          }),
          expect: { status: [400] },
        })),
    },
  ];
}

const BAD_IDS = [
  '%00',
  'ch_%00x',
  'ch%01x',
  '%ED%A0%80',
  '..',
  '%2e%2e',
  '..%2f..%2fadmin',
  '%20',
  "'%20OR%20'1'%3D'1",
  'x'.repeat(65),
  '%F0%9F%98%80',
];
const BAD_MSISDNS = [
  '%2B84',
  '84901234567',
  `%2B849${'9'.repeat(14)}`,
  '%2B0123456',
  '%2B84%00901',
  '%2B8490%0D1234567',
  'null',
];

function pathMutations(base: Base): Candidate[] {
  const op = base.op;
  const names = Object.keys(base.pathValues);
  if (names.length === 0) return [];
  const unknownValid = op.method === 'PUT' ? [] : ['unknown'];
  return [
    {
      weight: 6,
      arbitrary: fc.constantFrom(...names).chain((name) => {
        const bad =
          name === 'msisdn' ? [...BAD_MSISDNS, ...unknownValid] : [...BAD_IDS, ...unknownValid];
        return fc
          .tuple(fc.constantFrom(...bad), fc.integer({ min: 100_000, max: 999_999 }))
          .map(([value, n]) => {
            const raw =
              value === 'unknown'
                ? name === 'msisdn'
                  ? `%2B84999${n}`
                  : `${base.pathValues[name]!.split('_')[0]}_00000000000000000000${n}`
                : value;
            return {
              op,
              mutation: 'path-bad-id',
              variant: `${name}=${value === 'unknown' ? 'an id that names nothing' : value}`,
              request: wire({ ...base, pathRaw: { ...base.pathRaw, [name]: raw } }),
              expect: { status: value === 'unknown' ? [404] : [400, 404] },
            };
          });
      }),
    },
  ];
}

function invalidQueryValues(schema: JsonSchema): string[] {
  const out: string[] = [];
  if (schema.type === 'integer')
    out.push('abc', '1.5', '', String(Number(schema.minimum ?? 1) - 1));
  if (schema.maximum !== undefined) out.push(String(Number(schema.maximum) + 1));
  if (schema.enum) out.push('not_a_value');
  if (schema.format === 'date-time') out.push('yesterday', '2024-13-45T00:00:00Z');
  if (schema.format === 'date') out.push('2024-02-30x', 'today');
  if (schema.pattern) out.push('!!', 'a b');
  if (schema.maxLength !== undefined) out.push('x'.repeat(Number(schema.maxLength) + 1));
  return out;
}

function queryMutations(base: Base, world: FuzzWorld): Candidate[] {
  const op = base.op;
  const declared = op.parameters.filter((p) => p.in === 'query');
  const out: Candidate[] = [];
  const mutant = (mutation: string, variant: string, b: Base, expect: Expectation): Mutant => ({
    op,
    mutation,
    variant,
    request: wire(b),
    expect,
  });
  const strings = declared.filter((p) => p.schema.type === 'string' || p.schema.enum);
  if (strings.length > 0) {
    out.push({
      weight: 10,
      arbitrary: fc
        .tuple(fc.constantFrom(...strings), fc.constantFrom(...BAD_QUERY_CHARS))
        .map(([p, ch]) => {
          const given = base.query.find((q) => q.name === p.name)?.value ?? 'abc';
          const query = [
            ...base.query.filter((q) => q.name !== p.name),
            { name: p.name, value: encodeURIComponent(given) + ch, raw: true },
          ];
          return mutant(
            'string-control',
            `${ch} in query ${p.name}`,
            { ...base, query },
            {
              status: [400],
              code: isAmountField(p.name, p.schema)
                ? ['invalid_string', 'invalid_amount']
                : ['invalid_string'],
              param: p.name,
            },
          );
        }),
    });
  }
  const amountParams = declared.filter((p) => isAmountField(p.name, p.schema));
  if (amountParams.length > 0) {
    out.push({
      weight: 6,
      arbitrary: fc
        .tuple(
          fc.constantFrom(...amountParams),
          fc.constantFrom(...NON_CANONICAL_AMOUNTS.filter((a) => a !== '')),
        )
        .map(([p, value]) => {
          const query = [
            ...base.query.filter((q) => q.name !== p.name && q.name !== 'currency'),
            { name: p.name, value },
            { name: 'currency', value: 'VND' },
          ];
          return mutant(
            'amount-non-canonical',
            `${JSON.stringify(value)} in query ${p.name}`,
            { ...base, query },
            {
              status: [400],
              code: ['invalid_amount'],
              param: p.name,
            },
          );
        }),
    });
  }
  const checkable = declared.filter((p) => invalidQueryValues(p.schema).length > 0);
  if (checkable.length > 0) {
    out.push({
      weight: 4,
      arbitrary: fc.constantFrom(...checkable).chain((p) =>
        fc.constantFrom(...invalidQueryValues(p.schema)).map((value) => {
          const query = [...base.query.filter((q) => q.name !== p.name), { name: p.name, value }];
          return mutant(
            'query-invalid',
            `${p.name}=${value.slice(0, 40)}`,
            { ...base, query },
            {
              status: [400],
            },
          );
        }),
      ),
    });
    out.push({
      weight: 2,
      arbitrary: fc.constantFrom(...checkable).map((p) => {
        const value = base.query.find((q) => q.name === p.name)?.value ?? '1';
        const query = [...base.query, { name: p.name, value }, { name: p.name, value }];
        return mutant('query-invalid', `${p.name} repeated`, { ...base, query }, { status: [400] });
      }),
    });
  }
  out.push({
    weight: 3,
    arbitrary: fc.constantFrom('fuzz', 'expand', '__proto__', 'limit[]').map((name) =>
      mutant(
        'unknown-field',
        `query ${name}`,
        { ...base, query: [...base.query, { name, value: '1' }] },
        {
          status: [400],
        },
      ),
    ),
  });
  out.push({
    weight: 8,
    arbitrary: fc
      .tuple(fc.constantFrom(...CREDENTIAL_PARAMS), fc.constantFrom(...world.secrets), fc.boolean())
      .map(([name, secret, alsoHeader]) => {
        const b = { ...base, query: [...base.query, { name, value: secret }] };
        const req = wire(b, alsoHeader ? `Bearer ${base.key}` : null);
        return {
          op,
          mutation: 'credentials-in-query',
          variant: `?${name}=<key>${alsoHeader ? ' with Authorization' : ' alone'}`,
          request: req,
          expect: { status: [400], code: ['credentials_in_query'] },
        };
      }),
  });
  out.push({
    weight: 2,
    arbitrary: fc.constantFrom(...world.secrets).map((secret) => {
      const req = wire(base);
      return {
        op,
        mutation: 'credentials-in-query',
        variant: 'X-API-Key header with Authorization',
        request: { ...req, headers: { ...req.headers, 'x-api-key': secret } },
        expect: { status: [400], code: ['credentials_in_query'] },
      };
    }),
  });
  return out;
}

/** Only what an HTTP header can carry: tab, visible ASCII, space and Latin-1 high bytes. */
// Leading and trailing tabs and spaces are not sent: HTTP strips them from header values.
const BAD_IDEMPOTENCY_KEYS = ['k'.repeat(256), 'a\tb', 'é', '\x85key', 'key\xff', 'k\xa0k'];

function headerMutations(base: Base, world: FuzzWorld): Candidate[] {
  const op = base.op;
  const out: Candidate[] = [];
  if (op.idempotent) {
    out.push({
      weight: 4,
      arbitrary: fc.constantFrom(null, '', ...BAD_IDEMPOTENCY_KEYS).map((key) => {
        const headers = { ...base.headers };
        if (key === null) delete headers['idempotency-key'];
        else headers['idempotency-key'] = key;
        return {
          op,
          mutation: 'idempotency-key',
          variant:
            key === null
              ? 'missing'
              : JSON.stringify(key.length > 20 ? `${key.length} chars` : key),
          request: wire({ ...base, headers }),
          expect: {
            status: [400],
            code:
              key === null
                ? ['idempotency_key_missing']
                : key === ''
                  ? ['idempotency_key_missing', 'idempotency_key_invalid']
                  : ['idempotency_key_invalid'],
          },
        };
      }),
    });
  }
  out.push({
    weight: 3,
    arbitrary: fc
      .constantFrom(
        null,
        'Bearer',
        `Bearer\t${base.key}`,
        `Bearer ${base.key}\xff`,
        `Bearer  ${base.key}`,
        'Basic YWRtaW46YWRtaW4=',
        `Bearer dcb_ak_${'A'.repeat(43)}`,
        `Bearer ${base.key.slice(0, -1)}`,
      )
      .map((auth) => ({
        op,
        mutation: 'auth',
        variant:
          auth === null
            ? 'no Authorization'
            : auth.replace(base.key, '<key>').replace(base.key.slice(0, -1), '<key minus one>'),
        request: wire(base, auth),
        expect: { status: [401], code: ['unauthenticated'] },
      })),
  });
  const others = ROLES.filter((r) => !allowedRoles(op).includes(r));
  if (others.length > 0) {
    out.push({
      weight: 2,
      arbitrary: fc.constantFrom(...others).map((role) => ({
        op,
        mutation: 'auth',
        variant: `a ${role} key`,
        request: wire(base, `Bearer ${world.keys[role][0]!}`),
        expect: { status: [403], code: ['forbidden'] },
      })),
    });
  }
  return out;
}

/** Requests that break one rule of SPEC §3 / §10 on `op`, each with the refusal it must get. */
export function mutantOf(op: Operation, world: FuzzWorld, nonce: string): fc.Arbitrary<Mutant> {
  return validBase(op, world, nonce).chain((base) =>
    fc.oneof(
      ...bodyMutations(base),
      ...contentTypeMutations(base),
      ...csvMutations(base),
      ...pathMutations(base),
      ...queryMutations(base, world),
      ...headerMutations(base, world),
    ),
  );
}
