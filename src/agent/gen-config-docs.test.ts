import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CONFIG_PARAMS } from "./config.js";
import { renderConfigDocs } from "./gen-config-docs.js";

describe("agent config reference", () => {
  const text = renderConfigDocs();

  it("lists every setting with its flag and variable", () => {
    for (const p of CONFIG_PARAMS) {
      const line = text.split("\n").find((l) => l.startsWith(`| \`${p.name}\` |`));
      assert.ok(line, p.name);
      assert.ok(line.includes(`\`${p.env}\``), p.name);
      if (p.flag !== undefined) assert.ok(line.includes(`\`${p.flag}\``), p.name);
    }
  });
});
