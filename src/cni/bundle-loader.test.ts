import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import loader from "./bundle-loader.cjs";

const { loadBundle, runBundled } = loader;

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

  it("gives way (undefined) to a bundle that does not parse, as one caught half-written", async () => {
    const path = join(dir, "torn.cjs");
    writeFileSync(path, `"use strict";\nexports.main = async () => { return [1, 2`);
    assert.equal(await runBundled(path, { CNI_COMMAND: "ADD" }), undefined);
  });
});
