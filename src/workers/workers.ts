import type { Container } from '../container.js';
import type { Logger } from '../logger.js';

export interface Worker {
  name: string;
  /** One pass; returns how many items it handled (a full batch means "run again soon"). */
  runOnce(): Promise<number>;
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
      await sleep(handled > 0 ? 10 : intervalMs);
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
