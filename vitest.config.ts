import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "examples/*/src/**/*.test.ts", "bench/**/*.test.ts"],
    exclude: ["**/node_modules/**", "**/dist/**"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Each file gets a fresh module graph; servers listen on port 0, so files can run in parallel.
    pool: "forks",
    // The console report, plus a JSON summary that .ci/run turns into a plain "N passed, N failed" line.
    reporters: ["default", ["json", { outputFile: "test-results/vitest.json" }]],
    fileParallelism: true,
  },
});
