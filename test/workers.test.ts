import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';
import { runWorkerLoops, type Worker } from '../src/workers/workers.js';

/** Runs one worker loop for `ms` and counts its passes. */
async function passesIn(worker: Omit<Worker, 'name' | 'runOnce'>, handled: number, ms: number) {
  let passes = 0;
  const loops = runWorkerLoops(
    [
      {
        name: 'counting',
        ...worker,
        runOnce: () => {
          passes += 1;
          return Promise.resolve(handled);
        },
      },
    ],
    1_000,
    createLogger('silent'),
  );
  await new Promise((resolve) => setTimeout(resolve, ms));
  await loops.stop();
  return passes;
}

describe('worker loops', () => {
  it('run again soon after any work, or after a full batch when the worker has a batch size', async () => {
    // 10 ms apart while there is work; the interval (1 s) otherwise.
    expect(await passesIn({}, 1, 300)).toBeGreaterThan(5);
    expect(await passesIn({}, 0, 300)).toBe(1);
    expect(await passesIn({ batchSize: 100 }, 100, 300)).toBeGreaterThan(5);
    expect(await passesIn({ batchSize: 100 }, 99, 300)).toBe(1);
  });
});
