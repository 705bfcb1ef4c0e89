// `npm run build`, after tsc: the CNI plugin's program (cni-main.ts and all
// it imports) as one CommonJS file, dist/src/cni/twill-cni.cjs, which the
// executable (main.ts) runs with V8's code cache (bundle-loader.ts). One
// file instead of ~40 ES modules, and only the code the plugin runs: zod is
// the lean build of zod-lean.ts. Node's own modules stay outside.
//
//   node dist/src/cni/build-bundle.js [--metafile out.json]
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import type { Plugin } from "esbuild";
import { BUNDLE_NAME } from "./bundle-loader.js";

const source = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/** `zod` (exactly: not zod/v4, which the lean build imports) → zod-lean.ts. */
const leanZod: Plugin = {
  name: "lean-zod",
  setup(b) {
    b.onResolve({ filter: /^zod$/ }, () => ({ path: source("../../../src/cni/zod-lean.ts") }));
  },
};

const result = await build({
  entryPoints: [source("../../../src/cni/cni-main.ts")],
  outfile: source(`./${BUNDLE_NAME}`),
  bundle: true,
  platform: "node",
  format: "cjs",
  target: "node20",
  plugins: [leanZod],
  metafile: true,
  logLevel: "warning",
});
const at = process.argv.indexOf("--metafile");
const metafileOut = at >= 0 ? process.argv[at + 1] : undefined;
if (metafileOut !== undefined) writeFileSync(metafileOut, JSON.stringify(result.metafile));
