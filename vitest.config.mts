import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    exclude: ["test/lab/**"],
    testTimeout: 60_000,
    // One temp folder for the run, removed at its end; no /etc file written (see the file).
    globalSetup: ["test/helpers/globalSetup.ts"],
  },
});
