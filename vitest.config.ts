import { defineConfig } from "vitest/config";

// Two test sets: `unit` needs nothing but Node; `integration` needs root, network
// namespaces and the Debian packages .ci/run installs. Integration files run one at a
// time because they share the kernel (namespaces, FRR pathspaces).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
