import { defineConfig } from 'vitest/config';

const shared = {
  setupFiles: ['test/setup.ts'],
  // A hang detector, not a speed check: the two lanes share the machine, and I/O-bound tests slow down beside local mode.
  testTimeout: 60_000,
  hookTimeout: 120_000,
  pool: 'forks' as const,
};

/**
 * Two projects, each run one file at a time: the long files (the end-to-end and chaos files each
 * run all of local mode, and two at once would starve each other on a small machine), and the
 * rest (unit, integration, template tests, and intake fuzzing's 10,000 cases). `npm test` runs
 * them as two Vitest processes side by side (`test:long`, `test:rest`): in one process, projects
 * of one group share its worker count, and would run one after the other. Every file makes its
 * own tables, buckets and ports, so the two share only the CPU.
 */
const long = ['test/e2e/**/*.test.ts', 'test/chaos/**/*.test.ts'];

export default defineConfig({
  test: {
    reporters: ['default'],
    projects: [
      { test: { ...shared, name: 'long', include: long, fileParallelism: false } },
      { test: { ...shared, name: 'rest', include: ['test/**/*.test.ts'], exclude: long, fileParallelism: false } },
    ],
  },
});
