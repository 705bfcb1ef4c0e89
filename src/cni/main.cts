#!/usr/bin/env node
// The CNI plugin executable, `twill` and `twill-ipam` (`twill cni install`
// points its wrappers here). The program is cni-main.ts; this runs it from
// the bundle the build makes, with V8's code cache (bundle-loader.cts):
//
//   main.cjs ─► twill-cni.cjs (+ .cache)   built by `npm run build`
//            └► cni-main.js                the modules as tsc built them, when
//                                          there is no bundle (tsc alone) or it
//                                          does not parse (caught half-written)
//
// CommonJS on purpose: a process whose entry is an ES module first sets up
// Node's ES module loader, ~4 ms of CPU that every CNI call would pay
// (measured: 40 ms for this entry against 44 ms for the same as main.js).
// main.js, the ES module entry of earlier installs, runs this file.
//
// After a plain `tsc` the bundle may be older than the modules: the tests
// that run the executable build it again first (testing/netns-lab.ts).
import fs = require("node:fs");
import path = require("node:path");
import loader = require("./bundle-loader.cjs");

async function run(): Promise<number> {
  const bundle = path.join(__dirname, loader.BUNDLE_NAME);
  const code = fs.existsSync(bundle) ? await loader.runBundled(bundle, process.env) : undefined;
  if (code !== undefined) return code;
  const { main } = await import("./cni-main.js");
  return main();
}

run().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
