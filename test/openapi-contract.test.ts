import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPENAPI_PATH } from '../src/paths.js';
import { createHarness, type Harness } from './helpers/harness.js';

let h: Harness;
beforeAll(async () => {
  h = await createHarness();
});
afterAll(() => h.close());

interface Layer {
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
}

function expressRoutes(stack: Layer[], out = new Set<string>()): Set<string> {
  for (const layer of stack) {
    if (layer.route) {
      for (const method of Object.keys(layer.route.methods))
        out.add(`${method.toUpperCase()} ${layer.route.path}`);
    } else if (layer.handle?.stack) {
      expressRoutes(layer.handle.stack, out);
    }
  }
  return out;
}

/** Paths and methods of openapi.yaml, read without a YAML parser: path keys are 2-space indented. */
function contractRoutes(): Set<string> {
  const lines = readFileSync(OPENAPI_PATH, 'utf8').split('\n');
  const out = new Set<string>();
  let inPaths = false;
  let current: string | undefined;
  for (const line of lines) {
    if (/^paths:/.test(line)) inPaths = true;
    else if (/^\S/.test(line)) inPaths = false;
    if (!inPaths) continue;
    const path = /^ {2}(\/\S+):\s*$/.exec(line);
    if (path) current = path[1]!.replace(/\{(\w+)\}/g, ':$1');
    const method = /^ {4}(get|put|post|patch|delete):/.exec(line);
    if (method && current) out.add(`${method[1]!.toUpperCase()} ${current}`);
  }
  return out;
}

describe('openapi.yaml', () => {
  it('describes every route the app serves, and serves every route it describes', () => {
    const router = (h.app as unknown as { router: { stack: Layer[] } }).router;
    const served = [...expressRoutes(router.stack)].filter((r) => r.includes(' /v1/'));
    const described = [...contractRoutes()];
    expect(served.length).toBeGreaterThan(20);
    expect(served.filter((r) => !described.includes(r)).sort()).toEqual([]);
    expect(described.filter((r) => !served.includes(r)).sort()).toEqual([]);
  });
});
