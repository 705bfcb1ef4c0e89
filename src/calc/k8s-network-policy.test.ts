// Table-driven tests of the Kubernetes NetworkPolicy translation. Each case
// runs a k8s document through validateResource (so it is defaulted as the
// API server would default it), translates it, and compares the whole
// Calico NetworkPolicy with the expected one. Every output must itself pass
// validateResource and already be in stored form (validation changes nothing).
//
// Semantics, for the reader: the translated policy sits in the default tier
// and selects its pods; when a packet in one of its `types` matches none of
// its Allow rules (a default-deny policy has none), the tier in which a
// policy applied but no rule decided drops it. That is how "selected pods
// deny by default in the selected directions" comes about: it needs no
// explicit Deny rule, and is tested with the evaluation code.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { K8sNetworkPolicy, LabelSelector } from "../api/schemas/k8s-network-policy.js";
import { validateResource } from "../api/validate.js";
import { isErrorCode } from "../util/errors.js";
import {
  K8S_ORCHESTRATOR_SELECTOR as ORCH,
  labelSelectorToSelector,
  translateK8sNetworkPolicy,
} from "./k8s-network-policy.js";

type Doc = Record<string, unknown>;

/** A k8s NetworkPolicy, validated and defaulted. */
function k8sPolicy(
  spec: Doc,
  metadata: Doc = { name: "web", namespace: "shop" },
): K8sNetworkPolicy {
  const result = validateResource({
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata,
    spec,
  });
  if (!result.ok) assert.fail(`test input is invalid: ${JSON.stringify(result.errors)}`);
  return result.resource as K8sNetworkPolicy;
}

/** The expected Calico policy for k8s policy "web" in namespace "shop". */
function calico(spec: Doc, metadata: Doc = { name: "knp.default.web", namespace: "shop" }): Doc {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "NetworkPolicy",
    metadata,
    spec: { tier: "default", order: 1000, selector: ORCH, ...spec },
  };
}

/** Translates, compares, and checks the output is valid and in stored form. */
function assertTranslates(input: K8sNetworkPolicy, expected: Doc): void {
  const out = translateK8sNetworkPolicy(input);
  assert.deepEqual(out, expected);
  const check = validateResource(out);
  if (!check.ok) assert.fail(`output is invalid: ${JSON.stringify(check.errors)}`);
  assert.deepEqual(check.resource, out, "validation changed the output");
}

interface Case {
  name: string;
  spec: Doc;
  expected: Doc;
}

