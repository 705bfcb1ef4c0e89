// The CNI plugin's program (cni-main.ts and all it imports) as one CommonJS
// file, dist/src/cni/twill-cni.cjs, which the executable (main.ts) runs with
// V8's code cache (bundle-loader.ts). One file instead of ~40 ES modules, and
// only the code the plugin runs: zod is the lean build of zod-lean.ts.
// Node's own modules stay outside. esbuild reads the TypeScript sources, so
// the bundle is as current as src/, whatever tsc last built.
//
//   node dist/src/cni/build-bundle.js [--metafile out.json]   (npm run build, after tsc)
import { renameSync, statSync, writeFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Metafile, Plugin } from "esbuild";
import loader from "./bundle-loader.cjs";

const { BUNDLE_NAME } = loader;

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/** Where the bundle goes: beside the built executable. */
export const BUNDLE_PATH = here(`./${BUNDLE_NAME}`);

/** `zod` (exactly: not zod/v4, which the lean build imports) → zod-lean.ts. */
const leanZod: Plugin = {
  name: "lean-zod",
  setup(b) {
    b.onResolve({ filter: /^zod$/ }, () => ({ path: here("../../../src/cni/zod-lean.ts") }));
  },
};

/**
 * Builds the bundle, written under a temporary name and renamed into place
 * (a plugin starting meanwhile reads the old one or the new one, never half).
 */
export async function buildBundle(): Promise<Metafile> {
  // esbuild is a devDependency: loaded only to build.
  const { build } = await import("esbuild");
  const result = await build({
    entryPoints: [here("../../../src/cni/cni-main.ts")],
    outfile: BUNDLE_PATH,
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    plugins: [leanZod],
    metafile: true,
    write: false,
    logLevel: "warning",
  });
  const [output] = result.outputFiles;
  if (!output) throw new Error("esbuild wrote no bundle");
  const temp = `${BUNDLE_PATH}.${process.pid}.tmp`;
  writeFileSync(temp, output.contents);
  renameSync(temp, BUNDLE_PATH);
  return result.metafile;
}

/**
 * Whether the bundle is at least as new as the modules tsc built last
 * (tsc writes every file it builds, cni-main.js among them).
 */
export function bundleIsCurrent(): boolean {
  try {
    return statSync(BUNDLE_PATH).mtimeMs >= statSync(here("./cni-main.js")).mtimeMs;
  } catch {
    return false;
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const metafile = await buildBundle();
  const at = process.argv.indexOf("--metafile");
  const out = at >= 0 ? process.argv[at + 1] : undefined;
  if (out !== undefined) writeFileSync(out, JSON.stringify(metafile));
}
