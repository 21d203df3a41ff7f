import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Two cores: more files at once only makes every timing-sensitive test slower.
    maxWorkers: 2,
    pool: 'forks',
    env: { LOG_LEVEL: 'silent' },
  },
});
