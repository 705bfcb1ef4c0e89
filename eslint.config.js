// Lint configuration. Besides the usual TypeScript rules it enforces the
// "pure core" habit from STYLE.md: the api, selector and calc modules (and the
// renderers, as they appear) may not import node: modules, touch `process`, or
// read a clock. Anything that needs the OS goes behind an interface in `deps`.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

const pureModules = [
  "src/api/**/*.ts",
  "src/selector/**/*.ts",
  "src/calc/**/*.ts",
  "src/**/render-*.ts",
  "src/ipam/block-*.ts",
  "src/bgp/bgp-model.ts",
  "src/bgp/bgp-inputs.ts",
  "src/lab/topology.ts",
  "src/lab/lab-resources.ts",
  "src/lab/route-coverage.ts",
  "src/lab/lab-check-plan.ts",
];

export default tseslint.config(
  { ignores: ["dist/**", "node_modules/**", "docs/**"] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": [
        "error",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" },
      ],
      "@typescript-eslint/consistent-type-imports": "error",
      "no-console": "error",
      eqeqeq: ["error", "always"],
    },
  },
  {
    // CommonJS on purpose (the CNI plugin's entry, see src/cni/main.cts):
    // under verbatimModuleSyntax its imports are `import x = require(...)`.
    files: ["**/*.cts"],
    rules: { "@typescript-eslint/no-require-imports": "off" },
  },
  {
    files: pureModules,
    ignores: ["**/*.test.ts", "src/api/gen-docs.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: ["node:*"],
              message: "pure modules do no I/O: pass OS access in through deps",
            },
            {
              group: [
                "fs",
                "child_process",
                "net",
                "os",
                "path",
                "process",
                "http",
                "https",
                "dgram",
                "crypto",
              ],
              message: "pure modules do no I/O: pass OS access in through deps",
            },
          ],
        },
      ],
      "no-restricted-globals": [
        "error",
        { name: "process", message: "pure modules may not touch process" },
        { name: "setTimeout", message: "pure modules have no clocks" },
        { name: "setInterval", message: "pure modules have no clocks" },
        { name: "performance", message: "pure modules have no clocks" },
      ],
      "no-restricted-properties": [
        "error",
        { object: "Date", property: "now", message: "pure modules have no clocks: inject one" },
      ],
      "no-restricted-syntax": [
        "error",
        {
          selector: "NewExpression[callee.name='Date'][arguments.length=0]",
          message: "pure modules have no clocks: inject one",
        },
      ],
    },
  },
  {
    files: ["src/cli/output.ts", "bench/**/*.ts", "src/bin/**/*.ts"],
    rules: { "no-console": "off" },
  },
);
