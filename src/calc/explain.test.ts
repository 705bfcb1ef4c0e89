// Table-driven tests of explain: one table per sentence of the policy
// semantics in issue 3 ("Evaluation order", "Rules", fail-closed profiles,
// Kubernetes NetworkPolicy), each row a small cluster (a shared base plus the
// row's own resources, all run through validateResource so they are in stored
// form), a flow, and the exact Decision expected at each end.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Resource } from "../api/resource.js";
import { validateResource } from "../api/validate.js";
import { isErrorCode } from "../util/errors.js";
import type { Decision, Flow, FlowEnd } from "./explain.js";
import { explain } from "./explain.js";

const V3 = "projectcalico.org/v3";
type Doc = Record<string, unknown>;
type Labels = Record<string, string>;

const ALLOW = [{ action: "Allow" }];

function gnp(name: string, spec: Doc): Doc {
  return { apiVersion: V3, kind: "GlobalNetworkPolicy", metadata: { name }, spec };
}
function np(namespace: string, name: string, spec: Doc): Doc {
  return { apiVersion: V3, kind: "NetworkPolicy", metadata: { name, namespace }, spec };
}
function k8snp(namespace: string, name: string, spec: Doc): Doc {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, namespace },
    spec,
  };
}
function tier(name: string, spec: Doc = {}): Doc {
  return { apiVersion: V3, kind: "Tier", metadata: { name }, spec };
}
function profile(name: string, spec: Doc = {}): Doc {
  return { apiVersion: V3, kind: "Profile", metadata: { name }, spec };
}
function wepName(pod: string, orchestrator = "k8s"): string {
  return `node--1-${orchestrator}-${pod}-eth0`;
}
function wep(
  namespace: string,
  pod: string,
  ipNetworks: string[],
  opts: {
    labels?: Labels;
    profiles?: string[];
    ports?: Doc[];
    orchestrator?: "k8s" | "cni";
    serviceAccountName?: string;
  } = {},
): Doc {
  const orchestrator = opts.orchestrator ?? "k8s";
  return {
    apiVersion: V3,
    kind: "WorkloadEndpoint",
    metadata: { name: wepName(pod, orchestrator), namespace, labels: opts.labels ?? {} },
    spec: {
      orchestrator,
      node: "node-1",
      ...(orchestrator === "k8s" ? { pod } : { containerID: pod }),
      endpoint: "eth0",
      interfaceName: `tw${pod}`,
      ipNetworks,
      profiles: opts.profiles ?? [`kns.${namespace}`],
      ...(opts.ports ? { ports: opts.ports } : {}),
      ...(opts.serviceAccountName ? { serviceAccountName: opts.serviceAccountName } : {}),
    },
  };
}

// The base cluster: two namespaces whose kns profiles allow everything, a host
// endpoint, a global network set and a namespaced network set.
const BASE: Doc[] = [
  profile("kns.shop", { labelsToApply: { "pcns.env": "prod" }, ingress: ALLOW, egress: ALLOW }),
  profile("kns.ops", { labelsToApply: { "pcns.env": "dev" }, ingress: ALLOW, egress: ALLOW }),
  profile("host-open", { ingress: ALLOW, egress: ALLOW }),
  wep("shop", "web", ["10.65.0.1/32"], { labels: { app: "web" } }),
  wep("shop", "db", ["10.65.0.2/32"], {
    labels: { app: "db" },
    ports: [{ name: "pg", protocol: "TCP", port: 5432 }],
  }),
  wep("ops", "tool", ["10.65.1.1/32"], { labels: { app: "tool" } }),
  {
    apiVersion: V3,
    kind: "HostEndpoint",
    metadata: { name: "node-1-eth0", labels: { role: "host" } },
    spec: {
      node: "node-1",
      interfaceName: "eth0",
      expectedIPs: ["192.168.0.1"],
      profiles: ["host-open"],
    },
  },
  {
    apiVersion: V3,
    kind: "GlobalNetworkSet",
    metadata: { name: "office", labels: { role: "office" } },
    spec: { nets: ["198.51.100.0/24"] },
  },
  {
    apiVersion: V3,
    kind: "NetworkSet",
    metadata: { name: "partners", namespace: "shop", labels: { role: "partner" } },
    spec: { nets: ["203.0.113.0/24"] },
  },
];

function validated(docs: readonly Doc[]): Resource[] {
  return docs.map((doc) => {
    const r = validateResource(doc);
    if (!r.ok) throw new Error(`test resource is invalid: ${JSON.stringify(r.errors)}`);
    return r.resource;
  });
}

const w = (namespace: string, pod: string, orchestrator?: "k8s" | "cni"): FlowEnd => ({
  workload: { namespace, name: wepName(pod, orchestrator) },
});
const WEB = w("shop", "web");
const DB = w("shop", "db");
const TOOL = w("ops", "tool");
const HOST: FlowEnd = { host: { name: "node-1-eth0" } };
const ip = (a: string): FlowEnd => ({ ip: a });

const tcp = (src: FlowEnd, dst: FlowEnd, dstPort = 5432): Flow => ({
  src,
  dst,
  protocol: "TCP",
  dstPort,
});

