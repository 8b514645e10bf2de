/**
 * Summarises a V8 `.cpuprofile` (from `node --cpu-prof`): top functions by self time, and the
 * share of samples each package or area appears in (inclusive). Optionally restricted to a time
 * window in the profile's clock (microseconds of CLOCK_MONOTONIC, the same as
 * `process.hrtime.bigint() / 1000n` in any process on the machine).
 *
 *   npx tsx bench/profile.ts <file.cpuprofile> [fromUs toUs]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  window_ms: number;
  samples: number;
  top_self: { function: string; where: string; self_pct: number; self_ms: number }[];
  /** Share of samples in which the area is on the stack (areas overlap, so shares add past 100). */
  inclusive_by_area: { area: string; pct: number }[];
  self_by_area: { area: string; pct: number }[];
  /**
   * Self time charged to the nearest package or app frame on the stack: a socket write made by
   * pg counts for pg, not for `writev` (GC, idle and program time stay as they are).
   */
  self_by_owner: { area: string; pct: number }[];
}

const isOwner = (area: string) =>
  !area.startsWith('node:') && !area.startsWith('native ') && area !== 'V8/native (program)';

/** Which package or part of the program a frame belongs to. */
export function areaOf(frame: CallFrame): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return 'V8/native (program)';
    return `native ${functionName || '(anonymous)'}`;
  }
  const mod = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (mod?.[1]) return mod[1];
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[1] ?? url.slice(5)}`;
  const src = /\/dist\/(.+)\.js$/.exec(url) ?? /\/src\/(.+)\.ts$/.exec(url);
  if (src?.[1]) return `app ${src[1].split('/').slice(0, 2).join('/')}`;
  return url;
}

function shortUrl(url: string): string {
  const mod = /node_modules\/(.+)$/.exec(url);
  if (mod?.[1]) return mod[1];
  const dist = /\/dist\/(.+)$/.exec(url);
  if (dist?.[1]) return `dist/${dist[1]}`;
  return url || '(native)';
}

export function summariseProfile(
  profile: CpuProfile,
  window?: { fromUs: number; toUs: number },
  top = 25,
): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const selfCount = new Map<number, number>();
  const areaInclusive = new Map<string, number>();
  const areaSelf = new Map<string, number>();
  const ownerSelf = new Map<string, number>();
  let t = profile.startTime;
  let counted = 0;
  let first = Infinity;
  let last = -Infinity;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i] ?? 0;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    const id = profile.samples[i]!;
    const node = byId.get(id);
    if (!node) continue;
    counted++;
    first = Math.min(first, t);
    last = Math.max(last, t);
    selfCount.set(id, (selfCount.get(id) ?? 0) + 1);
    const self = areaOf(node.callFrame);
    areaSelf.set(self, (areaSelf.get(self) ?? 0) + 1);
    const seen = new Set<string>();
    let owner: string | undefined;
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (!frame || frame.functionName === '(root)') continue;
      const area = areaOf(frame);
      seen.add(area);
      if (owner === undefined && isOwner(area)) owner = area;
    }
    const charged = self === 'GC' || self === 'idle' ? self : (owner ?? self);
    ownerSelf.set(charged, (ownerSelf.get(charged) ?? 0) + 1);
    for (const area of seen) areaInclusive.set(area, (areaInclusive.get(area) ?? 0) + 1);
  }
  const windowMs = counted ? (last - first) / 1000 : 0;
  const msPerSample = counted ? windowMs / counted : 0;

  const byFunction = new Map<string, { function: string; where: string; count: number }>();
  for (const [id, count] of selfCount) {
    const f = byId.get(id)!.callFrame;
    const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : '(native)';
    const key = `${f.functionName}@${where}`;
    const entry = byFunction.get(key) ?? {
      function: f.functionName || '(anonymous)',
      where,
      count: 0,
    };
    entry.count += count;
    byFunction.set(key, entry);
  }
  const pct = (n: number) => Math.round((1000 * n) / Math.max(counted, 1)) / 10;
  const sorted = (m: Map<string, number>) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).map(([area, n]) => ({ area, pct: pct(n) }));
  return {
    window_ms: Math.round(windowMs),
    samples: counted,
    top_self: [...byFunction.values()]
      .sort((a, b) => b.count - a.count)
      .slice(0, top)
      .map((e) => ({
        function: e.function,
        where: e.where,
        self_pct: pct(e.count),
        self_ms: Math.round(e.count * msPerSample),
      })),
    inclusive_by_area: sorted(areaInclusive).slice(0, top),
    self_by_area: sorted(areaSelf).slice(0, top),
    self_by_owner: sorted(ownerSelf).slice(0, top),
  };
}

export function formatProfileSummary(s: ProfileSummary): string {
  const lines = [
    `CPU profile: ${s.samples} samples over ${(s.window_ms / 1000).toFixed(1)} s`,
    '',
    'Top functions by self time:',
    ...s.top_self.map(
      (e) => `  ${e.self_pct.toFixed(1).padStart(5)}%  ${e.function.padEnd(40)} ${e.where}`,
    ),
    '',
    'Self time by area:',
    ...s.self_by_area.map((e) => `  ${e.pct.toFixed(1).padStart(5)}%  ${e.area}`),
    '',
    'Self time charged to the nearest package or app frame:',
    ...s.self_by_owner.map((e) => `  ${e.pct.toFixed(1).padStart(5)}%  ${e.area}`),
    '',
    'Samples with the area on the stack (inclusive; areas overlap):',
    ...s.inclusive_by_area.map((e) => `  ${e.pct.toFixed(1).padStart(5)}%  ${e.area}`),
  ];
  return lines.join('\n');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [file, from, to] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: tsx bench/profile.ts <file.cpuprofile> [fromUs toUs]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const window = from && to ? { fromUs: Number(from), toUs: Number(to) } : undefined;
  process.stdout.write(`${formatProfileSummary(summariseProfile(profile, window))}\n`);
}
