#!/usr/bin/env node
// The CNI plugin executable, `twill` and `twill-ipam` (`twill cni install`
// points its wrappers here). The program is cni-main.ts; this runs it from
// the bundle the build makes, with V8's code cache (bundle-loader.ts):
//
//   main.js ─► twill-cni.cjs (+ .cache)   built by `npm run build`, current
//           └► cni-main.js                the modules as tsc built them, when
//                                         there is no bundle or it is older
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { BUNDLE_NAME, bundleIsCurrent, runBundled } from "./bundle-loader.js";

const here = dirname(fileURLToPath(import.meta.url));
const bundle = join(here, BUNDLE_NAME);
let code: number;
if (bundleIsCurrent(bundle, join(here, "cni-main.js"))) {
  code = await runBundled(bundle, process.env);
} else {
  const { main } = await import("./cni-main.js");
  code = await main();
}
process.exit(code);