const CASES: Case[] = [
  {
    name: "default-deny ingress: all pods, Ingress, no rules",
    spec: { podSelector: {}, policyTypes: ["Ingress"] },
    expected: { types: ["Ingress"] },
  },
  {
    name: "default-deny ingress: policyTypes omitted and no egress rules means Ingress",
    spec: {},
    expected: { types: ["Ingress"] },
  },
  {
    name: "default-deny all: both directions, no rules",
    spec: { podSelector: {}, policyTypes: ["Egress", "Ingress"] },
    expected: { types: ["Ingress", "Egress"] },
  },
  {
    name: "default-deny egress only",
    spec: { policyTypes: ["Egress"] },
    expected: { types: ["Egress"] },
  },
  {
    name: "allow from every pod in the same namespace",
    spec: {
      podSelector: { matchLabels: { app: "api" } },
      ingress: [{ from: [{ podSelector: {} }] }],
    },
    expected: {
      selector: `${ORCH} && app == 'api'`,
      types: ["Ingress"],
      ingress: [{ action: "Allow", source: { selector: ORCH } }],
    },
  },
  {
    name: "allow from labelled pods in the same namespace",
    spec: {
      podSelector: { matchLabels: { app: "api" } },
      ingress: [{ from: [{ podSelector: { matchLabels: { role: "frontend" } } }] }],
    },
    expected: {
      selector: `${ORCH} && app == 'api'`,
      types: ["Ingress"],
      ingress: [{ action: "Allow", source: { selector: `${ORCH} && role == 'frontend'` } }],
    },
  },
  {
    name: "allow from namespaces by label: pods of any label there",
    spec: {
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { team: "ops" } } }] }],
    },
    expected: {
      types: ["Ingress"],
      ingress: [
        { action: "Allow", source: { selector: ORCH, namespaceSelector: "team == 'ops'" } },
      ],
    },
  },
  {
    name: "allow from all namespaces: an empty namespaceSelector is all()",
    spec: { ingress: [{ from: [{ namespaceSelector: {} }] }] },
    expected: {
      types: ["Ingress"],
      ingress: [{ action: "Allow", source: { selector: ORCH, namespaceSelector: "all()" } }],
    },
  },
  {
    name: "pod and namespace selector in one peer: both on the same side",
    spec: {
      ingress: [
        {
          from: [
            {
              podSelector: { matchLabels: { role: "db" } },
              namespaceSelector: { matchLabels: { env: "prod" } },
            },
          ],
        },
      ],
    },
    expected: {
      types: ["Ingress"],
      ingress: [
        {
          action: "Allow",
          source: { selector: `${ORCH} && role == 'db'`, namespaceSelector: "env == 'prod'" },
        },
      ],
    },
  },
  {
    name: "ipBlock with except: nets and notNets",
    spec: {
      ingress: [
        {
          from: [
            { ipBlock: { cidr: "172.17.0.0/16", except: ["172.17.1.0/24", "172.17.2.0/24"] } },
          ],
        },
      ],
    },
    expected: {
      types: ["Ingress"],
      ingress: [
        {
          action: "Allow",
          source: { nets: ["172.17.0.0/16"], notNets: ["172.17.1.0/24", "172.17.2.0/24"] },
        },
      ],
    },
  },
  {
    name: "ipBlock CIDRs are written as their networks, IPv6 compressed",
    spec: {
      egress: [
        { to: [{ ipBlock: { cidr: "10.1.2.3/8" } }] },
        { to: [{ ipBlock: { cidr: "fd00:0:0:0:0:0:0:0/48", except: ["fd00:0:0:1::5/64"] } }] },
      ],
    },
    expected: {
      types: ["Ingress", "Egress"],
      egress: [
        { action: "Allow", destination: { nets: ["10.0.0.0/8"] } },
        { action: "Allow", destination: { nets: ["fd00::/48"], notNets: ["fd00:0:0:1::/64"] } },
      ],
    },
  },
  {
    name: "several peers: one rule each, in the given order",
    spec: {
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { app: "a" } } },
            { ipBlock: { cidr: "192.0.2.0/24" } },
            { namespaceSelector: { matchLabels: { ns: "b" } } },
          ],
        },
      ],
    },
    expected: {
      types: ["Ingress"],
      ingress: [
        { action: "Allow", source: { selector: `${ORCH} && app == 'a'` } },
        { action: "Allow", source: { nets: ["192.0.2.0/24"] } },
        { action: "Allow", source: { selector: ORCH, namespaceSelector: "ns == 'b'" } },
      ],
    },
  },
  {
    name: "ports without a protocol are TCP",
    spec: { ingress: [{ ports: [{ port: 8080 }] }] },
    expected: {
      types: ["Ingress"],
      ingress: [{ action: "Allow", protocol: "TCP", destination: { ports: [8080] } }],
    },
  },
  {
    name: "named ports are kept as names, in the given order when at most one port is numeric",
    spec: {
      ingress: [
        {
          from: [{ podSelector: { matchLabels: { app: "client" } } }],
          ports: [{ port: "http" }, { protocol: "TCP", port: 8443 }, { port: "metrics" }],
        },
      ],
    },
    expected: {
      types: ["Ingress"],
      ingress: [
        {
          action: "Allow",
          protocol: "TCP",
          source: { selector: `${ORCH} && app == 'client'` },
          destination: { ports: ["http", 8443, "metrics"] },
        },
      ],
    },
  },
  {
    name: "endPort makes a range; port equal to endPort is a single port",
    spec: {
      ingress: [
        {
          ports: [
            { port: 32000, endPort: 32768 },
            { protocol: "UDP", port: 5000, endPort: 5000 },
          ],
        },
      ],
    },
    expected: {
      types: ["Ingress"],
      ingress: [
        { action: "Allow", protocol: "TCP", destination: { ports: ["32000:32768"] } },
        { action: "Allow", protocol: "UDP", destination: { ports: [5000] } },
      ],
    },
  },
  {
    name: "numeric ports of one protocol are merged into sorted ranges after the named ones",
    spec: {
      ingress: [
        {
          ports: [
            { port: 9090 },
            { port: 82 },
            { port: "web" },
            { port: 80 },
            { port: 81 },
            { port: 9000, endPort: 9050 },
            { port: 9040, endPort: 9089 },
            { port: 81 },
          ],
        },
      ],
    },
    expected: {
      types: ["Ingress"],
      ingress: [
        {
          action: "Allow",
          protocol: "TCP",
          destination: { ports: ["web", "80:82", "9000:9090"] },
        },
      ],
    },
  },
  {
    name: "multiple protocols: one rule per protocol and peer, protocols sorted outermost",
    spec: {
      egress: [
        {
          to: [
            { namespaceSelector: { matchLabels: { name: "kube-system" } } },
            { ipBlock: { cidr: "10.96.0.10/32" } },
          ],
          ports: [
            { protocol: "UDP", port: 53 },
            { protocol: "TCP", port: 53 },
            { protocol: "SCTP", port: 9899 },
            { protocol: "UDP", port: 5353 },
          ],
        },
      ],
    },
    expected: {
      types: ["Ingress", "Egress"],
      egress: [
        {
          action: "Allow",
          protocol: "SCTP",
          destination: {
            selector: ORCH,
            namespaceSelector: "name == 'kube-system'",
            ports: [9899],
          },
        },
        {
          action: "Allow",
          protocol: "SCTP",
          destination: { nets: ["10.96.0.10/32"], ports: [9899] },
        },
        {
          action: "Allow",
          protocol: "TCP",
          destination: { selector: ORCH, namespaceSelector: "name == 'kube-system'", ports: [53] },
        },
        {
          action: "Allow",
          protocol: "TCP",
          destination: { nets: ["10.96.0.10/32"], ports: [53] },
        },
        {
          action: "Allow",
          protocol: "UDP",
          destination: {
            selector: ORCH,
            namespaceSelector: "name == 'kube-system'",
            ports: [53, 5353],
          },
        },
        {
          action: "Allow",
          protocol: "UDP",
          destination: { nets: ["10.96.0.10/32"], ports: [53, 5353] },
        },
      ],
    },
  },
  {
    name: "a port entry without port allows every port of its protocol, wherever it appears",
    spec: {
      ingress: [
        {
          ports: [{ port: 80 }, { protocol: "TCP" }, { port: 443 }, { protocol: "UDP", port: 53 }],
        },
        { ports: [{ protocol: "UDP" }] },
      ],
    },
    expected: {
      types: ["Ingress"],
      ingress: [
        { action: "Allow", protocol: "TCP" },
        { action: "Allow", protocol: "UDP", destination: { ports: [53] } },
        { action: "Allow", protocol: "UDP" },
      ],
    },
  },
  {
    name: "egress with ports only: any destination on those ports",
    spec: {
      policyTypes: ["Egress"],
      egress: [
        {
          ports: [
            { protocol: "UDP", port: 53 },
            { protocol: "TCP", port: 53 },
          ],
        },
      ],
    },
    expected: {
      types: ["Egress"],
      egress: [
        { action: "Allow", protocol: "TCP", destination: { ports: [53] } },
        { action: "Allow", protocol: "UDP", destination: { ports: [53] } },
      ],
    },
  },
  {
    name: "egress with peers and ports: both on the destination",
    spec: {
      podSelector: { matchLabels: { app: "api" } },
      policyTypes: ["Egress"],
      egress: [{ to: [{ podSelector: { matchLabels: { app: "db" } } }], ports: [{ port: 5432 }] }],
    },
    expected: {
      selector: `${ORCH} && app == 'api'`,
      types: ["Egress"],
      egress: [
        {
          action: "Allow",
          protocol: "TCP",
          destination: { selector: `${ORCH} && app == 'db'`, ports: [5432] },
        },
      ],
    },
  },
  {
    name: "empty rule {}: allow everything in that direction",
    spec: { policyTypes: ["Ingress", "Egress"], ingress: [{}], egress: [{}] },
    expected: {
      types: ["Ingress", "Egress"],
      ingress: [{ action: "Allow" }],
      egress: [{ action: "Allow" }],
    },
  },
  {
    name: "empty from and ports lists are the same as none",
    spec: { ingress: [{ from: [], ports: [] }] },
    expected: { types: ["Ingress"], ingress: [{ action: "Allow" }] },
  },
  {
    name: "policyTypes omitted with egress rules: Ingress and Egress",
    spec: { egress: [{}] },
    expected: { types: ["Ingress", "Egress"], egress: [{ action: "Allow" }] },
  },
  {
    name: "policyTypes Ingress only keeps egress rules but does not govern egress",
    spec: { policyTypes: ["Ingress"], egress: [{}] },
    expected: { types: ["Ingress"], egress: [{ action: "Allow" }] },
  },
  {
    name: "matchExpressions of every operator, after matchLabels in key order",
    spec: {
      podSelector: {
        matchLabels: { zone: "b", app: "web" },
        matchExpressions: [
          { key: "tier", operator: "In", values: ["web", "api"] },
          { key: "env", operator: "NotIn", values: ["dev"] },
          { key: "app.kubernetes.io/name", operator: "Exists" },
          { key: "legacy", operator: "DoesNotExist" },
        ],
      },
      ingress: [
        {
          from: [
            {
              namespaceSelector: {
                matchExpressions: [
                  { key: "kubernetes.io/metadata.name", operator: "In", values: ["a", "b"] },
                ],
              },
            },
          ],
        },
      ],
    },
    expected: {
      selector:
        `${ORCH} && app == 'web' && zone == 'b' && tier in { 'web', 'api' }` +
        ` && env not in { 'dev' } && has(app.kubernetes.io/name) && ! has(legacy)`,
      types: ["Ingress"],
      ingress: [
        {
          action: "Allow",
          source: {
            selector: ORCH,
            namespaceSelector: "kubernetes.io/metadata.name in { 'a', 'b' }",
          },
        },
      ],
    },
  },
];

