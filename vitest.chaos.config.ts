import { defineConfig } from 'vitest/config';

/**
 * The fault and abuse suite (`npm run test:chaos`): crashes, outages, slow dependencies, hostile
 * input, graceful shutdown. Files run one after another: several of them measure latency or run a
 * gateway process of their own, and must not compete for the machine's two cores.
 */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 240_000,
    hookTimeout: 180_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['default', 'json'],
    outputFile: { json: '.reports/vitest-chaos.json' },
  },
});
