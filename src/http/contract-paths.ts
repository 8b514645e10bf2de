import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { OPENAPI_PATH } from '../paths.js';

interface PathTemplate {
  segments: string[];
}

let templates: PathTemplate[] | undefined;

/** The contract's path templates, read once, on first use (buildApp does no I/O). */
function contractTemplates(): PathTemplate[] {
  if (templates === undefined) {
    const doc = parse(readFileSync(OPENAPI_PATH, 'utf8')) as { paths?: Record<string, unknown> };
    templates = Object.keys(doc.paths ?? {}).map((p) => ({ segments: p.split('/') }));
  }
  return templates;
}

/**
 * The name the contract gives to segment `index` of a request path split on "/" (`id` for
 * segment 3 of `/v1/charges/ch_…`), or undefined when no route of the contract has a
 * parameter there. Used to name the parameter in an error, so it only runs on refusals.
 */
export function pathParameterName(segments: readonly string[], index: number): string | undefined {
  for (const t of contractTemplates()) {
    if (t.segments.length !== segments.length) continue;
    const fits = t.segments.every(
      (s, i) => i === index || (s.startsWith('{') && s.endsWith('}')) || s === segments[i],
    );
    const at = t.segments[index];
    if (fits && at !== undefined && at.startsWith('{') && at.endsWith('}')) return at.slice(1, -1);
  }
  return undefined;
}