describe("translateK8sNetworkPolicy", () => {
  for (const c of CASES) {
    it(c.name, () => assertTranslates(k8sPolicy(c.spec), calico(c.expected)));
  }

  it("puts a policy without a namespace in namespace default", () => {
    assertTranslates(
      k8sPolicy({}, { name: "deny" }),
      calico({ types: ["Ingress"] }, { name: "knp.default.deny", namespace: "default" }),
    );
  });

  it("copies resourceVersion and creationTimestamp and derives the uid as Calico does", () => {
    const input = k8sPolicy(
      {},
      {
        name: "web",
        namespace: "shop",
        uid: "12000000-0000-4F01-8F01-000000000001",
        resourceVersion: "42",
        creationTimestamp: "2024-05-01T10:00:00Z",
        labels: { app: "web" },
        annotations: { note: "not copied" },
      },
    );
    assertTranslates(
      input,
      calico(
        { types: ["Ingress"] },
        {
          name: "knp.default.web",
          namespace: "shop",
          // Bits reversed in every byte except the version and variant bytes.
          uid: "48000000-0000-4f80-8f80-000000000080",
          resourceVersion: "42",
          creationTimestamp: "2024-05-01T10:00:00Z",
        },
      ),
    );
  });

  it("leaves out a uid that is not a UUID", () => {
    const out = translateK8sNetworkPolicy(k8sPolicy({}, { name: "web", uid: "not-a-uuid" }));
    assert.equal(out.metadata.uid, undefined);
    assert.ok(!("uid" in out.metadata));
  });

  it("gives every rule objects of its own: changing one rule leaves the others alone", () => {
    const out = translateK8sNetworkPolicy(
      k8sPolicy({
        ingress: [
          {
            from: [{ ipBlock: { cidr: "10.0.0.0/8" } }, { ipBlock: { cidr: "192.0.2.0/24" } }],
            ports: [{ port: 80 }, { protocol: "UDP", port: 80 }],
          },
        ],
      }),
    );
    const rules = out.spec.ingress ?? [];
    assert.equal(rules.length, 4);
    rules[0]?.source?.nets?.push("10.1.0.0/16");
    rules[0]?.destination?.ports?.push(81);
    assert.deepEqual(rules[2]?.source?.nets, ["10.0.0.0/8"]);
    assert.deepEqual(rules[1]?.destination?.ports, [80]);
  });

  it("is deterministic: the same input gives equal output, whatever the key order", () => {
    const a = k8sPolicy({ podSelector: { matchLabels: { a: "1", b: "2", c: "3" } } });
    const b = k8sPolicy({ podSelector: { matchLabels: { c: "3", a: "1", b: "2" } } });
    assert.deepEqual(translateK8sNetworkPolicy(a), translateK8sNetworkPolicy(b));
  });
});

