import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    // Integration tests start processes and talk to a real cluster.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    // 2 cores: the server needs CPU too.
    maxWorkers: 2,
  },
});
