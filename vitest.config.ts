import { defineConfig } from 'vitest/config';

/**
 * Two projects. `unit` needs nothing but Node (its setup generates the schema validators when they
 * are missing); `integration` starts real registries and moves real bytes, and its setup refuses to
 * start without the system tools. `npm test` runs both; `npm run test:unit` only the first.
 */
export default defineConfig({
  test: {
    // Integration tests give real registries room, but keep the whole suite well under the
    // 10-minute budget.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], globalSetup: ['test/support/unit-setup.ts'] },
      },
      {
        extends: true,
        test: { name: 'integration', include: ['test/integration/**/*.test.ts'], globalSetup: ['test/support/global-setup.ts'] },
      },
    ],
  },
});
