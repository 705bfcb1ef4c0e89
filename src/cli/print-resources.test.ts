import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "yaml";
import { lookupKind } from "../api/kinds.js";
import type { KindInfo } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { parseDocuments } from "../api/parse-documents.js";
import { printResources, resourceRef } from "./print-resources.js";
import type { PrintOptions } from "./print-resources.js";

const kind = (w: string): KindInfo => lookupKind(w)!;

const gnps: Resource[] = [
  {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name: "allow-dns", resourceVersion: "7", labels: { team: "net" } },
    spec: {
      tier: "default",
      order: 50,
      selector: "all()",
      types: ["Egress"],
      egress: [{ action: "Allow" }],
    },
  },
  {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name: "security.block", resourceVersion: "8" },
    spec: {
      tier: "security",
      order: 10,
      types: ["Ingress"],
      ingress: [{ action: "Deny" }, { action: "Pass" }],
    },
  },
];

const pool: Resource = {
  apiVersion: "projectcalico.org/v3",
  kind: "IPPool",
  metadata: { name: "v4" },
  spec: { cidr: "10.65.0.0/16", blockSize: 26, natOutgoing: true, nodeSelector: "all()" },
};

const netpols: Resource[] = [
  {
    apiVersion: "projectcalico.org/v3",
    kind: "NetworkPolicy",
    metadata: { name: "a", namespace: "shop" },
    spec: { order: 1, selector: "app == 'db'" },
  },
  {
    apiVersion: "projectcalico.org/v3",
    kind: "NetworkPolicy",
    metadata: { name: "b", namespace: "default" },
    spec: {},
  },
];

const base: PrintOptions = { format: "table", asList: true, withNamespace: false };

const tableCases: {
  name: string;
  kind: KindInfo;
  resources: Resource[];
  options: Partial<PrintOptions>;
  want: string;
}[] = [
  {
    name: "global network policies: order, tier, selector (empty = all())",
    kind: kind("gnp"),
    resources: gnps,
    options: {},
    want: "NAME             ORDER   TIER       SELECTOR\nallow-dns        50      default    all()\nsecurity.block   10      security   all()\n",
  },
  {
    name: "wide policies add types and rule counts",
    kind: kind("gnp"),
    resources: gnps.slice(1),
    options: { format: "wide" },
    want: "NAME             ORDER   TIER       SELECTOR   TYPES     INGRESS   EGRESS   APPLYONFORWARD\nsecurity.block   10      security   all()      Ingress   2         0        <none>\n",
  },
  {
    name: "ip pools: cidr, block size, nat, disabled defaulting to false",
    kind: kind("pool"),
    resources: [pool],
    options: {},
    want: "NAME   CIDR           BLOCKSIZE   NAT    DISABLED\nv4     10.65.0.0/16   26          true   false\n",
  },
  {
    name: "-A puts the namespace first",
    kind: kind("netpol"),
    resources: netpols,
    options: { withNamespace: true },
    want: "NAMESPACE   NAME   ORDER    TIER     SELECTOR\nshop        a      1        <none>   app == 'db'\ndefault     b      <none>   <none>   all()\n",
  },
  {
    name: "nodes show the AS number as (global) when inherited",
    kind: kind("node"),
    resources: [
      {
        apiVersion: "projectcalico.org/v3",
        kind: "Node",
        metadata: { name: "h1" },
        spec: { bgp: { ipv4Address: "192.168.10.11/24" } },
      },
      {
        apiVersion: "projectcalico.org/v3",
        kind: "Node",
        metadata: { name: "h2" },
        spec: { bgp: { asNumber: 65001, ipv6Address: "fd00::2/64" } },
      },
    ],
    options: {},
    want: "NAME   ASN        IPV4               IPV6\nh1     (global)   192.168.10.11/24   <none>\nh2     65001      <none>             fd00::2/64\n",
  },
  {
    name: "kubernetes network policies show the pod selector like kubectl",
    kind: kind("networkpolicy.networking.k8s.io"),
    resources: [
      {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "deny", namespace: "shop" },
        spec: {
          podSelector: {
            matchLabels: { app: "web" },
            matchExpressions: [{ key: "tier", operator: "In", values: ["a", "b"] }],
          },
        },
      },
      {
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "all", namespace: "shop" },
        spec: { podSelector: {} },
      },
    ],
    options: {},
    want: "NAME   POD-SELECTOR\ndeny   app=web,tier in (a,b)\nall    <none>\n",
  },
];

for (const c of tableCases) {
  test(`printResources table: ${c.name}`, () => {
    assert.equal(printResources(c.kind, c.resources, { ...base, ...c.options }), c.want);
  });
}

test("printResources name: kind.group/name lines", () => {
  assert.equal(
    printResources(kind("gnp"), gnps, { ...base, format: "name" }),
    "globalnetworkpolicy.projectcalico.org/allow-dns\nglobalnetworkpolicy.projectcalico.org/security.block\n",
  );
  assert.equal(resourceRef(kind("knp"), "x"), "networkpolicy.networking.k8s.io/x");
});

test("printResources yaml: one named resource is a single document", () => {
  const text = printResources(kind("gnp"), gnps.slice(0, 1), {
    ...base,
    format: "yaml",
    asList: false,
  });
  assert.deepEqual(parse(text), gnps[0]);
  assert.doesNotMatch(text, /items/);
});

test("printResources yaml: a list is a <Kind>List that parses back to the same resources", () => {
  const text = printResources(kind("gnp"), gnps, { ...base, format: "yaml", revision: "9" });
  const doc = parse(text) as { kind: string; metadata: unknown; items: unknown[] };
  assert.equal(doc.kind, "GlobalNetworkPolicyList");
  assert.deepEqual(doc.metadata, { resourceVersion: "9" });
  const parsed = parseDocuments(text, "out.yaml");
  assert.deepEqual(parsed.errors, []);
  assert.deepEqual(
    parsed.documents.map((d) => d.value),
    gnps,
  );
});

test("printResources yaml: an empty list has no items", () => {
  const doc = parse(printResources(kind("gnp"), [], { ...base, format: "yaml" })) as {
    items: unknown[];
  };
  assert.deepEqual(doc.items, []);
});

test("printResources json: a single resource and a list", () => {
  assert.deepEqual(
    JSON.parse(printResources(kind("pool"), [pool], { ...base, format: "json", asList: false })),
    pool,
  );
  const list = JSON.parse(printResources(kind("pool"), [pool], { ...base, format: "json" })) as {
    kind: string;
    items: unknown[];
  };
  assert.equal(list.kind, "IPPoolList");
  assert.deepEqual(list.items, [pool]);
});

test("printResources yaml: long selectors are not folded", () => {
  const long: Resource = {
    ...pool,
    spec: { cidr: "10.0.0.0/8", nodeSelector: `${"a == 'b' && ".repeat(20)}c == 'd'` },
  };
  const text = printResources(kind("pool"), [long], { ...base, format: "yaml", asList: false });
  assert.equal(text.split("\n").filter((l) => l.includes("nodeSelector")).length, 1);
  assert.deepEqual(parse(text), long);
});
