import { test } from "node:test";
import assert from "node:assert/strict";
import { checkDocuments, formatInvalid, withNamespace } from "./check-documents.js";

const netpol = (metadata: Record<string, unknown>) => ({
  apiVersion: "projectcalico.org/v3",
  kind: "NetworkPolicy",
  metadata,
  spec: { selector: "all()" },
});
const gnp = (metadata: Record<string, unknown>, spec: Record<string, unknown> = {}) => ({
  apiVersion: "projectcalico.org/v3",
  kind: "GlobalNetworkPolicy",
  metadata,
  spec,
});

const nsCases: { name: string; doc: unknown; ns?: string; want: unknown; error?: RegExp }[] = [
  { name: "namespaced kind gets default", doc: netpol({ name: "a" }), want: "default" },
  { name: "namespaced kind gets -n", doc: netpol({ name: "a" }), ns: "shop", want: "shop" },
  { name: "its own namespace is kept", doc: netpol({ name: "a", namespace: "dev" }), want: "dev" },
  {
    name: "matching -n is fine",
    doc: netpol({ name: "a", namespace: "dev" }),
    ns: "dev",
    want: "dev",
  },
  {
    name: "a different -n is an error at metadata.namespace",
    doc: netpol({ name: "a", namespace: "dev" }),
    ns: "shop",
    want: "dev",
    error: /"dev" does not match --namespace "shop"/,
  },
  { name: "cluster-scoped kinds get none", doc: gnp({ name: "a" }), ns: "shop", want: undefined },
];

for (const c of nsCases) {
  test(`withNamespace: ${c.name}`, () => {
    const r = withNamespace(c.doc, { namespace: c.ns });
    assert.equal((r.doc as { metadata: { namespace?: string } }).metadata.namespace, c.want);
    if (c.error) {
      assert.equal(r.error?.path, "metadata.namespace");
      assert.match(r.error.message, c.error);
    } else assert.equal(r.error, undefined);
  });
}

test("checkDocuments: valid ones come back with defaults, invalid ones with every error", () => {
  const r = checkDocuments(
    [
      { value: gnp({ name: "ok" }, { selector: "all()" }), source: "a.yaml#1" },
      {
        value: gnp({ name: "bad" }, { order: "first", ingress: [{ action: "allow" }] }),
        source: "a.yaml#2",
      },
      { value: { kind: "Nope" }, source: "b.yaml" },
    ],
    {},
  );
  assert.deepEqual(
    r.valid.map((v) => [v.source, v.kind.kind, (v.resource.spec as { tier?: string }).tier]),
    [["a.yaml#1", "GlobalNetworkPolicy", "default"]],
  );
  const text = formatInvalid(r.invalid);
  assert.match(text, /^GlobalNetworkPolicy "bad" \(a\.yaml#2\): spec\.order: /m);
  assert.match(
    text,
    /^GlobalNetworkPolicy "bad" \(a\.yaml#2\): spec\.ingress\[0\]\.action: "allow" is not one of/m,
  );
  assert.match(text, /^Nope "\(no name\)" \(b\.yaml\): kind: unknown kind "Nope"/m);
});
