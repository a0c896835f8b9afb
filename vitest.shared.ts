import { defineProject } from 'vitest/config';

/** Each package's vitest project: resolve workspace packages to their TypeScript sources. */
export function punchcardProject(name: string) {
  return defineProject({
    resolve: { conditions: ['punchcard-src'] },
    ssr: { resolve: { conditions: ['punchcard-src'], externalConditions: ['punchcard-src'] } },
    test: {
      name,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: 30_000,
      hookTimeout: 60_000,
    },
  });
}