const tierRule = (
  t: string,
  policy: string,
  ruleIndex: number,
  action: "Allow" | "Deny",
): Decision => ({ by: "rule", stage: "tier", tier: t, policy, ruleIndex, action });
const profileRule = (p: string, ruleIndex: number, action: "Allow" | "Deny"): Decision => ({
  by: "rule",
  stage: "profile",
  profile: p,
  ruleIndex,
  action,
});
const tierEnd = (t: string): Decision => ({ by: "tier-end", tier: t, action: "Deny" });
const NO_MATCH: Decision = { by: "no-match", action: "Deny" };
const NOT_APPLICABLE: Decision = { by: "not-applicable", action: "Allow" };
const SHOP_OUT = profileRule("kns.shop", 0, "Allow");
const SHOP_IN = profileRule("kns.shop", 0, "Allow");
const OPS_OUT = profileRule("kns.ops", 0, "Allow");
const OPS_IN = profileRule("kns.ops", 0, "Allow");
const HOST_OUT = profileRule("host-open", 0, "Allow");

interface Row {
  name: string;
  resources: Doc[];
  flow: Flow;
  egress: Decision;
  ingress: Decision;
  /** Lines (substrings) that must appear in the trace of either direction. */
  trace?: string[];
}

function runTable(rows: readonly Row[]): void {
  for (const row of rows) {
    it(row.name, () => {
      const state = { resources: validated([...BASE, ...row.resources]) };
      const out = explain(state, row.flow);
      assert.deepEqual(
        { egress: out.egress.decision, ingress: out.ingress.decision },
        { egress: row.egress, ingress: row.ingress },
        [...out.egress.trace, ...out.ingress.trace].join("\n"),
      );
      assert.equal(out.egress.action, row.egress.action);
      assert.equal(out.ingress.action, row.ingress.action);
      assert.equal(out.allowed, row.egress.action === "Allow" && row.ingress.action === "Allow");
      const trace = [...out.egress.trace, ...out.ingress.trace].join("\n");
      for (const line of row.trace ?? []) {
        assert.ok(trace.includes(line), `trace lacks ${JSON.stringify(line)}:\n${trace}`);
      }
    });
  }
}

const toDb = (ingress: unknown[], extra: Doc = {}): Doc => ({
  selector: "app == 'db'",
  ingress,
  ...extra,
});

