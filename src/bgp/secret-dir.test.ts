import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadBgpSecrets } from "./secret-dir.js";

test("reads <dir>/<secret>/<key> files as a Secret volume lays them out", async () => {
  const dir = mkdtempSync(join(tmpdir(), "twill-secrets-"));
  try {
    mkdirSync(join(dir, "bgp-passwords"));
    writeFileSync(join(dir, "bgp-passwords", "tor"), "s3cret\n");
    writeFileSync(join(dir, "bgp-passwords", "mesh"), "two\nlines");
    mkdirSync(join(dir, "..data"));
    writeFileSync(join(dir, "stray-file"), "ignored");
    assert.deepEqual(await loadBgpSecrets(dir), {
      "bgp-passwords": { mesh: "two\nlines", tor: "s3cret" },
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a missing directory means no secrets", async () => {
  assert.deepEqual(await loadBgpSecrets("/nonexistent/twill-secrets"), {});
});
