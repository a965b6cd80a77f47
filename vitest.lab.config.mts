import { defineConfig } from "vitest/config";

// The lab suite: real VMs, shared by every test, so one file at a time and generous timeouts.
export default defineConfig({
  test: {
    include: ["test/lab/**/*.lab.test.ts"],
    // Closes the SSH connections each file kept to the nodes (test/harness/lab.ts).
    setupFiles: ["test/lab/setup.ts"],
    fileParallelism: false,
    // Two labs share the machine's two cores (lab/test.sh), and CI runs while the machine may be
    // busy: a test that took 188 s alone took over 300 s beside the other half. A timeout is a
    // bound against a hang, not a speed target.
    testTimeout: 900_000,
    hookTimeout: 900_000,
  },
});
