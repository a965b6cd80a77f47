import { defineConfig } from "vitest/config";

// The lab suite: real VMs, shared by every test, so one file at a time and generous timeouts.
export default defineConfig({
  test: {
    include: ["test/lab/**/*.lab.test.ts"],
    // Closes the SSH connections each file kept to the nodes (test/harness/lab.ts).
    setupFiles: ["test/lab/setup.ts"],
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 600_000,
  },
});