describe("labelSelectorToSelector", () => {
  const cases: { name: string; sel: LabelSelector; prefix?: string; expected: string }[] = [
    { name: "empty selector is all()", sel: {}, expected: "all()" },
    {
      name: "empty selector with a prefix is the prefix alone",
      sel: {},
      prefix: ORCH,
      expected: ORCH,
    },
    {
      name: "empty matchLabels and matchExpressions are all()",
      sel: { matchLabels: {}, matchExpressions: [] },
      expected: "all()",
    },
    { name: "one label", sel: { matchLabels: { app: "web" } }, expected: "app == 'web'" },
    {
      name: "labels in code-point order of their keys",
      sel: { matchLabels: { b: "2", B: "3", a: "1" } },
      expected: "B == '3' && a == '1' && b == '2'",
    },
    {
      name: "prefix comes first",
      sel: { matchLabels: { app: "web" } },
      prefix: ORCH,
      expected: `${ORCH} && app == 'web'`,
    },
    {
      name: "In keeps the values in their order",
      sel: { matchExpressions: [{ key: "env", operator: "In", values: ["prod", "dev"] }] },
      expected: "env in { 'prod', 'dev' }",
    },
    {
      name: "NotIn",
      sel: { matchExpressions: [{ key: "env", operator: "NotIn", values: ["dev"] }] },
      expected: "env not in { 'dev' }",
    },
    {
      name: "Exists",
      sel: { matchExpressions: [{ key: "example.com/role", operator: "Exists" }] },
      expected: "has(example.com/role)",
    },
    {
      name: "DoesNotExist",
      sel: { matchExpressions: [{ key: "role", operator: "DoesNotExist" }] },
      expected: "! has(role)",
    },
    {
      name: "expressions keep their order",
      sel: {
        matchExpressions: [
          { key: "z", operator: "Exists" },
          { key: "a", operator: "DoesNotExist" },
        ],
      },
      expected: "has(z) && ! has(a)",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const options = c.prefix === undefined ? undefined : { prefix: c.prefix };
      assert.equal(labelSelectorToSelector(c.sel, options), c.expected);
    });
  }

  it("rejects In without values, naming the key", () => {
    assert.throws(
      () =>
        labelSelectorToSelector({ matchExpressions: [{ key: "env", operator: "In", values: [] }] }),
      (err) => isErrorCode(err, "Invalid") && /"env".*In/.test(err.message),
    );
  });
});
