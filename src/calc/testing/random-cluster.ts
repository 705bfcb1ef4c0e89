// Seeded random clusters for property tests: a few hosts, namespaces with
// labels, workloads and host endpoints with labels from small alphabets (so
// selectors often match), named ports, network sets, tiers, profiles and
// Calico and Kubernetes policies with random rules, plus random flows and
// random edits. Everything goes through validateResource: a generated
// resource the API would refuse is drawn again. Deterministic per seed.
import type { Resource } from "../../api/resource.js";
import type { FlowSpec, FlowEndSpec } from "./flows.js";
import { resourceKey, stored } from "./resources.js";
import { prng } from "../../util/prng.js";
export { prng };

type Doc = Record<string, unknown>;

export class Random {
  readonly #next: () => number;
  constructor(seed: number) {
    this.#next = prng(seed);
  }
  float(): number {
    return this.#next();
  }
  int(n: number): number {
    return Math.floor(this.#next() * n);
  }
  chance(p: number): boolean {
    return this.#next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  /** Each item with probability p, order kept. */
  subset<T>(items: readonly T[], p = 0.5): T[] {
    return items.filter(() => this.chance(p));
  }
}

const V3 = "projectcalico.org/v3";
export const HOSTS = ["node-1", "node-2", "node-3"] as const;
const NAMESPACES = ["ns-a", "ns-b", "ns-c"];
const APPS = ["a", "b", "c"];
const ROLES = ["x", "y"];

const SELECTORS = [
  "all()",
  "app == 'a'",
  "app == 'b'",
  "app != 'b'",
  "role in {'x', 'y'}",
  "role == 'x'",
  "has(role)",
  "!has(app)",
  "app == 'a' && role == 'y'",
  "app == 'c' || role == 'x'",
  "app not in {'a'}",
  "kind == 'ext'",
  "pcns.env == 'prod'",
  "app starts with 'b'",
  "inherited == 'yes'",
];
const NS_SELECTORS = ["env == 'prod'", "env == 'dev'", "all()", "global()", "has(team)"];
const PORT_ITEMS: readonly (number | string)[] = [80, 53, "8000:8100", "http", "dns", "metrics"];
const NETS = ["10.0.1.0/24", "10.0.0.0/16", "198.51.100.0/24", "192.168.0.0/24"];

function entityRule(r: Random, withPorts: boolean): Doc {
  const side: Doc = {};
  if (r.chance(0.4)) side["selector"] = r.pick(SELECTORS);
  if (r.chance(0.1)) side["notSelector"] = r.pick(SELECTORS);
  if (r.chance(0.15)) side["namespaceSelector"] = r.pick(NS_SELECTORS);
  if (r.chance(0.15)) side["nets"] = [r.pick(NETS)];
  if (r.chance(0.08)) side["notNets"] = [r.pick(NETS)];
  if (withPorts && r.chance(0.4)) side["ports"] = r.subset(PORT_ITEMS, 0.4);
  if (withPorts && r.chance(0.1)) side["notPorts"] = [r.pick(PORT_ITEMS)];
  if (r.chance(0.04)) side["serviceAccounts"] = { names: [r.pick(["sa-1", "sa-2"])] };
  if (r.chance(0.03)) side["serviceAccounts"] = { selector: "team == 'x'" };
  return side;
}

function rule(r: Random): Doc {
  const out: Doc = { action: r.pick(["Allow", "Allow", "Deny", "Log", "Pass"]) };
  const protocol = r.pick([undefined, undefined, "TCP", "UDP", 6, "ICMP", "SCTP"]);
  if (protocol !== undefined) out["protocol"] = protocol;
  if (r.chance(0.08)) out["notProtocol"] = r.pick(["UDP", "TCP", 1]);
  if (protocol === "ICMP") {
    const icmp = r.int(4);
    if (icmp === 0) out["icmp"] = { type: 8 };
    else if (icmp === 1) out["icmp"] = { type: 8, code: 0 };
    else if (icmp === 2) out["notICMP"] = { type: 0 };
  }
  if (r.chance(0.05)) out["ipVersion"] = r.pick([4, 6]);
  const ports = protocol === "TCP" || protocol === "UDP" || protocol === 6 || protocol === "SCTP";
  if (r.chance(0.5)) out["source"] = entityRule(r, ports);
  if (r.chance(0.5)) out["destination"] = entityRule(r, ports);
  return out;
}

/** Draws until the API accepts the document. */
function valid(r: Random, make: (r: Random) => Doc, tries = 50): Resource | undefined {
  for (let i = 0; i < tries; i++) {
    try {
      return stored(make(r));
    } catch {
      // drawn again
    }
  }
  return undefined;
}

function rules(r: Random, max: number): Doc[] {
  const n = r.int(max + 1);
  return Array.from({ length: n }, () => rule(r));
}

function profileDoc(r: Random, name: string): Doc {
  const spec: Doc = {};
  if (r.chance(0.6)) spec["labelsToApply"] = { inherited: r.pick(["yes", "no"]) };
  if (r.chance(0.7)) spec["ingress"] = rules(r, 2);
  if (r.chance(0.7)) spec["egress"] = rules(r, 2);
  return { apiVersion: V3, kind: "Profile", metadata: { name }, spec };
}

function namespaceProfileDoc(r: Random, ns: string): Doc {
  const labels: Record<string, string> = { "pcns.projectcalico.org/name": ns };
  labels["pcns.env"] = r.pick(["prod", "dev"]);
  if (r.chance(0.5)) labels["pcns.team"] = r.pick(["x", "y"]);
  const allow = r.chance(0.8);
  return {
    apiVersion: V3,
    kind: "Profile",
    metadata: { name: `kns.${ns}` },
    spec: {
      labelsToApply: labels,
      ingress: allow ? [{ action: "Allow" }] : rules(r, 2),
      egress: allow ? [{ action: "Allow" }] : rules(r, 2),
    },
  };
}

function labelsDoc(r: Random): Record<string, string> {
  const l: Record<string, string> = {};
  if (r.chance(0.85)) l["app"] = r.pick(APPS);
  if (r.chance(0.5)) l["role"] = r.pick(ROLES);
  return l;
}

const NAMED_PORTS: readonly Doc[] = [
  { name: "http", protocol: "TCP", port: 80 },
  { name: "http", protocol: "TCP", port: 8080 },
  { name: "dns", protocol: "UDP", port: 53 },
  { name: "metrics", protocol: 6, port: 9090 },
  { name: "http", protocol: "SCTP", port: 80 },
];

function workloadDoc(r: Random, index: number, ns: string, node: string): Doc {
  const pod = `pod-${index}`;
  const profiles = [`kns.${ns}`, ...r.subset(["p-1", "p-2"], 0.3)];
  if (r.chance(0.05)) profiles.push("p-missing");
  const ips = [`10.0.${HOSTS.indexOf(node as (typeof HOSTS)[number]) + 1}.${index + 1}`];
  if (r.chance(0.2)) ips.push(`fd00::${index + 1}`);
  const spec: Doc = {
    orchestrator: r.chance(0.9) ? "k8s" : "cni",
    node,
    endpoint: "eth0",
    ipNetworks: ips,
    profiles,
    interfaceName: `tw${pod}`,
  };
  if (spec["orchestrator"] === "k8s") spec["pod"] = pod;
  else spec["containerID"] = `c${index}`;
  const ports = r.subset(NAMED_PORTS, 0.3);
  const names = new Set<string>();
  const unique = ports.filter((p) => {
    const key = `${String(p["name"])}/${String(p["protocol"])}`;
    if (names.has(key)) return false;
    names.add(key);
    return true;
  });
  if (unique.length > 0) spec["ports"] = unique;
  if (r.chance(0.3)) spec["serviceAccountName"] = r.pick(["sa-1", "sa-2"]);
  const id = spec["orchestrator"] === "k8s" ? pod : `c${index}`;
  const name = `${node.replaceAll("-", "--")}-${String(spec["orchestrator"])}-${id.replaceAll("-", "--")}-eth0`;
  return {
    apiVersion: V3,
    kind: "WorkloadEndpoint",
    metadata: { name, namespace: ns, labels: labelsDoc(r) },
    spec,
  };
}

function hostEndpointDoc(r: Random, node: string): Doc {
  const i = HOSTS.indexOf(node as (typeof HOSTS)[number]) + 1;
  const spec: Doc = { node, interfaceName: "eth0", expectedIPs: [`192.168.0.${i}`] };
  if (r.chance(0.5)) spec["profiles"] = r.subset(["p-1", "p-2"], 0.5);
  if (r.chance(0.3)) spec["ports"] = [{ name: "http", protocol: "TCP", port: 80 }];
  const labels: Record<string, string> = { role: r.pick(ROLES) };
  if (r.chance(0.3)) labels["app"] = "c";
  return {
    apiVersion: V3,
    kind: "HostEndpoint",
    metadata: { name: `${node}-eth0`, labels },
    spec,
  };
}

function tierDoc(r: Random, name: string): Doc {
  return {
    apiVersion: V3,
    kind: "Tier",
    metadata: { name },
    spec: {
      order: r.pick([10, 100, 100, 1_000_000, 2_000_000]),
      defaultAction: r.pick(["Deny", "Pass"]),
    },
  };
}

export interface ClusterOptions {
  /**
   * Let policies name tiers that have no Tier resource (such a tier has no
   * order: it comes after every tier with one). Default false.
   */
  missingTiers?: boolean;
}

function policySpec(r: Random, tiers: readonly string[], global: boolean): Doc {
  const spec: Doc = { selector: r.pick(SELECTORS) };
  const tier = r.pick(tiers);
  if (tier !== "default") spec["tier"] = tier;
  if (r.chance(0.6)) spec["order"] = r.pick([1, 2, 2, 100]);
  spec["types"] = r.pick([["Ingress"], ["Egress"], ["Ingress", "Egress"]]);
  spec["ingress"] = rules(r, 3);
  spec["egress"] = rules(r, 3);
  if (global && r.chance(0.2)) spec["namespaceSelector"] = r.pick(NS_SELECTORS.slice(0, 3));
  if (global && r.chance(0.05)) {
    spec["applyOnForward"] = true;
    if (r.chance(0.5)) {
      spec["preDNAT"] = true;
      spec["types"] = ["Ingress"];
      spec["egress"] = [];
    }
  }
  return spec;
}

function policyDoc(r: Random, index: number, tiers: readonly string[]): Doc {
  const kind = r.pick(["GlobalNetworkPolicy", "NetworkPolicy", "NetworkPolicy", "k8s"]);
  if (kind === "k8s") return k8sPolicyDoc(r, index);
  const global = kind === "GlobalNetworkPolicy";
  const spec = policySpec(r, tiers, global);
  const tier = (spec["tier"] as string | undefined) ?? "default";
  const base = `pol-${index}`;
  const name = tier === "default" ? base : `${tier}.${base}`;
  const metadata: Doc = { name };
  if (!global) metadata["namespace"] = r.pick(NAMESPACES);
  return { apiVersion: V3, kind, metadata, spec };
}

function k8sPeer(r: Random): Doc {
  switch (r.int(4)) {
    case 0:
      return { podSelector: { matchLabels: { app: r.pick(APPS) } } };
    case 1:
      return { namespaceSelector: { matchLabels: { env: r.pick(["prod", "dev"]) } } };
    case 2:
      return {
        podSelector: { matchExpressions: [{ key: "role", operator: "Exists" }] },
        namespaceSelector: {},
      };
    default:
      return { ipBlock: { cidr: "10.0.0.0/16", except: ["10.0.2.0/24"] } };
  }
}

function k8sPortList(r: Random): Doc[] {
  return r.subset(
    [
      { protocol: "TCP", port: 80 },
      { protocol: "TCP", port: "http" },
      { protocol: "UDP", port: 53 },
      { protocol: "TCP", port: 8000, endPort: 8100 },
    ],
    0.3,
  );
}

function k8sPolicyDoc(r: Random, index: number): Doc {
  const spec: Doc = {
    podSelector: r.chance(0.4) ? {} : { matchLabels: { app: r.pick(APPS) } },
    policyTypes: r.pick([["Ingress"], ["Egress"], ["Ingress", "Egress"]]),
  };
  const k8sRules = (dir: "from" | "to") =>
    Array.from({ length: r.int(3) }, () => {
      const rr: Doc = {};
      if (r.chance(0.7)) rr[dir] = Array.from({ length: 1 + r.int(2) }, () => k8sPeer(r));
      const ports = k8sPortList(r);
      if (ports.length > 0) rr["ports"] = ports;
      return rr;
    });
  spec["ingress"] = k8sRules("from");
  spec["egress"] = k8sRules("to");
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: `k8s-${index}`, namespace: r.pick(NAMESPACES) },
    spec,
  };
}

