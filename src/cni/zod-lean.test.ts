import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { z as full } from "zod";
import { z } from "./zod-lean.js";

/** The built modules the plugin's program reaches from `entry` (relative imports, static or not). */
function reachable(entry: string): string[] {
  const seen = new Set<string>([entry]);
  const queue = [entry];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from\s*|import\s*\(\s*)"(\.\.?\/[^"]+\.js)"/g)) {
      const next = resolve(dirname(file), m[1] as string);
      if (!seen.has(next)) {
        seen.add(next);
        queue.push(next);
      }
    }
  }
  return [...seen];
}

describe("zod-lean (zod in the CNI bundle)", () => {
  it("has every zod builder the plugin's schemas use, each zod's own", () => {
    const entry = fileURLToPath(new URL("./cni-main.js", import.meta.url));
    const lean = z as Record<string, unknown>;
    const zod = full as unknown as Record<string, unknown>;
    const names = new Set<string>();
    for (const file of reachable(entry)) {
      // Built JavaScript: type-only uses (z.output, z.core...) are gone.
      for (const m of readFileSync(file, "utf8").matchAll(/\bz\.([A-Za-z_$][\w$]*)/g)) {
        names.add(m[1] as string);
      }
    }
    assert.ok(names.has("strictObject"), "the walk reached the resource schemas");
    for (const name of names) {
      assert.ok(name in lean, `z.${name} is used: add it to src/cni/zod-lean.ts`);
      assert.equal(lean[name], zod[name], `z.${name} is zod's`);
    }
  });
});
