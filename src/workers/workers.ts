import type { Container } from '../container.js';
import type { Logger } from '../logger.js';

export interface Worker {
  name: string;
  /** One pass; returns how many items it handled. */
  runOnce(): Promise<number>;
  /**
   * For workers whose passes cost more the more often they run (a pass folds whatever has queued
   * up since the last one): run again at once only after a full batch, otherwise wait the
   * interval. Without it, any work done means "run again soon" (deliveries stay prompt).
   */
  batchSize?: number;
}

export interface Workers {
  stop(): Promise<void>;
}

/**
 * Runs each worker in its own loop. Workers coordinate through the database (SKIP LOCKED,
 * advisory locks), so any number of instances may run them.
 */
export function runWorkerLoops(workers: Worker[], intervalMs: number, logger: Logger): Workers {
  let stopping = false;
  const loops = workers.map(async (worker) => {
    while (!stopping) {
      let handled = 0;
      try {
        handled = await worker.runOnce();
      } catch (err) {
        logger.warn({ err, worker: worker.name }, 'worker pass failed');
      }
      if (stopping) break;
      const again = worker.batchSize === undefined ? handled > 0 : handled >= worker.batchSize;
      await sleep(again ? 10 : intervalMs);
    }
  });
  return {
    async stop() {
      stopping = true;
      await Promise.all(loops);
    },
  };
}

export function backgroundWorkers(c: Container): Worker[] {
  return c.workers;
}

export function startWorkers(c: Container): Workers {
  return runWorkerLoops(backgroundWorkers(c), c.config.WORKER_INTERVAL_MS, c.logger);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