function networkSetDoc(r: Random, index: number): Doc {
  const global = r.chance(0.5);
  const nets = [r.pick(["198.51.100.0/24", "203.0.113.0/25", "10.0.2.0/24", "2001:db8::/64"])];
  const metadata: Doc = { name: `set-${index}`, labels: { kind: "ext", app: r.pick(APPS) } };
  if (!global) metadata["namespace"] = r.pick(NAMESPACES);
  return {
    apiVersion: V3,
    kind: global ? "GlobalNetworkSet" : "NetworkSet",
    metadata,
    spec: { nets },
  };
}

/** A random small cluster. */
export function randomCluster(r: Random, options: ClusterOptions = {}): Resource[] {
  const out: Resource[] = [];
  const push = (x: Resource | undefined) => {
    if (x) out.push(x);
  };
  const namespaces = NAMESPACES.slice(0, 2 + r.int(2));
  for (const ns of namespaces) {
    if (r.chance(0.95)) push(valid(r, (rr) => namespaceProfileDoc(rr, ns)));
  }
  for (const p of ["p-1", "p-2"]) if (r.chance(0.9)) push(valid(r, (rr) => profileDoc(rr, p)));
  const hosts = HOSTS.slice(0, 2 + r.int(2));
  const nWorkloads = 3 + r.int(6);
  for (let i = 0; i < nWorkloads; i++) {
    const ns = r.pick(namespaces);
    const node = r.pick(hosts);
    push(valid(r, (rr) => workloadDoc(rr, i, ns, node)));
  }
  for (const h of hosts) if (r.chance(0.3)) push(valid(r, (rr) => hostEndpointDoc(rr, h)));
  const nSets = r.int(3);
  for (let i = 0; i < nSets; i++) push(valid(r, (rr) => networkSetDoc(rr, i)));
  const tiers = ["default"];
  // "a1" sorts before "default" by name, "t1" and "t2" after it.
  for (const t of ["a1", "t1", "t2"]) {
    if (r.chance(0.4)) {
      tiers.push(t);
      if (!options.missingTiers || r.chance(0.7)) push(valid(r, (rr) => tierDoc(rr, t)));
    }
  }
  if (r.chance(0.2)) push(valid(r, (rr) => tierDoc(rr, "default")));
  const nPolicies = 1 + r.int(6);
  for (let i = 0; i < nPolicies; i++) push(valid(r, (rr) => policyDoc(rr, i, tiers)));
  return dedupe(out);
}

