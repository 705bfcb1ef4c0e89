#!/usr/bin/env node
// The CNI plugin executable, `twill` and `twill-ipam` (`twill cni install`
// points its wrappers here). The program is cni-main.ts; this runs it from
// the bundle the build makes, with V8's code cache (bundle-loader.ts):
//
//   main.js ─► twill-cni.cjs (+ .cache)   built by `npm run build`
//           └► cni-main.js                the modules as tsc built them, when
//                                         there is no bundle (tsc alone) or it
//                                         does not parse (caught half-written)
//
// After a plain `tsc` the bundle may be older than the modules: the tests
// that run the executable build it again first (testing/netns-lab.ts).
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BUNDLE_NAME, runBundled } from "./bundle-loader.js";

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, BUNDLE_NAME);
let code = existsSync(bundle) ? await runBundled(bundle, process.env) : undefined;
if (code === undefined) {
  const { main } = await import("./cni-main.js");
  code = await main();
}
process.exit(code);