describe("explain: tiers apply by order, ties by name", () => {
  runTable([
    {
      name: "the tier with the lower order decides first",
      resources: [
        tier("first", { order: 10 }),
        tier("second", { order: 20 }),
        gnp("second.deny", { tier: "second", ...toDb([{ action: "Deny" }]) }),
        gnp("first.allow", { tier: "first", ...toDb(ALLOW) }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("first", "first/first.allow", 0, "Allow"),
    },
    {
      name: "tiers of equal order go by name",
      resources: [
        tier("beta", { order: 10 }),
        tier("alpha", { order: 10 }),
        gnp("beta.deny", { tier: "beta", ...toDb([{ action: "Deny" }]) }),
        gnp("alpha.allow", { tier: "alpha", ...toDb(ALLOW) }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("alpha", "alpha/alpha.allow", 0, "Allow"),
    },
    {
      name: "the default tier has order 1000000 without a Tier resource",
      resources: [
        tier("late", { order: 2_000_000 }),
        gnp("late.deny", { tier: "late", ...toDb([{ action: "Deny" }]) }),
        gnp("allow-db", toDb(ALLOW)),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/allow-db", 0, "Allow"),
    },
    {
      name: "a tier without a Tier resource still enforces, with defaultAction Deny",
      resources: [
        gnp("security.only-tool", {
          tier: "security",
          ...toDb([{ action: "Allow", source: { selector: "app == 'tool'" } }]),
        }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("security"),
      trace: ["tier security (order none, defaultAction Deny, no Tier resource: defaults)"],
    },
    {
      name: "a tier without a Tier resource has no order: it comes after the default tier",
      resources: [
        gnp("security.deny", { tier: "security", ...toDb([{ action: "Deny" }]) }),
        gnp("allow-db", toDb(ALLOW)),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/allow-db", 0, "Allow"),
    },
  ]);
});

describe("explain: policies apply by order (none last), then name; rules in order", () => {
  runTable([
    {
      name: "the policy with the lower order decides first",
      resources: [
        gnp("a-deny", { order: 200, ...toDb([{ action: "Deny" }]) }),
        gnp("b-allow", { order: 100, ...toDb(ALLOW) }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/b-allow", 0, "Allow"),
    },
    {
      name: "a policy without an order comes after every ordered one",
      resources: [
        gnp("a-deny", toDb([{ action: "Deny" }])),
        gnp("z-allow", { order: 5000, ...toDb(ALLOW) }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/z-allow", 0, "Allow"),
    },
    {
      name: "policies of equal order go by name",
      resources: [
        gnp("b-deny", { order: 10, ...toDb([{ action: "Deny" }]) }),
        gnp("a-allow", { order: 10, ...toDb(ALLOW) }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/a-allow", 0, "Allow"),
    },
    {
      name: "the first matching rule decides",
      resources: [
        gnp(
          "rules",
          toDb([{ action: "Deny", protocol: "UDP" }, { action: "Allow" }, { action: "Deny" }]),
        ),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/rules", 1, "Allow"),
      trace: ["rule 0 (Deny): no match: protocol UDP, the flow's is 6"],
    },
  ]);
});

describe("explain: Allow, Deny, Log and Pass", () => {
  runTable([
    {
      name: "Deny drops",
      resources: [gnp("deny", toDb([{ action: "Deny" }, { action: "Allow" }]))],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/deny", 0, "Deny"),
    },
    {
      name: "Log records and goes on to the next rule",
      resources: [gnp("log", toDb([{ action: "Log" }, { action: "Deny" }]))],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/log", 1, "Deny"),
      trace: ["rule 0 (Log): matched: logged, continuing"],
    },
    {
      name: "Pass skips the rest of the tier, later policies included",
      resources: [
        tier("first", { order: 10 }),
        gnp("first.pass", {
          tier: "first",
          order: 1,
          ...toDb([{ action: "Pass" }, { action: "Deny" }]),
        }),
        gnp("first.deny", { tier: "first", order: 2, ...toDb([{ action: "Deny" }]) }),
        gnp("allow-db", toDb(ALLOW)),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/allow-db", 0, "Allow"),
      trace: ["passed: the rest of tier first is skipped"],
    },
    {
      name: "Pass in the last tier goes on to the profiles",
      resources: [gnp("pass", toDb([{ action: "Pass" }]))],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: SHOP_IN,
    },
    {
      name: "a tier in which a policy applied but no rule decided drops",
      resources: [
        tier("first", { order: 10 }),
        gnp("first.only-tool", {
          tier: "first",
          ...toDb([{ action: "Allow", source: { selector: "app == 'tool'" } }]),
        }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("first"),
    },
    {
      name: "a tier with defaultAction Pass goes on to the next tier when no rule decided",
      resources: [
        tier("first", { order: 10, defaultAction: "Pass" }),
        gnp("first.only-tool", {
          tier: "first",
          ...toDb([{ action: "Allow", source: { selector: "app == 'tool'" } }]),
        }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: SHOP_IN,
      trace: ["no rule decided in tier first: defaultAction Pass, next tier"],
    },
    {
      name: "a policy with no rules for the direction still applies and ends its tier",
      resources: [gnp("empty", { selector: "app == 'db'", types: ["Ingress"] })],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "both ends are checked: an egress deny at the source drops even when ingress allows",
      resources: [
        gnp("web-out", { selector: "app == 'web'", egress: [{ action: "Deny" }] }),
        gnp("allow-db", toDb(ALLOW)),
      ],
      flow: tcp(WEB, DB),
      egress: tierRule("default", "default/web-out", 0, "Deny"),
      ingress: tierRule("default", "default/allow-db", 0, "Allow"),
    },
  ]);
});

describe("explain: a policy whose types lack a direction has no effect in it", () => {
  runTable([
    {
      name: "an Egress-only policy does not apply to ingress",
      resources: [
        gnp("egress-only", {
          selector: "app == 'db'",
          types: ["Egress"],
          egress: [{ action: "Deny" }],
        }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: SHOP_IN,
    },
    {
      name: "an Egress-only policy applies to egress",
      resources: [
        gnp("egress-only", {
          selector: "app == 'db'",
          types: ["Egress"],
          egress: [{ action: "Deny" }],
        }),
      ],
      flow: tcp(DB, WEB, 80),
      egress: tierRule("default", "default/egress-only", 0, "Deny"),
      ingress: SHOP_IN,
    },
    {
      name: "an Ingress-only policy does not apply to egress",
      resources: [gnp("ingress-only", { selector: "all()", ingress: [{ action: "Deny" }] })],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/ingress-only", 0, "Deny"),
    },
  ]);
});

describe("explain: namespaces", () => {
  runTable([
    {
      name: "a NetworkPolicy does not apply outside its namespace",
      resources: [np("ops", "deny-all", { selector: "all()", ingress: [{ action: "Deny" }] })],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: SHOP_IN,
    },
    {
      name: "a NetworkPolicy applies in its namespace",
      resources: [np("ops", "deny-all", { selector: "all()", ingress: [{ action: "Deny" }] })],
      flow: tcp(WEB, TOOL),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/ops/deny-all", 0, "Deny"),
    },
    {
      name: "a NetworkPolicy's rule selector selects in the policy's namespace only",
      resources: [
        np("shop", "from-tool", toDb([{ action: "Allow", source: { selector: "app == 'tool'" } }])),
      ],
      flow: tcp(TOOL, DB),
      egress: OPS_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "a NetworkPolicy's rule selector matches in its own namespace",
      resources: [
        np("shop", "from-web", toDb([{ action: "Allow", source: { selector: "app == 'web'" } }])),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/shop/from-web", 0, "Allow"),
    },
    {
      name: "a namespaceSelector matches the labels of the namespace's kns profile",
      resources: [
        np(
          "shop",
          "from-dev",
          toDb([{ action: "Allow", source: { namespaceSelector: "env == 'dev'" } }]),
        ),
      ],
      flow: tcp(TOOL, DB),
      egress: OPS_OUT,
      ingress: tierRule("default", "default/shop/from-dev", 0, "Allow"),
    },
    {
      name: "a namespaceSelector does not match other namespaces",
      resources: [
        np(
          "shop",
          "from-dev",
          toDb([{ action: "Allow", source: { namespaceSelector: "env == 'dev'" } }]),
        ),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "a namespaceSelector can name the namespace by projectcalico.org/name",
      resources: [
        np(
          "shop",
          "from-ops",
          toDb([
            { action: "Allow", source: { namespaceSelector: "projectcalico.org/name == 'ops'" } },
          ]),
        ),
      ],
      flow: tcp(TOOL, DB),
      egress: OPS_OUT,
      ingress: tierRule("default", "default/shop/from-ops", 0, "Allow"),
    },
    {
      name: "a GlobalNetworkPolicy's namespaceSelector limits it to matching namespaces",
      resources: [
        gnp("dev-only", { namespaceSelector: "env == 'dev'", ingress: [{ action: "Deny" }] }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: SHOP_IN,
    },
    {
      name: "a GlobalNetworkPolicy's namespaceSelector applies in matching namespaces",
      resources: [
        gnp("dev-only", { namespaceSelector: "env == 'dev'", ingress: [{ action: "Deny" }] }),
      ],
      flow: tcp(WEB, TOOL),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/dev-only", 0, "Deny"),
    },
  ]);
});

const fromGlobal = gnp(
  "from-global",
  toDb([{ action: "Allow", source: { namespaceSelector: "global()" } }]),
);

describe("explain: selectors match endpoints and network sets by address", () => {
  runTable([
    {
      name: "global() selects host endpoints",
      resources: [fromGlobal],
      flow: tcp(HOST, DB),
      egress: HOST_OUT,
      ingress: tierRule("default", "default/from-global", 0, "Allow"),
    },
    {
      name: "global() selects global network sets",
      resources: [fromGlobal],
      flow: tcp(ip("198.51.100.7"), DB),
      egress: NOT_APPLICABLE,
      ingress: tierRule("default", "default/from-global", 0, "Allow"),
    },
    {
      name: "global() does not select namespaced network sets",
      resources: [fromGlobal],
      flow: tcp(ip("203.0.113.5"), DB),
      egress: NOT_APPLICABLE,
      ingress: tierEnd("default"),
    },
    {
      name: "global() does not select workload endpoints",
      resources: [fromGlobal],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "a selector matches an address in a matching global network set",
      resources: [
        gnp("office", toDb([{ action: "Allow", source: { selector: "role == 'office'" } }])),
      ],
      flow: tcp(ip("198.51.100.7"), DB),
      egress: NOT_APPLICABLE,
      ingress: tierRule("default", "default/office", 0, "Allow"),
    },
    {
      name: "a selector does not match an address outside every matching set",
      resources: [
        gnp("office", toDb([{ action: "Allow", source: { selector: "role == 'office'" } }])),
      ],
      flow: tcp(ip("198.51.101.1"), DB),
      egress: NOT_APPLICABLE,
      ingress: tierEnd("default"),
    },
    {
      name: "a NetworkPolicy's selector matches a network set in its namespace",
      resources: [
        np(
          "shop",
          "partners",
          toDb([{ action: "Allow", source: { selector: "role == 'partner'" } }]),
        ),
      ],
      flow: tcp(ip("203.0.113.5"), DB),
      egress: NOT_APPLICABLE,
      ingress: tierRule("default", "default/shop/partners", 0, "Allow"),
    },
    {
      name: "a selector matches a plain IP that is a matching endpoint's address",
      resources: [
        gnp("from-web", toDb([{ action: "Allow", source: { selector: "app == 'web'" } }])),
      ],
      flow: tcp(ip("10.65.0.1"), DB),
      egress: NOT_APPLICABLE,
      ingress: tierRule("default", "default/from-web", 0, "Allow"),
    },
    {
      name: "notSelector excludes what it selects",
      resources: [
        gnp("not-web", toDb([{ action: "Allow", source: { notSelector: "app == 'web'" } }])),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "notSelector matches what it does not select, in any namespace",
      resources: [
        np("shop", "not-web", toDb([{ action: "Allow", source: { notSelector: "app == 'web'" } }])),
      ],
      flow: tcp(TOOL, DB),
      egress: OPS_OUT,
      ingress: tierRule("default", "default/shop/not-web", 0, "Allow"),
    },
  ]);
});

const pgRule = (protocol: string, ports: (number | string)[], field = "ports") =>
  gnp("ports", {
    selector: "all()",
    ingress: [{ action: "Allow", protocol, destination: { [field]: ports } }],
  });

describe("explain: ports", () => {
  runTable([
    {
      name: "a named port matches the destination endpoint's port of that name",
      resources: [pgRule("TCP", ["pg"])],
      flow: tcp(WEB, DB, 5432),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/ports", 0, "Allow"),
    },
    {
      name: "a named port does not match another port",
      resources: [pgRule("TCP", ["pg"])],
      flow: tcp(WEB, DB, 5433),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "a named port needs the endpoint's port protocol",
      resources: [pgRule("UDP", ["pg"])],
      flow: { src: WEB, dst: DB, protocol: "UDP", dstPort: 5432 },
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "a named port is resolved against the endpoint on that side only",
      resources: [pgRule("TCP", ["pg"])],
      flow: tcp(WEB, TOOL, 5432),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "a port range includes its ends",
      resources: [pgRule("TCP", ["5000:5432"])],
      flow: tcp(WEB, DB, 5432),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/ports", 0, "Allow"),
    },
    {
      name: "a port range excludes ports past its end",
      resources: [pgRule("TCP", ["5000:5432"])],
      flow: tcp(WEB, DB, 5433),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "notPorts excludes its ports",
      resources: [pgRule("TCP", [80, "5400:5500"], "notPorts")],
      flow: tcp(WEB, DB, 5432),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "notPorts matches other ports",
      resources: [pgRule("TCP", [80, "5400:5500"], "notPorts")],
      flow: tcp(WEB, DB, 443),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/ports", 0, "Allow"),
    },
    {
      name: "a port criterion does not match a flow that gives no such port",
      resources: [
        gnp(
          "src-port",
          toDb([{ action: "Allow", protocol: "TCP", source: { ports: ["1024:65535"] } }]),
        ),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
      trace: ["the flow gives no source port"],
    },
  ]);
});

describe("explain: nets and notNets", () => {
  runTable([
    {
      name: "nets match an address inside",
      resources: [gnp("nets", toDb([{ action: "Allow", source: { nets: ["10.65.0.0/24"] } }]))],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/nets", 0, "Allow"),
    },
    {
      name: "nets do not match an address outside",
      resources: [gnp("nets", toDb([{ action: "Allow", source: { nets: ["10.65.0.0/24"] } }]))],
      flow: tcp(TOOL, DB),
      egress: OPS_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "notNets exclude an address inside",
      resources: [
        gnp("not-nets", toDb([{ action: "Allow", source: { notNets: ["10.65.0.1/32"] } }])),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "notNets match an address outside",
      resources: [
        gnp("not-nets", toDb([{ action: "Allow", source: { notNets: ["10.65.0.1/32"] } }])),
      ],
      flow: tcp(TOOL, DB),
      egress: OPS_OUT,
      ingress: tierRule("default", "default/not-nets", 0, "Allow"),
    },
    {
      name: "destination nets are checked at egress",
      resources: [
        gnp("web-out", {
          selector: "app == 'web'",
          egress: [{ action: "Allow", destination: { nets: ["198.51.100.0/24"] } }],
        }),
      ],
      flow: tcp(WEB, ip("198.51.100.7"), 443),
      egress: tierRule("default", "default/web-out", 0, "Allow"),
      ingress: NOT_APPLICABLE,
    },
    {
      name: "destination nets exclude other destinations at egress",
      resources: [
        gnp("web-out", {
          selector: "app == 'web'",
          egress: [{ action: "Allow", destination: { nets: ["198.51.100.0/24"] } }],
        }),
      ],
      flow: tcp(WEB, ip("8.8.8.8"), 443),
      egress: tierEnd("default"),
      ingress: NOT_APPLICABLE,
    },
    {
      name: "IPv4 notNets leave the rule IPv4-only: an IPv6 flow does not match it",
      resources: [
        wep("shop", "dual", ["10.65.0.9/32", "fd00::9/128"], { labels: { app: "dual" } }),
        gnp("dual", {
          selector: "app == 'dual'",
          ingress: [{ action: "Allow", source: { notNets: ["10.0.0.0/8"] } }],
        }),
      ],
      flow: tcp(ip("fd00::1"), w("shop", "dual"), 80),
      egress: NOT_APPLICABLE,
      ingress: tierEnd("default"),
      trace: ["source notNets are IPv4 and the flow is IPv6"],
    },
    {
      name: "IPv4 notNets match an IPv4 flow from outside them",
      resources: [
        wep("shop", "dual", ["10.65.0.9/32", "fd00::9/128"], { labels: { app: "dual" } }),
        gnp("dual", {
          selector: "app == 'dual'",
          ingress: [{ action: "Allow", source: { notNets: ["10.0.0.0/8"] } }],
        }),
      ],
      flow: tcp(ip("192.0.2.1"), w("shop", "dual"), 80),
      egress: NOT_APPLICABLE,
      ingress: tierRule("default", "default/dual", 0, "Allow"),
    },
  ]);
});

const icmpFlow = (icmp?: { type: number; code?: number }): Flow => ({
  src: WEB,
  dst: DB,
  protocol: "ICMP",
  ...(icmp ? { icmp } : {}),
});
const ruleOnDb = (rule: Doc) => [gnp("proto", toDb([rule]))];
const PROTO_ALLOW = tierRule("default", "default/proto", 0, "Allow");

describe("explain: protocols, ICMP and ipVersion", () => {
  runTable([
    {
      name: "icmp type and code match",
      resources: ruleOnDb({ action: "Allow", protocol: "ICMP", icmp: { type: 8, code: 0 } }),
      flow: icmpFlow({ type: 8, code: 0 }),
      egress: SHOP_OUT,
      ingress: PROTO_ALLOW,
    },
    {
      name: "icmp type mismatch",
      resources: ruleOnDb({ action: "Allow", protocol: "ICMP", icmp: { type: 8, code: 0 } }),
      flow: icmpFlow({ type: 0, code: 0 }),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "icmp code mismatch",
      resources: ruleOnDb({ action: "Allow", protocol: "ICMP", icmp: { type: 3, code: 4 } }),
      flow: icmpFlow({ type: 3, code: 1 }),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "icmp type alone matches any code",
      resources: ruleOnDb({ action: "Allow", protocol: "ICMP", icmp: { type: 3 } }),
      flow: icmpFlow({ type: 3, code: 1 }),
      egress: SHOP_OUT,
      ingress: PROTO_ALLOW,
    },
    {
      name: "an icmp criterion does not match a flow without an ICMP type",
      resources: ruleOnDb({ action: "Allow", protocol: "ICMP", icmp: { type: 8 } }),
      flow: icmpFlow(),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "notICMP excludes its type",
      resources: ruleOnDb({ action: "Allow", protocol: "ICMP", notICMP: { type: 8 } }),
      flow: icmpFlow({ type: 8 }),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "notICMP matches other types",
      resources: ruleOnDb({ action: "Allow", protocol: "ICMP", notICMP: { type: 8 } }),
      flow: icmpFlow({ type: 0 }),
      egress: SHOP_OUT,
      ingress: PROTO_ALLOW,
    },
    {
      name: "a protocol number matches the protocol's name in the flow",
      resources: ruleOnDb({ action: "Allow", protocol: 6 }),
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: PROTO_ALLOW,
    },
    {
      name: "a protocol name matches the protocol's number in the flow",
      resources: ruleOnDb({ action: "Allow", protocol: "UDP" }),
      flow: { src: WEB, dst: DB, protocol: 17, dstPort: 53 },
      egress: SHOP_OUT,
      ingress: PROTO_ALLOW,
    },
    {
      name: "a protocol does not match another",
      resources: ruleOnDb({ action: "Allow", protocol: "UDP" }),
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "notProtocol excludes its protocol",
      resources: ruleOnDb({ action: "Allow", notProtocol: "TCP" }),
      flow: { src: WEB, dst: DB, protocol: "tcp", dstPort: 80 },
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "notProtocol matches other protocols",
      resources: ruleOnDb({ action: "Allow", notProtocol: "TCP" }),
      flow: { src: WEB, dst: DB, protocol: "SCTP", dstPort: 80 },
      egress: SHOP_OUT,
      ingress: PROTO_ALLOW,
    },
    {
      name: "ipVersion 6 does not match an IPv4 flow",
      resources: ruleOnDb({ action: "Allow", ipVersion: 6 }),
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "ipVersion 4 matches an IPv4 flow",
      resources: ruleOnDb({ action: "Allow", ipVersion: 4 }),
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: PROTO_ALLOW,
    },
  ]);
});

const P1 = w("shop", "p1");
const withProfiles = (profiles: string[], extra: Doc[] = [], opts: Doc = {}): Doc[] => [
  wep("shop", "p1", ["10.65.0.50/32"], { profiles, ...opts }),
  profile("p-deny", { ingress: [{ action: "Deny" }] }),
  profile("p-allow", { ingress: ALLOW }),
  profile("p-log", { ingress: [{ action: "Log" }] }),
  profile("p-pass", { ingress: [{ action: "Pass" }, { action: "Deny" }] }),
  profile("p-none", {}),
  ...extra,
];

describe("explain: profiles after the tiers; fail closed", () => {
  runTable([
    {
      name: "profiles apply in order: an earlier Deny wins",
      resources: withProfiles(["p-deny", "p-allow"]),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: profileRule("p-deny", 0, "Deny"),
    },
    {
      name: "profiles apply in order: an earlier Allow wins",
      resources: withProfiles(["p-allow", "p-deny"]),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: profileRule("p-allow", 0, "Allow"),
    },
    {
      name: "Log in a profile goes on",
      resources: withProfiles(["p-log", "p-allow"]),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: profileRule("p-allow", 0, "Allow"),
      trace: ["rule 0 (Log): matched: logged, continuing"],
    },
    {
      name: "Pass in a profile skips to the next profile",
      resources: withProfiles(["p-pass", "p-allow"]),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: profileRule("p-allow", 0, "Allow"),
      trace: ["passed: the rest of profile p-pass is skipped"],
    },
    {
      name: "nothing accepted at the end of the profiles: deny",
      resources: withProfiles(["p-none", "p-log"]),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: NO_MATCH,
    },
    {
      name: "no policy and no profile: deny",
      resources: withProfiles([]),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: NO_MATCH,
    },
    {
      name: "no policy and no profile: deny at egress too",
      resources: withProfiles([]),
      flow: tcp(P1, WEB),
      egress: NO_MATCH,
      ingress: SHOP_IN,
    },
    {
      name: "a missing profile denies even when an existing one would allow",
      resources: withProfiles(["p-allow", "ghost"]),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: { by: "missing-profile", profile: "ghost", action: "Deny" },
    },
    {
      name: "a missing profile does not matter when a policy decides",
      resources: withProfiles(["ghost"], [gnp("allow-all", { selector: "all()", ingress: ALLOW })]),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/allow-all", 0, "Allow"),
    },
  ]);
});

describe("explain: endpoint labels", () => {
  runTable([
    {
      name: "labels are inherited from the endpoint's profiles' labelsToApply",
      resources: withProfiles(
        ["team-a", "p-allow"],
        [
          profile("team-a", { labelsToApply: { team: "a" } }),
          gnp("team-a", { selector: "team == 'a'", ingress: [{ action: "Deny" }] }),
        ],
      ),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/team-a", 0, "Deny"),
    },
    {
      name: "an endpoint's own label wins over an inherited one",
      resources: withProfiles(
        ["team-a", "p-allow"],
        [
          profile("team-a", { labelsToApply: { team: "a" } }),
          gnp("team-a", { selector: "team == 'a'", ingress: [{ action: "Deny" }] }),
        ],
        { labels: { team: "b" } },
      ),
      flow: tcp(WEB, P1),
      egress: SHOP_OUT,
      ingress: profileRule("p-allow", 0, "Allow"),
    },
    {
      name: "endpoints carry their namespace as projectcalico.org/namespace",
      resources: [
        gnp("ops", {
          selector: "projectcalico.org/namespace == 'ops'",
          ingress: [{ action: "Deny" }],
        }),
      ],
      flow: tcp(WEB, TOOL),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/ops", 0, "Deny"),
    },
    {
      name: "endpoints carry their orchestrator as projectcalico.org/orchestrator",
      resources: [
        wep("shop", "c1", ["10.65.0.60/32"], { orchestrator: "cni" }),
        gnp("cni", {
          selector: "projectcalico.org/orchestrator == 'cni'",
          ingress: [{ action: "Deny" }],
        }),
      ],
      flow: tcp(WEB, w("shop", "c1", "cni")),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/cni", 0, "Deny"),
    },
    {
      name: "a serviceAccounts name matches the endpoint's service account",
      resources: [
        wep("shop", "bot", ["10.65.0.70/32"], { serviceAccountName: "robot" }),
        np(
          "shop",
          "robots",
          toDb([{ action: "Allow", source: { serviceAccounts: { names: ["robot"] } } }]),
        ),
      ],
      flow: tcp(w("shop", "bot"), DB),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/shop/robots", 0, "Allow"),
    },
    {
      name: "a serviceAccounts name does not match other endpoints",
      resources: [
        np(
          "shop",
          "robots",
          toDb([{ action: "Allow", source: { serviceAccounts: { names: ["robot"] } } }]),
        ),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
  ]);
});

describe("explain: host endpoints", () => {
  runTable([
    {
      name: "a GlobalNetworkPolicy applies to a host endpoint it selects",
      resources: [gnp("hosts", { selector: "role == 'host'", ingress: [{ action: "Deny" }] })],
      flow: tcp(WEB, HOST, 22),
      egress: SHOP_OUT,
      ingress: tierRule("default", "default/hosts", 0, "Deny"),
    },
    {
      name: "a NetworkPolicy never applies to a host endpoint",
      resources: [np("shop", "all", { selector: "all()", ingress: [{ action: "Deny" }] })],
      flow: tcp(ip("192.0.2.1"), HOST, 22),
      egress: NOT_APPLICABLE,
      ingress: HOST_OUT,
    },
    {
      name: "preDNAT policy is listed but not evaluated",
      resources: [
        gnp("pre", {
          selector: "role == 'host'",
          preDNAT: true,
          applyOnForward: true,
          ingress: [{ action: "Deny" }],
        }),
      ],
      flow: tcp(ip("192.0.2.1"), HOST, 22),
      egress: NOT_APPLICABLE,
      ingress: profileRule("host-open", 0, "Allow"),
      trace: ["policy default/pre (preDNAT) selects this endpoint but is not evaluated"],
    },
  ]);
});

describe("explain: Kubernetes NetworkPolicy", () => {
  runTable([
    {
      name: "a default-deny policy denies ingress to the pods it selects",
      resources: [k8snp("shop", "default-deny", { podSelector: {}, policyTypes: ["Ingress"] })],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "a default-deny ingress policy leaves egress alone",
      resources: [k8snp("shop", "default-deny", { podSelector: {}, policyTypes: ["Ingress"] })],
      flow: tcp(DB, TOOL),
      egress: SHOP_OUT,
      ingress: OPS_IN,
    },
    {
      name: "a default-deny policy does not select non-Kubernetes workloads",
      resources: [
        wep("shop", "c1", ["10.65.0.60/32"], { orchestrator: "cni" }),
        k8snp("shop", "default-deny", { podSelector: {}, policyTypes: ["Ingress"] }),
      ],
      flow: tcp(WEB, w("shop", "c1", "cni")),
      egress: SHOP_OUT,
      ingress: SHOP_IN,
    },
    {
      name: "allow-from-namespace admits pods of a matching namespace",
      resources: [
        k8snp("shop", "allow-dev", {
          podSelector: { matchLabels: { app: "db" } },
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: "dev" } } }] }],
        }),
      ],
      flow: tcp(TOOL, DB),
      egress: OPS_OUT,
      ingress: tierRule("default", "default/shop/knp.default.allow-dev", 0, "Allow"),
    },
    {
      name: "allow-from-namespace refuses pods of other namespaces",
      resources: [
        k8snp("shop", "allow-dev", {
          podSelector: { matchLabels: { app: "db" } },
          ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: "dev" } } }] }],
        }),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
    {
      name: "an egress policy with an ipBlock and a port allows exactly that",
      resources: [
        k8snp("shop", "web-out", {
          podSelector: { matchLabels: { app: "web" } },
          policyTypes: ["Egress"],
          egress: [
            {
              to: [{ ipBlock: { cidr: "198.51.100.0/24" } }],
              ports: [{ protocol: "TCP", port: 443 }],
            },
          ],
        }),
      ],
      flow: tcp(WEB, ip("198.51.100.7"), 443),
      egress: tierRule("default", "default/shop/knp.default.web-out", 0, "Allow"),
      ingress: NOT_APPLICABLE,
    },
    {
      name: "an egress policy with an ipBlock and a port denies other ports",
      resources: [
        k8snp("shop", "web-out", {
          podSelector: { matchLabels: { app: "web" } },
          policyTypes: ["Egress"],
          egress: [
            {
              to: [{ ipBlock: { cidr: "198.51.100.0/24" } }],
              ports: [{ protocol: "TCP", port: 443 }],
            },
          ],
        }),
      ],
      flow: tcp(WEB, ip("198.51.100.7"), 80),
      egress: tierEnd("default"),
      ingress: NOT_APPLICABLE,
    },
  ]);
});

describe("explain: criteria twill cannot evaluate fail closed", () => {
  runTable([
    {
      name: "an Allow rule with an http match never matches",
      resources: [
        gnp("http", toDb([{ action: "Allow", protocol: "TCP", http: { methods: ["GET"] } }])),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
      trace: ["twill cannot evaluate http"],
    },
    {
      name: "a Deny rule with services is matched without them",
      resources: [
        gnp("svc", {
          selector: "app == 'web'",
          egress: [
            {
              action: "Deny",
              destination: { services: { name: "kube-dns", namespace: "kube-system" } },
            },
            { action: "Allow" },
          ],
        }),
      ],
      flow: tcp(WEB, ip("8.8.8.8"), 53),
      egress: tierRule("default", "default/svc", 0, "Deny"),
      ingress: NOT_APPLICABLE,
    },
    {
      name: "an Allow rule with a serviceAccounts selector never matches",
      resources: [
        np(
          "shop",
          "sa",
          toDb([{ action: "Allow", source: { serviceAccounts: { selector: "all()" } } }]),
        ),
      ],
      flow: tcp(WEB, DB),
      egress: SHOP_OUT,
      ingress: tierEnd("default"),
    },
  ]);
});

describe("explain: flows", () => {
  it("names the endpoints and their addresses in the result", () => {
    const out = explain({ resources: validated(BASE) }, tcp(WEB, DB));
    assert.equal(out.egress.endpoint, "workload/shop/node--1-k8s-web-eth0");
    assert.equal(out.ingress.endpoint, "workload/shop/node--1-k8s-db-eth0");
    assert.equal(out.egress.trace[0], "egress at workload/shop/node--1-k8s-web-eth0 (10.65.0.1)");
    assert.equal(out.allowed, true);
  });

  it("uses the address of the flow's family, inferred from the other end", () => {
    const state = {
      resources: validated([
        ...BASE,
        wep("shop", "dual", ["10.65.0.9/32", "fd00::9/128"], { labels: { app: "dual" } }),
      ]),
    };
    const out = explain(state, tcp(ip("fd00::1"), w("shop", "dual"), 80));
    assert.equal(out.ingress.trace[0], "ingress at workload/shop/node--1-k8s-dual-eth0 (fd00::9)");
  });

  const errors: { name: string; flow: Flow; code: "NotFound" | "Invalid"; message: RegExp }[] = [
    {
      name: "an unknown workload endpoint",
      flow: tcp(WEB, w("shop", "nope")),
      code: "NotFound",
      message: /destination workload endpoint "shop\/node--1-k8s-nope-eth0" not found/,
    },
    {
      name: "an unknown host endpoint",
      flow: tcp({ host: { name: "nope" } }, DB),
      code: "NotFound",
      message: /source host endpoint "nope" not found/,
    },
    {
      name: "an unknown protocol",
      flow: { src: WEB, dst: DB, protocol: "GRE" },
      code: "Invalid",
      message: /flow protocol "GRE" is not valid/,
    },
    {
      name: "mixed IP families",
      flow: tcp(ip("fd00::1"), ip("10.0.0.1")),
      code: "Invalid",
      message: /mixes IP families/,
    },
    {
      name: "a srcIP that is not the endpoint's",
      flow: { ...tcp(WEB, DB), srcIP: "10.65.0.99" },
      code: "Invalid",
      message: /srcIP 10.65.0.99 is not an address of workload\/shop\/node--1-k8s-web-eth0/,
    },
    {
      name: "an endpoint without an address of the flow's family",
      flow: tcp(ip("fd00::1"), DB),
      code: "Invalid",
      message: /has no IPv6 address/,
    },
  ];
  for (const e of errors) {
    it(`rejects ${e.name}`, () => {
      assert.throws(
        () => explain({ resources: validated(BASE) }, e.flow),
        (err: unknown) => isErrorCode(err, e.code) && e.message.test((err as Error).message),
      );
    });
  }
});
