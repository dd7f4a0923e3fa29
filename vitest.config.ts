import { defineConfig } from 'vitest/config';

const shared = {
  setupFiles: ['test/setup.ts'],
  testTimeout: 30_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
};

/**
 * Two lanes that run side by side, each one file at a time: the long files (the end-to-end and
 * chaos files each run all of local mode, and two at once would starve each other on a small
 * machine; intake fuzzing sends 10,000 cases), and everything else (unit, integration, template
 * tests). Every file makes its own tables, buckets and ports, so the lanes share only the CPU.
 */
const long = ['test/e2e/**/*.test.ts', 'test/chaos/**/*.test.ts', 'test/integration/intake-fuzz.test.ts'];

export default defineConfig({
  test: {
    reporters: ['default'],
    maxWorkers: 2,
    projects: [
      { test: { ...shared, name: 'long', include: long, fileParallelism: false } },
      { test: { ...shared, name: 'the rest', include: ['test/**/*.test.ts'], exclude: long, fileParallelism: false } },
    ],
  },
});
