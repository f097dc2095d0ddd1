import { defineConfig } from 'vitest/config';

// Unit tests run in parallel; integration/e2e tests share loop devices, Ironic
// instances and namespaces, so each of those files runs alone (see Makefile).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 120_000,
    reporters: ['default'],
    // The agent's own log is for operators; tests read results, not log lines
    // (child agent processes set their own level).
    env: { METAL_AGENT_LOG_LEVEL: 'silent' },
  },
});
