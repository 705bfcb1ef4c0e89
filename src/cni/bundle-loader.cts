// Runs the CNI plugin from its bundle with V8's code cache. The plugin is a
// new process for every call, so loading code is most of its cost: as the
// modules tsc builds (~40 files, each resolved, read and compiled as an ES
// module) it was ~70 ms of CPU per call. The build (`npm run build`) also
// writes the whole program as one CommonJS file with esbuild:
//
//   dist/src/cni/twill-cni.cjs         the bundle (src/cni/cni-main.ts and all it imports)
//   dist/src/cni/twill-cni.cjs.cache   V8's code cache for it
//
// One file is one read and one compile. The code cache holds V8's compiled
// functions, so a call compiles (almost) nothing: it is made from a process
// that ran an ADD to the end, and so holds every function an ADD needed.
// Node 20 has no code cache for ES modules, hence CommonJS, run here through
// node:vm as Node's own CommonJS loader would run it.
//
// The cache is written by the first successful ADD that found none (or one
// that does not fit: another bundle, another Node.js version, other V8
// flags), to a temporary name and renamed into place, so concurrent first
// calls cannot tear it. Where it cannot be written (a read-only install)
// the plugin runs without. V8 itself checks only the source's length, so
// the file starts with the SHA-1 of the bundle it was made from: a rebuilt
// bundle never runs with the code of the one before.
//
// CommonJS (hence `import … = require`), so that the executable (main.cts)
// can be CommonJS too; ES modules import it as one object.
import crypto = require("node:crypto");
import fs = require("node:fs");
import nodeModule = require("node:module");
import path = require("node:path");
import vm = require("node:vm");

const { createHash } = crypto;
const { readFileSync, renameSync, rmSync, writeFileSync } = fs;
const { createRequire } = nodeModule;
const { basename, dirname, join } = path;
const { Script, constants: vmConstants } = vm;

const BUNDLE_NAME = "twill-cni.cjs";

/** The cache file: this header (the bundle's SHA-1, hex) and a newline, then V8's data. */
const HEADER_LENGTH = 41;

/** The bundle's exports that the loader uses. */
interface BundleExports {
  main(): Promise<number>;
}

interface BundledProgram {
  main(): Promise<number>;
  /** True when a code cache was given and V8 took it. */
  readonly cacheAccepted: boolean;
  /** Writes the code cache of what has been compiled so far; false when it cannot. */
  writeCodeCache(): boolean;
}

function readCache(cache: string): Buffer | undefined {
  try {
    return readFileSync(cache);
  } catch {
    return undefined; // None yet.
  }
}

/** Compiles the bundle (with `cache` when V8 takes it) and runs its top level. */
function loadBundle(bundle: string, cache: string): BundledProgram {
  const source = readFileSync(bundle, "utf8");
  const header = `${createHash("sha1").update(source).digest("hex")}\n`;
  const file = readCache(cache);
  const cachedData =
    file?.toString("latin1", 0, HEADER_LENGTH) === header
      ? file.subarray(HEADER_LENGTH)
      : undefined;
  // The wrapper Node's CommonJS loader puts around a file.
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
    {
      filename: bundle,
      // import() of Node's own modules (node:https), as in any module.
      importModuleDynamically: vmConstants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
      ...(cachedData ? { cachedData } : {}),
    },
  );
  const cacheAccepted = cachedData !== undefined && !script.cachedDataRejected;
  const module = { exports: {} as Partial<BundleExports> };
  const wrapper = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: unknown,
    filename: string,
    dirname: string,
  ) => void;
  wrapper(module.exports, createRequire(bundle), module, bundle, dirname(bundle));
  const { main } = module.exports;
  if (typeof main !== "function") throw new Error(`${bundle} does not export main()`);
  return {
    main,
    cacheAccepted,
    writeCodeCache: () => {
      // Many first calls at once: the ones that finish after another wrote it need not.
      if (readCache(cache)?.toString("latin1", 0, HEADER_LENGTH) === header) return true;
      const temp = join(dirname(cache), `.${basename(cache)}.${process.pid}.tmp`);
      try {
        const data = Buffer.concat([Buffer.from(header, "latin1"), script.createCachedData()]);
        writeFileSync(temp, data, { mode: 0o644 });
        renameSync(temp, cache);
        return true;
      } catch {
        rmSync(temp, { force: true });
        return false;
      }
    },
  };
}

/**
 * Runs the bundled program and, after a successful ADD that had no usable
 * code cache, writes one. Resolves with the exit code, or undefined when
 * the bundle is not JavaScript (caught half-written by something that does
 * not write it by rename): the caller runs the modules instead.
 */
async function runBundled(
  bundle: string,
  env: Record<string, string | undefined>,
): Promise<number | undefined> {
  let program: BundledProgram;
  try {
    program = loadBundle(bundle, `${bundle}.cache`);
  } catch (err) {
    if (err instanceof SyntaxError) return undefined;
    throw err;
  }
  const code = await program.main();
  if (code === 0 && env["CNI_COMMAND"] === "ADD" && !program.cacheAccepted) {
    program.writeCodeCache();
  }
  return code;
}

export = { BUNDLE_NAME, loadBundle, runBundled };
