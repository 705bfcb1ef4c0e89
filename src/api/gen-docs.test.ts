// Tests of the reference-docs generator and of the registry it reads: every
// example validates, every field of every kind is described (an undocumented
// field fails here), and pages carry names, scope, flattened fields,
// defaults and the example.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { z } from "zod";
import YAML from "yaml";
import { KINDS, kindById } from "./kinds.js";
import { SCHEMAS } from "./schemas/index.js";
import { validateResource } from "./validate.js";
import {
  describeType,
  fieldRows,
  generateReferenceDocs,
  GENERATED_MARKER,
  inputJsonSchema,
  pageFileName,
  renderIndex,
  renderKindPage,
} from "./gen-docs.js";

describe("the schema registry", () => {
  for (const kind of KINDS) {
    it(`has a valid example for ${kind.id}`, () => {
      const entry = SCHEMAS[kind.id];
      const r = validateResource(entry.example);
      assert.ok(r.ok, `${kind.id} example: ${JSON.stringify(!r.ok && r.errors, null, 1)}`);
      assert.equal(r.kind?.id, kind.id);
    });

    it(`describes every field of ${kind.id}`, () => {
      const undocumented = fieldRows(SCHEMAS[kind.id].schema)
        .filter((r) => !r.description || r.description.trim() === "")
        .map((r) => r.path);
      assert.deepEqual(
        undocumented,
        [],
        `${kind.id} fields without .describe(): ${undocumented.join(", ")}`,
      );
    });
  }
});

describe("fieldRows", () => {
  it("flattens nested objects with dots and list items with []", () => {
    const schema = z.strictObject({
      spec: z.strictObject({
        rules: z
          .array(
            z.strictObject({
              action: z.enum(["Allow", "Deny"]).describe("What to do."),
              ports: z
                .array(z.union([z.number(), z.string()]))
                .optional()
                .describe("Ports."),
            }),
          )
          .describe("Rules."),
        peer: z
          .strictObject({ name: z.string().describe("Name.") })
          .optional()
          .describe("Peer."),
      }),
    });
    const rows = fieldRows(schema).map((r) => [r.path, r.type, r.required]);
    assert.deepEqual(rows, [
      ["spec.rules", "list of objects", true],
      ["spec.rules[].action", '"Allow" | "Deny"', true],
      ["spec.rules[].ports", "list of (number or string)", false],
      ["spec.peer", "object", false],
      ["spec.peer.name", "string", true],
    ]);
  });

  it("shows defaults, written-out defaults and ranges", () => {
    const rows = fieldRows(SCHEMAS.IPPool.schema);
    const byPath = new Map(rows.map((r) => [r.path, r]));
    assert.equal(byPath.get("spec.natOutgoing")?.default, "false");
    assert.equal(byPath.get("spec.nodeSelector")?.default, '"all()"');
    assert.equal(byPath.get("spec.blockSize")?.default, "26 (IPv4), 122 (IPv6)");
    assert.equal(byPath.get("spec.cidr")?.required, true);
    const bgp = new Map(fieldRows(SCHEMAS.BGPConfiguration.schema).map((r) => [r.path, r]));
    assert.equal(bgp.get("spec.asNumber")?.default, "64512");
    assert.equal(bgp.get("spec.listenPort")?.type, "integer (1-65535)");
    const peer = new Map(fieldRows(SCHEMAS.BGPPeer.schema).map((r) => [r.path, r]));
    assert.ok(peer.has("spec.password.secretKeyRef.key"));
  });

  it("marks Calico fields twill ignores", () => {
    const rows = fieldRows(SCHEMAS.FelixConfiguration.schema);
    const bpf = rows.find((r) => r.path === "spec.bpfLogLevel");
    assert.equal(bpf?.ignored, true);
    assert.equal(rows.find((r) => r.path === "spec.logSeverityScreen")?.ignored, false);
  });
});

describe("describeType", () => {
  it("names literals, enums, unions, lists and maps", () => {
    const table: [z.ZodType, string][] = [
      [z.literal("v3"), '"v3"'],
      [z.enum(["A", "B"]), '"A" | "B"'],
      [z.union([z.number(), z.string()]), "number or string"],
      [z.array(z.string()), "list of string"],
      [z.record(z.string(), z.string()), "map of string to string"],
      [z.number().int().min(0).max(255), "integer (0-255)"],
      [z.number().int().min(1), "integer (≥ 1)"],
      [z.boolean(), "boolean"],
      [z.unknown(), "any"],
    ];
    for (const [schema, want] of table) {
      const js = inputJsonSchema(schema);
      assert.equal(
        describeType(js, (s) => s ?? {}),
        want,
      );
    }
  });
});

describe("renderKindPage", () => {
  it("gives kind, apiVersion, scope, CLI names, fields and the example", () => {
    const kind = kindById("IPPool");
    const page = renderKindPage(kind, SCHEMAS.IPPool);
    assert.ok(page.startsWith(GENERATED_MARKER));
    assert.match(page, /^# IPPool$/m);
    assert.match(page, /\| apiVersion \| `projectcalico\.org\/v3` \|/);
    assert.match(page, /\| scope \| cluster \|/);
    assert.match(page, /`ippool`, `ippools`, `ipp`, `ipps`, `pool`, `pools`/);
    assert.match(page, /\| `spec\.blockSize` \| integer \| `26 \(IPv4\), 122 \(IPv6\)` \|/);
    assert.match(page, /\| `spec\.cidr` \| string \(required\) \|/);
    const yaml = /```yaml\n([\s\S]*?)\n```/.exec(page)?.[1];
    assert.deepEqual(YAML.parse(yaml ?? ""), SCHEMAS.IPPool.example);
  });

  it("escapes pipes in table cells", () => {
    const page = renderKindPage(kindById("IPPool"), SCHEMAS.IPPool);
    assert.match(page, /"Never" \\\| "Always" \\\| "CrossSubnet"/);
  });

  it("lists ignored fields in their own section, grouped by reason", () => {
    const page = renderKindPage(kindById("FelixConfiguration"), SCHEMAS.FelixConfiguration);
    const [fields, ignored] = page.split("## Recognised but ignored");
    assert.ok(ignored, "no ignored section");
    assert.doesNotMatch(fields ?? "", /spec\.bpfLogLevel/);
    assert.match(ignored, /`spec\.bpfEnabled`, `spec\.bpfAttachType`/);
    assert.doesNotMatch(
      page.split("## Recognised but ignored")[0] ?? "",
      /Recognised; twill ignores it/,
    );
  });

  it("says namespaced for namespaced kinds", () => {
    const page = renderKindPage(kindById("NetworkPolicy"), SCHEMAS.NetworkPolicy);
    assert.match(page, /\| scope \| namespaced \|/);
  });
});

describe("generateReferenceDocs", () => {
  it("writes one page per kind and an index linking each", () => {
    const pages = generateReferenceDocs();
    assert.equal(pages.size, KINDS.length + 1);
    const index = pages.get("README.md") ?? "";
    assert.equal(index, renderIndex(KINDS));
    for (const k of KINDS) {
      assert.ok(pages.has(pageFileName(k)), k.id);
      assert.ok(index.includes(`[${k.kind}](${pageFileName(k)})`), k.id);
    }
    assert.ok(pages.has("networkpolicies.networking.k8s.io.md"));
  });
});
