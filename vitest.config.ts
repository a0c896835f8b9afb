import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['libs/*/vitest.config.ts', 'services/*/vitest.config.ts', 'test/*/vitest.config.ts', 'bench/vitest.config.ts'],
    reporters: ['default', './scripts/vitest-summary.ts'],
  },
});