function dedupe(resources: Resource[]): Resource[] {
  const byKey = new Map<string, Resource>();
  for (const x of resources) byKey.set(resourceKey(x), x);
  return [...byKey.values()];
}

/** One random edit: relabel, move, re-rule, delete or add something. */
export function randomEdit(r: Random, state: readonly Resource[], step: number): Resource[] {
  const out = [...state];
  const i = r.int(Math.max(out.length, 1));
  const target = out[i];
  const replace = (doc: Doc | undefined) => {
    if (!doc) return;
    const x = valid(r, () => doc, 1);
    if (x) out[i] = x;
  };
  switch (r.int(8)) {
    case 0:
    case 1: {
      // Relabel an endpoint or network set.
      if (
        !target ||
        !["WorkloadEndpoint", "HostEndpoint", "GlobalNetworkSet", "NetworkSet"].includes(
          target.kind,
        )
      )
        break;
      const labels = target.kind === "HostEndpoint" ? { role: r.pick(ROLES) } : labelsDoc(r);
      if (target.kind.endsWith("NetworkSet")) labels["kind"] = "ext";
      replace({ ...target, metadata: { ...target.metadata, labels } } as Doc);
      break;
    }
    case 2:
      // Delete anything but a tier (a policy must not be left in a tier with
      // no Tier resource: see ClusterOptions.missingTiers).
      if (target && target.kind !== "Tier") out.splice(i, 1);
      break;
    case 3: {
      // A new policy, in the default tier or in t1 (created if need be).
      const p = valid(r, (rr) => policyDoc(rr, 100 + step, ["default", "t1"]));
      if (p) out.push(p);
      const t1 = (p?.spec as { tier?: string } | undefined)?.tier === "t1";
      if (t1 && !out.some((x) => x.kind === "Tier" && x.metadata.name === "t1")) {
        const t = valid(r, (rr) => tierDoc(rr, "t1"));
        if (t) out.push(t);
      }
      break;
    }
    case 4: {
      // Rewrite a profile (namespace labels and rules).
      if (!target || target.kind !== "Profile") break;
      const name = target.metadata.name;
      replace(
        name.startsWith("kns.") ? namespaceProfileDoc(r, name.slice(4)) : profileDoc(r, name),
      );
      break;
    }
    case 5: {
      // Rewrite a policy's rules and order in place.
      if (!target || !target.kind.includes("Policy") || target.apiVersion !== V3) break;
      const spec = { ...(target.spec as Doc) };
      spec["ingress"] = rules(r, 3);
      spec["egress"] = rules(r, 3);
      spec["order"] = r.pick([1, 2, 50]);
      replace({ ...target, spec } as Doc);
      break;
    }
    case 6: {
      // Bring back a missing profile or namespace, or add a tier.
      const name = r.pick(["p-1", "p-2", "p-missing", "kns.ns-a", "kns.ns-b"]);
      const p = valid(r, (rr) =>
        name.startsWith("kns.") ? namespaceProfileDoc(rr, name.slice(4)) : profileDoc(rr, name),
      );
      if (p) out.push(p);
      if (r.chance(0.3)) {
        const t = valid(r, (rr) => tierDoc(rr, "t1"));
        if (t) out.push(t);
      }
      break;
    }
    default: {
      // A new workload somewhere.
      const w = valid(r, (rr) =>
        workloadDoc(rr, 50 + step, r.pick(NAMESPACES.slice(0, 2)), r.pick(HOSTS.slice(0, 2))),
      );
      if (w) out.push(w);
      break;
    }
  }
  return dedupe(out);
}

