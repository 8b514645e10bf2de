import fc from 'fast-check';
import { PUBLIC_URL, type FuzzWorld } from './fuzz-world.js';
import {
  allowedRoles,
  objectKind,
  type JsonSchema,
  type Operation,
  type Role,
} from './openapi-operations.js';

/**
 * Schema-driven requests: for any operation of openapi.yaml, a request its own role could make
 * (path ids of the run's objects, query and body values that satisfy the contract). Mutations
 * (fuzz-mutations.ts) start from one of these and break exactly one rule.
 */

/** One request, before it is put on the wire; mutations edit this form. */
export interface Base {
  op: Operation;
  role: Role;
  key: string;
  /** Path parameter values, not yet encoded (`pathRaw` holds pre-encoded ones). */
  pathValues: Record<string, string>;
  pathRaw: Record<string, string>;
  /** Query pairs; `raw` ones are already percent-encoded. */
  query: { name: string; value: string; raw?: boolean }[];
  headers: Record<string, string>;
  body?: { json: unknown } | { text: string | Buffer; contentType: string };
}

/** What goes on the wire. */
export interface WireRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

export const JSON_TYPE = 'application/json';

/** `arb` with probability `p`, otherwise undefined. */
export function sometimes<T>(arb: fc.Arbitrary<T>, p: number): fc.Arbitrary<T | undefined> {
  const w = Math.round(p * 100);
  return fc.oneof(
    { weight: w, arbitrary: arb },
    { weight: 100 - w, arbitrary: fc.constant(undefined) },
  );
}

/** A string field holding an amount: an `Amount` of the contract or a field named as one. */
export function isAmountField(name: string, schema: JsonSchema): boolean {
  if (schema.refName === 'Amount' || schema.refName === 'NullableAmount') return true;
  return schema.type === 'string' && /^(amount|amount_[a-z]+|credit_limit)$/.test(name);
}

/** A field holding an outbound URL (webhooks, carrier SMS). */
export function isUrlField(name: string): boolean {
  return /(^|_)url$/.test(name);
}

const FREE_TEXT = [
  'Vé xe buýt tuyến 12',
  'Thẻ cào 50.000₫',
  '游戏点数',
  '🎮 level pack',
  "' OR '1'='1",
  '../../etc/passwd',
  '<script>alert(1)</script>',
  '{"$gt":""}',
  'tab\tand\nnewline',
  'Ω≈ç√∫˜µ≤≥÷',
];

