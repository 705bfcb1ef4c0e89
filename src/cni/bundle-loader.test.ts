import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { bundleIsCurrent, loadBundle, runBundled } from "./bundle-loader.js";

const dir = mkdtempSync(join(tmpdir(), "twill-bundle-test-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in bundle: CommonJS exporting main(), which resolves with `code`. */
function writeBundle(name: string, code: number): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    `"use strict";\nconst os = require("node:os");\nexports.main = async () => (os.EOL === "\\n" ? ${code} : 99);\n`,
  );
  return path;
}

describe("bundle-loader", () => {
  it("runs the bundle's main() and writes the code cache after a successful ADD only", async () => {
    const bundle = writeBundle("a.cjs", 0);
    assert.equal(await runBundled(bundle, { CNI_COMMAND: "VERSION" }), 0);
    assert.throws(() => readFileSync(`${bundle}.cache`), /ENOENT/);
    assert.equal(await runBundled(bundle, { CNI_COMMAND: "ADD" }), 0);
    const cache = readFileSync(`${bundle}.cache`);
    assert.match(cache.toString("latin1", 0, 41), /^[0-9a-f]{40}\n$/);
    // Taken by the next run, and not written again.
    const program = loadBundle(bundle, `${bundle}.cache`);
    assert.equal(program.cacheAccepted, true);
    assert.equal(await program.main(), 0);

    const failing = writeBundle("b.cjs", 7);
    assert.equal(await runBundled(failing, { CNI_COMMAND: "ADD" }), 7);
    assert.throws(() => readFileSync(`${failing}.cache`), /ENOENT/);
  });

  it("never runs a cache made from another bundle, even one of the same length", async () => {
    const bundle = writeBundle("c.cjs", 3);
    assert.equal(await runBundled(bundle, { CNI_COMMAND: "ADD" }), 3);
    writeBundle("c.cjs", 0);
    assert.equal(await runBundled(bundle, { CNI_COMMAND: "ADD" }), 0);
    const fresh = loadBundle(bundle, `${bundle}.cache`);
    assert.equal(fresh.cacheAccepted, true, "rewritten for the new bundle");
    assert.equal(await fresh.main(), 0);
    // V8 alone would take it: its check is only the source's length.
    writeBundle("c.cjs", 5);
    const changed = loadBundle(bundle, `${bundle}.cache`);
    assert.equal(changed.cacheAccepted, false);
    assert.equal(await changed.main(), 5);
  });

  it("treats a bundle older than the modules tsc built as stale", () => {
    const bundle = writeBundle("d.cjs", 0);
    const module = join(dir, "d-main.js");
    writeFileSync(module, "");
    utimesSync(bundle, new Date(1_000_000), new Date(1_000_000));
    assert.equal(bundleIsCurrent(bundle, module), false);
    utimesSync(bundle, new Date(), new Date(Date.now() + 1000));
    assert.equal(bundleIsCurrent(bundle, module), true);
    assert.equal(bundleIsCurrent(bundle, join(dir, "no-such-module.js")), true);
    assert.equal(bundleIsCurrent(join(dir, "no-such-bundle.cjs"), module), false);
  });
});