/** Random flows between the cluster's endpoints and a few outside addresses. */
export function randomFlows(r: Random, state: readonly Resource[], n: number): FlowSpec[] {
  const ends: FlowEndSpec[] = [{ ip: "198.51.100.7" }, { ip: "10.0.9.9" }, { ip: "203.0.113.200" }];
  for (const x of state) {
    if (x.kind === "WorkloadEndpoint") {
      ends.push({
        workload: { namespace: x.metadata.namespace ?? "default", name: x.metadata.name },
      });
    } else if (x.kind === "HostEndpoint") ends.push({ host: { name: x.metadata.name } });
  }
  const out: FlowSpec[] = [];
  for (let i = 0; i < n; i++) {
    const protocol = r.pick(["TCP", "TCP", "UDP", "ICMP", "SCTP"]);
    const flow: FlowSpec = { src: r.pick(ends), dst: r.pick(ends), protocol };
    if (protocol === "ICMP")
      flow.icmp = r.pick([
        { type: 8, code: 0 },
        { type: 0, code: 0 },
        { type: 8, code: 1 },
      ]);
    else {
      flow.srcPort = 40000;
      flow.dstPort = r.pick([80, 53, 8080, 8050, 9090, 22]);
    }
    out.push(flow);
  }
  return out;
}