function text(schema: JsonSchema): fc.Arbitrary<string> {
  const min = Math.max(1, Number(schema.minLength ?? 1));
  const max = Math.min(Number(schema.maxLength ?? 60), 60);
  return fc.oneof(
    { weight: 3, arbitrary: fc.string({ minLength: min, maxLength: Math.max(min, max) }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(...FREE_TEXT).filter((s) => s.length >= min && s.length <= max),
    },
  );
}

const DAY = 86_400_000;

function ids(world: FuzzWorld, name: string): string[] {
  if (name === 'merchant_id') return world.merchantIds;
  if (name === 'carrier_id') return world.carrierIds;
  if (name === 'owner_id') return [...world.merchantIds, ...world.carrierIds];
  return Object.values(world.pools).flat();
}

/** A value the contract accepts for a field named `name` with schema `schema`. */
export function validValue(
  name: string,
  schema: JsonSchema,
  world: FuzzWorld,
): fc.Arbitrary<unknown> {
  if (schema.enum) return fc.constantFrom(...schema.enum.filter((v) => v !== null));
  if (schema.type === 'object') return validObject(schema, world);
  if (schema.type === 'array') {
    return fc.array(validValue(name, schema.items ?? {}, world), { maxLength: 2 });
  }
  if (schema.type === 'integer' || schema.type === 'number') {
    return fc.integer({ min: Number(schema.minimum ?? 0), max: Number(schema.maximum ?? 10_000) });
  }
  if (schema.type === 'boolean') return fc.boolean();
  if (isAmountField(name, schema)) {
    if (name === 'credit_limit') return fc.constantFrom('0', '1000000', '250000');
    if (schema.refName === 'NullableAmount') return fc.constantFrom('5000000', '100000', '2000');
    return fc.constantFrom('1000', '2500', '15000', '40000', '1');
  }
  if (name === 'currency' || schema.refName === 'Currency') return fc.constant('VND');
  if (name === 'msisdn' || schema.refName === 'Msisdn') return fc.constantFrom(...world.msisdns);
  if (schema.format === 'date-time') {
    return fc
      .integer({ min: -3 * DAY, max: DAY })
      .map((d) => new Date(Date.now() + d).toISOString());
  }
  if (schema.format === 'date') {
    return fc
      .integer({ min: -3, max: 1 })
      .map((d) => new Date(Date.now() + d * DAY).toISOString().slice(0, 10));
  }
  if (isUrlField(name)) return fc.constantFrom(PUBLIC_URL, `${PUBLIC_URL}/v2?x=1`);
  if (name === 'timezone') return fc.constantFrom('UTC', 'Asia/Ho_Chi_Minh', 'Asia/Bangkok');
  if (/(^|_)id$/.test(name) || name === 'starting_after') {
    return fc.constantFrom(...ids(world, name));
  }
  if (typeof schema.pattern === 'string')
    return matching(schema.pattern, Number(schema.maxLength ?? 64));
  return text(schema);
}

const patterns = new Map<string, fc.Arbitrary<string>>();
/** Strings matching a pattern of the contract (built once per pattern: building is not cheap). */
function matching(pattern: string, maxLength: number): fc.Arbitrary<string> {
  const key = `${maxLength}:${pattern}`;
  let arb = patterns.get(key);
  if (!arb) {
    arb = fc.stringMatching(new RegExp(pattern)).filter((s) => s.length <= maxLength);
    patterns.set(key, arb);
  }
  return arb;
}

/** `generated` with the members of one coherent example of `name` over it, if there are any. */
function coherent(
  name: string | undefined,
  world: FuzzWorld,
  generated: fc.Arbitrary<Record<string, unknown>>,
): fc.Arbitrary<Record<string, unknown>> {
  const examples = name === undefined ? undefined : world.coherent[name];
  if (!examples?.length) return generated;
  return fc.tuple(generated, fc.constantFrom(...examples)).map(([g, example]) => {
    const out = { ...g, ...example };
    for (const [k, v] of Object.entries(example)) if (v === undefined) delete out[k];
    return out;
  });
}

function validObject(schema: JsonSchema, world: FuzzWorld): fc.Arbitrary<Record<string, unknown>> {
  return coherent(schema.refName, world, generatedObject(schema, world));
}

function generatedObject(
  schema: JsonSchema,
  world: FuzzWorld,
): fc.Arbitrary<Record<string, unknown>> {
  const props = Object.entries(schema.properties ?? {});
  const required = new Set(schema.required ?? []);
  // PATCH bodies need at least one member: the first one is then always sent.
  if (required.size === 0 && Number(schema.minProperties ?? 0) > 0 && props[0]) {
    required.add(props[0][0]);
  }
  const members = props.map(([name, s]) =>
    required.has(name)
      ? validValue(name, s, world).map((v) => [name, v] as const)
      : sometimes(
          validValue(name, s, world).map((v) => [name, v] as const),
          0.4,
        ),
  );
  const addl = schema.additionalProperties;
  const extra =
    typeof addl === 'object' && addl !== null
      ? fc.dictionary(
          matching('^[a-z][a-z_]{0,11}$', 12),
          validValue('', addl as JsonSchema, world),
          { maxKeys: 3 },
        )
      : fc.constant({});
  return fc.tuple(fc.tuple(...members), extra).map(([chosen, more]) => ({
    ...more,
    ...Object.fromEntries(chosen.filter((m) => m !== undefined)),
  }));
}

/** A CSV file in the reconciliation format, naming the run's charges. */
function csvFile(world: FuzzWorld): fc.Arbitrary<string> {
  const row = fc
    .tuple(
      fc.constantFrom(...(world.pools.charge ?? ['ch_x'])),
      fc.constantFrom(...world.msisdns),
      fc.constantFrom('5000', '7000', '1'),
      fc.integer({ min: 0, max: 1_000_000 }),
    )
    .map(
      ([ch, msisdn, amount, n]) =>
        `c${n},${ch},${msisdn},charge,${amount},VND,${new Date().toISOString()}`,
    );
  return fc
    .array(row, { maxLength: 4 })
    .map(
      (rows) =>
        ['carrier_ref,gateway_ref,msisdn,type,amount,currency,occurred_at', ...rows].join('\n') +
        '\n',
    );
}

/** A well-formed id that names nothing, for routes whose kind the world does not hold. */
const unknownId = matching('^[a-z]{2,4}_[0-9a-hjkmnp-tv-z]{26}$', 31);

/**
 * A query value: as a body value, but free text is plain words (the contract's query strings do
 * not allow reserved characters) and a cursor names an object of the listed kind.
 */
function validQueryValue(
  op: Operation,
  name: string,
  schema: JsonSchema,
  world: FuzzWorld,
): fc.Arbitrary<unknown> {
  if (name === 'starting_after') {
    // A cursor that names no object of the list is refused (invalid_cursor): none then.
    const kind = objectKind({ ...op, path: `${op.path}/` }, 'id');
    const pool = kind ? world.pools[kind] : undefined;
    return pool?.length ? fc.constantFrom(...pool) : fc.constant(undefined);
  }
  if (schema.type === 'string' && !schema.enum && !schema.format && !schema.pattern) {
    if (!isAmountField(name, schema) && !/(^|_)id$/.test(name) && name !== 'msisdn') {
      return matching('^[a-z][a-z0-9_.]{0,19}$', 20);
    }
  }
  return validValue(name, schema, world);
}

const WRITES = new Set(['PUT', 'PATCH', 'DELETE']);

function pathValue(op: Operation, name: string, world: FuzzWorld): fc.Arbitrary<string> {
  const kind = objectKind(op, name);
  const pool =
    kind === undefined
      ? undefined
      : ((WRITES.has(op.method) ? world.spare[kind] : undefined) ?? world.pools[kind]);
  if (kind === 'msisdn' && op.method === 'PUT') {
    // A carrier may create a number as well as change one.
    const fresh = fc.integer({ min: 10_000_000, max: 99_999_999 }).map((n) => `+8497${n}`);
    return fc.oneof(fc.constantFrom(...pool!), fresh);
  }
  return pool && pool.length > 0 ? fc.constantFrom(...pool) : unknownId;
}

/** The key of a role; admin writes pick either admin key (so four-eyes approvals happen). */
function keyOf(world: FuzzWorld, role: Role): fc.Arbitrary<string> {
  return fc.constantFrom(...world.keys[role]);
}

let keyCounter = 0;

/**
 * Client request ids, unique so that a log line names its request: printable ones up to 128
 * characters are echoed, the others replaced (SPEC §3).
 */
const REQUEST_IDS: ((n: number) => string)[] = [
  (n) => `fuzz-req-${n}`,
  (n) => `${n}`.padEnd(128, 'r'),
  (n) => `${n}`.padEnd(129, 'r'),
  (n) => `a b${n}`,
  (n) => `a\tb${n}`,
  (n) => `é${n}`,
  (n) => `\x85${n}`,
];

/** A request `op`'s own role could make, valid against the contract. */
export function validBase(op: Operation, world: FuzzWorld, nonce: string): fc.Arbitrary<Base> {
  const pathParams = op.parameters.filter((p) => p.in === 'path');
  const queryParams = op.parameters.filter((p) => p.in === 'query');
  const role = fc.constantFrom(...allowedRoles(op));
  const query = fc.tuple(
    ...queryParams.map((p) => {
      const v = validQueryValue(op, p.name, p.schema, world).map((value) =>
        value === undefined
          ? undefined
          : { name: p.name, value: typeof value === 'string' ? value : JSON.stringify(value) },
      );
      return p.required ? v : sometimes(v, 0.3);
    }),
  );
  const json = op.body?.contentTypes.includes(JSON_TYPE);
  const csv = op.body?.contentTypes.find((t) => t.startsWith('text/csv'));
  const object = coherent(op.id, world, validObject(op.body?.schema ?? {}, world));
  const body: fc.Arbitrary<Base['body']> = json
    ? op.body?.required
      ? object.map((v) => ({ json: v }))
      : sometimes(
          object.map((v) => ({ json: v })),
          0.7,
        )
    : csv
      ? csvFile(world).map((t) => ({ text: t, contentType: csv }))
      : fc.constant(undefined);
  const accept =
    op.produces.length > 1
      ? sometimes(fc.constantFrom(...op.produces), 0.3)
      : fc.constant(undefined);
  return fc
    .record({
      role,
      pathValues: fc.tuple(...pathParams.map((p) => pathValue(op, p.name, world))),
      query,
      body,
      accept,
      requestId: sometimes(fc.constantFrom(...REQUEST_IDS), 0.1),
    })
    .chain((r) =>
      keyOf(world, r.role).map((key) => {
        const headers: Record<string, string> = {};
        // A counter, not a random number: generated integers repeat (small values are favoured).
        if (op.idempotent) headers['idempotency-key'] = `fz-${nonce}-${(keyCounter += 1)}`;
        if (r.accept) headers.accept = r.accept;
        if (r.requestId !== undefined) headers['x-request-id'] = r.requestId((keyCounter += 1));
        return {
          op,
          role: r.role,
          key,
          pathValues: Object.fromEntries(pathParams.map((p, i) => [p.name, r.pathValues[i]!])),
          pathRaw: {},
          query: r.query.filter((q) => q !== undefined),
          headers,
          body: r.body,
        };
      }),
    );
}

/** Puts a request on the wire: encoded path and query, bearer key, serialized body. */
export function wire(base: Base, auth: string | null = `Bearer ${base.key}`): WireRequest {
  let path = base.op.path;
  for (const name of Object.keys({ ...base.pathValues, ...base.pathRaw })) {
    const value = base.pathRaw[name] ?? encodeURIComponent(base.pathValues[name]!);
    path = path.replace(`{${name}}`, value);
  }
  const query = base.query
    .map((q) => `${encodeURIComponent(q.name)}=${q.raw ? q.value : encodeURIComponent(q.value)}`)
    .join('&');
  const headers: Record<string, string> = { ...base.headers };
  if (auth !== null) headers.authorization = auth;
  let body: string | Buffer | undefined;
  if (base.body && 'json' in base.body) {
    body = JSON.stringify(base.body.json);
    headers['content-type'] ??= JSON_TYPE;
  } else if (base.body) {
    body = base.body.text;
    headers['content-type'] ??= base.body.contentType;
  }
  return { method: base.op.method, path: query ? `${path}?${query}` : path, headers, body };
}
