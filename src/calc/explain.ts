// explain: which tier, policy and rule decide a flow, in each direction. A
// brute-force reference evaluator of twill's policy semantics (issue 3,
// "Evaluation order" and "Rules"): it recomputes everything from the whole
// cluster state on every call, with no index and no cache, so that it is
// obviously right and the incremental calc graph can be checked against it.
// Labels and selectors come from model.ts, so the two cannot disagree there.
//
// Per direction: egress is evaluated at the source endpoint, ingress at the
// destination endpoint; the flow is allowed when both allow.
//
//   tiers by order (ties by name)
//     └ policies that apply, by order (none = last) then name
//         └ rules in order: Allow accepts, Deny drops, Log logs and goes on,
//           Pass skips the rest of the tier
//     └ a policy applied but no rule decided: drop, unless defaultAction Pass
//   profiles in order: Allow accepts, Deny drops, Log goes on, Pass skips the
//   rest of that profile (as Felix does: the profile chain returns without the
//   accept mark); nothing accepted (or no profiles): drop
//
// Choices, where the issue leaves room (the calc graph must make the same):
// - Selectors match addresses, as the dataplane's IP sets do: a rule side's
//   selector matches when the flow's address on that side is an address of an
//   endpoint (workload ipNetworks, host endpoint expectedIPs) whose labels
//   match, or lies in the nets of a matching NetworkSet / GlobalNetworkSet.
//   This holds for named endpoints and plain IPs alike; notSelector is the
//   negation of the same test.
// - Named ports: a port name matches when an endpoint holding the flow's
//   address on that side (and matching that side's selector, if any) has a
//   `ports` entry with that name, the flow's protocol and the flow's port.
// - A rule whose nets/notNets on some side are all of the other IP family
//   does not match (Felix skips such a rule for that family).
// - A criterion on a field the flow does not give (a port, the ICMP type or
//   code) does not match, for ports and notPorts, icmp and notICMP alike.
// - Criteria twill cannot evaluate: `services` (no Service resources),
//   `http` (no application-layer proxy) and `serviceAccounts.selector` (no
//   service account labels). Fail closed: a Deny rule with one is evaluated
//   without it (it denies more, never less); an Allow, Log or Pass rule with
//   one never matches.
// - A tier that has no Tier resource behaves as one created with an empty
//   spec: no order (after every tier with one), defaultAction Deny; its
//   policies stay in force rather than being ignored. The default tier
//   always has order 1000000, with or without a resource.
// - A policy applies when policyEndpointSelector matches the endpoint's
//   effective labels and its `types` include the direction. Only normal-mode
//   policy is evaluated: GlobalNetworkPolicies with preDNAT or doNotTrack
//   (host endpoints only) are listed in the trace but not evaluated, and
//   applyOnForward changes nothing, because explain covers traffic to and from
//   the endpoints themselves, not traffic forwarded through a host.
// - If the endpoint names a profile that does not exist, the profile stage
//   denies at once (the first missing one is reported), without evaluating
//   the profiles that do exist (LocalEndpoint.missingProfiles).
// - An {ip} end is never evaluated as an endpoint, even when the address
//   belongs to one: it gets "not-applicable". Workload ends are named by the
//   WorkloadEndpoint resource's namespace and name; host ends by the
//   HostEndpoint's name. Failsafe ports and connection tracking are not
//   modelled: every flow is judged as a new connection.
// - Should the state hold two resources of one kind with the same name (and
//   namespace), the later one wins.
import { cidrContainsIP, formatIP, parseCIDR, parseIP } from "../api/ip.js";
import type { CIDR, IPAddress } from "../api/ip.js";
import { kindOf } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import type { HostEndpoint } from "../api/schemas/host-endpoint.js";
import type { K8sNetworkPolicy } from "../api/schemas/k8s-network-policy.js";
import type {
  GlobalNetworkPolicy,
  NetworkPolicy,
  PolicyType,
} from "../api/schemas/network-policy.js";
import type { GlobalNetworkSet, NetworkSet } from "../api/schemas/network-set.js";
import type { Profile } from "../api/schemas/profile.js";
import { parsePort } from "../api/schemas/rule.js";
import type { EntityRule, Rule } from "../api/schemas/rule.js";
import { DEFAULT_TIER_ORDER } from "../api/schemas/tier.js";
import type { Tier } from "../api/schemas/tier.js";
import type { WorkloadEndpoint } from "../api/schemas/workload-endpoint.js";
import type { Selector } from "../selector/index.js";
import { TwillError } from "../util/errors.js";
import { translateK8sNetworkPolicy } from "./k8s-network-policy.js";
import type { Labels } from "./model.js";
import {
  compareOrderThenName,
  DEFAULT_TIER,
  effectiveLabels,
  namespaceLabels,
  namespaceProfileName,
  policyEndpointSelector,
  PROTOCOL_NUMBERS,
  protocolNumberOf,
  ruleSideNotSelector,
  ruleSideSelector,
} from "./model.js";

export interface ClusterState {
  /** Validated resources (stored form) of any kind; kinds explain does not use are ignored. */
  resources: readonly Resource[];
}

/** One end of a flow: a workload endpoint, a host endpoint (by HostEndpoint name) or a plain address. */
export type FlowEnd =
  { workload: { namespace: string; name: string } } | { host: { name: string } } | { ip: string };

export interface Flow {
  src: FlowEnd;
  dst: FlowEnd;
  /** A protocol name (any case) or number. */
  protocol: string | number;
  srcPort?: number;
  dstPort?: number;
  icmp?: { type: number; code?: number };
  /** Inferred from the addresses when omitted. */
  ipVersion?: 4 | 6;
  /** Which of the source endpoint's addresses; default its first of the flow's family. */
  srcIP?: string;
  /** Which of the destination endpoint's addresses; default its first of the flow's family. */
  dstIP?: string;
}

export type Decision =
  | {
      by: "rule";
      stage: "tier";
      tier: string;
      /** As CompiledPolicy.id: `<tier>/<name>` or `<tier>/<namespace>/<name>`. */
      policy: string;
      ruleIndex: number;
      action: "Allow" | "Deny";
    }
  /** A policy applied in the tier but no rule decided, and the tier's defaultAction is Deny. */
  | { by: "tier-end"; tier: string; action: "Deny" }
  | { by: "rule"; stage: "profile"; profile: string; ruleIndex: number; action: "Allow" | "Deny" }
  | { by: "missing-profile"; profile: string; action: "Deny" }
  /** Nothing accepted: end of the profiles, or no profiles. */
  | { by: "no-match"; action: "Deny" }
  /** This end is not a twill endpoint (a plain IP): no policy here. */
  | { by: "not-applicable"; action: "Allow" };

export interface DirectionExplanation {
  /** `workload/<namespace>/<name>` or `host/<name>` (as LocalEndpoint.id); absent for a plain IP. */
  endpoint?: string;
  action: "Allow" | "Deny";
  decision: Decision;
  /** Human-readable lines: each tier, policy and rule considered and why. */
  trace: string[];
}

export interface Explanation {
  /** At the source endpoint. */
  egress: DirectionExplanation;
  /** At the destination endpoint. */
  ingress: DirectionExplanation;
  allowed: boolean;
}

// ---------------------------------------------------------------------------
// The cluster, as explain sees it.

type Direction = "ingress" | "egress";

interface NamedPort {
  name: string;
  protocol: number | undefined;
  port: number;
}

/** Anything a rule's selector can match: an endpoint or a network set. */
interface Selectable {
  /** `workload/<ns>/<name>`, `host/<name>`, `networkset/<ns>/<name>`, `globalnetworkset/<name>`. */
  id: string;
  labels: Labels;
  /** Endpoint addresses as host routes, or a network set's nets. */
  nets: CIDR[];
  /** Named ports (endpoints only). */
  ports: NamedPort[];
  isEndpoint: boolean;
}

interface Endpoint extends Selectable {
  kind: "workload" | "host";
  profiles: string[];
}

interface PolicyInfo {
  id: string;
  tier: string;
  name: string;
  namespace: string | undefined;
  order: number | undefined;
  selector: Selector;
  types: readonly PolicyType[];
  ingress: readonly Rule[];
  egress: readonly Rule[];
  /** preDNAT / doNotTrack policies are not evaluated (see the header). */
  mode: "normal" | "preDNAT" | "doNotTrack";
}

interface TierInfo {
  name: string;
  order: number | undefined;
  defaultAction: "Deny" | "Pass";
  exists: boolean;
}

interface Cluster {
  endpoints: Map<string, Endpoint>;
  selectables: Selectable[];
  profiles: Map<string, Profile>;
  policies: PolicyInfo[];
  tiers: Map<string, TierInfo>;
}

function hostRoutes(texts: readonly string[] | undefined): CIDR[] {
  const out: CIDR[] = [];
  for (const t of texts ?? []) {
    const c = parseCIDR(t, { allowBareIP: true });
    if (c) out.push(c);
  }
  return out;
}

function namedPorts(
  ports: readonly { name?: string | undefined; protocol: string | number; port: number }[] = [],
): NamedPort[] {
  return ports.flatMap((p) =>
    p.name ? [{ name: p.name, protocol: protocolNumberOf(p.protocol), port: p.port }] : [],
  );
}

function keyOf(r: Resource): string {
  return `${r.metadata.namespace ?? ""}/${r.metadata.name}`;
}

function buildCluster(state: ClusterState): Cluster {
  const byKind = new Map<string, Map<string, Resource>>();
  for (const r of state.resources) {
    const id = kindOf(r.apiVersion, r.kind)?.id;
    if (id === undefined) continue;
    let m = byKind.get(id);
    if (!m) byKind.set(id, (m = new Map()));
    m.set(keyOf(r), r);
  }
  const all = <T>(kind: string): T[] => [...(byKind.get(kind)?.values() ?? [])] as T[];

  const profiles = new Map<string, Profile>();
  for (const p of all<Profile>("Profile")) profiles.set(p.metadata.name, p);
  const labelsToApply = (name: string): Labels | undefined =>
    profiles.get(name)?.spec?.labelsToApply;
  const nsLabels = (ns: string): Labels =>
    namespaceLabels(ns, labelsToApply(namespaceProfileName(ns)));

  const endpoints = new Map<string, Endpoint>();
  for (const w of all<WorkloadEndpoint>("WorkloadEndpoint")) {
    const ns = w.metadata.namespace ?? "default";
    const profileNames = w.spec.profiles ?? [];
    const labels: Labels = effectiveLabels({
      own: w.metadata.labels,
      inherited: profileNames.map(labelsToApply),
      namespace: ns,
      namespaceLabels: nsLabels(ns),
      orchestrator: w.spec.orchestrator,
      ...(w.spec.serviceAccountName !== undefined
        ? { serviceAccount: w.spec.serviceAccountName }
        : {}),
    });
    const id = `workload/${ns}/${w.metadata.name}`;
    endpoints.set(id, {
      id,
      kind: "workload",
      labels,
      nets: hostRoutes(w.spec.ipNetworks),
      ports: namedPorts(w.spec.ports),
      isEndpoint: true,
      profiles: profileNames,
    });
  }
  for (const h of all<HostEndpoint>("HostEndpoint")) {
    const profileNames = h.spec.profiles ?? [];
    const id = `host/${h.metadata.name}`;
    endpoints.set(id, {
      id,
      kind: "host",
      labels: effectiveLabels({
        own: h.metadata.labels,
        inherited: profileNames.map(labelsToApply),
      }),
      nets: hostRoutes(h.spec.expectedIPs),
      ports: namedPorts(h.spec.ports),
      isEndpoint: true,
      profiles: profileNames,
    });
  }

  const selectables: Selectable[] = [...endpoints.values()];
  for (const s of all<NetworkSet>("NetworkSet")) {
    const ns = s.metadata.namespace ?? "default";
    selectables.push({
      id: `networkset/${ns}/${s.metadata.name}`,
      labels: effectiveLabels({
        own: s.metadata.labels,
        namespace: ns,
        namespaceLabels: nsLabels(ns),
      }),
      nets: hostRoutes(s.spec?.nets),
      ports: [],
      isEndpoint: false,
    });
  }
  for (const s of all<GlobalNetworkSet>("GlobalNetworkSet")) {
    selectables.push({
      id: `globalnetworkset/${s.metadata.name}`,
      labels: effectiveLabels({ own: s.metadata.labels }),
      nets: hostRoutes(s.spec?.nets),
      ports: [],
      isEndpoint: false,
    });
  }

  const tiers = new Map<string, TierInfo>();
  for (const t of all<Tier>("Tier")) {
    tiers.set(t.metadata.name, {
      name: t.metadata.name,
      order: t.metadata.name === DEFAULT_TIER ? DEFAULT_TIER_ORDER : t.spec?.order,
      defaultAction: t.spec?.defaultAction ?? "Deny",
      exists: true,
    });
  }

  const policies: PolicyInfo[] = [];
  for (const p of all<GlobalNetworkPolicy>("GlobalNetworkPolicy")) {
    const tier = p.spec.tier ?? DEFAULT_TIER;
    policies.push({
      id: `${tier}/${p.metadata.name}`,
      tier,
      name: p.metadata.name,
      namespace: undefined,
      order: p.spec.order,
      selector: policyEndpointSelector({
        selector: p.spec.selector,
        namespaceSelector: p.spec.namespaceSelector,
      }),
      types: p.spec.types,
      ingress: p.spec.ingress ?? [],
      egress: p.spec.egress ?? [],
      mode: p.spec.preDNAT ? "preDNAT" : p.spec.doNotTrack ? "doNotTrack" : "normal",
    });
  }
  const namespaced = [
    ...all<NetworkPolicy>("NetworkPolicy"),
    ...all<K8sNetworkPolicy>("NetworkPolicy.networking.k8s.io").map(translateK8sNetworkPolicy),
  ];
  for (const p of namespaced) {
    const tier = p.spec.tier ?? DEFAULT_TIER;
    const ns = p.metadata.namespace ?? "default";
    policies.push({
      id: `${tier}/${ns}/${p.metadata.name}`,
      tier,
      name: p.metadata.name,
      namespace: ns,
      order: p.spec.order,
      selector: policyEndpointSelector({ selector: p.spec.selector, namespace: ns }),
      types: p.spec.types,
      ingress: p.spec.ingress ?? [],
      egress: p.spec.egress ?? [],
      mode: "normal",
    });
  }
  for (const p of policies) {
    if (!tiers.has(p.tier)) {
      tiers.set(p.tier, {
        name: p.tier,
        order: p.tier === DEFAULT_TIER ? DEFAULT_TIER_ORDER : undefined,
        defaultAction: "Deny",
        exists: false,
      });
    }
  }
  return { endpoints, selectables, profiles, policies, tiers };
}

// ---------------------------------------------------------------------------
// The flow, resolved against the cluster.

interface ResolvedEnd {
  /** For the trace: the endpoint id or the address. */
  text: string;
  ip: IPAddress;
  ipText: string;
  endpoint: Endpoint | undefined;
  port: number | undefined;
}

interface Packet {
  family: 4 | 6;
  protocol: number;
  icmp: { type: number; code?: number } | undefined;
  src: ResolvedEnd;
  dst: ResolvedEnd;
}

function invalid(message: string): TwillError {
  return new TwillError("Invalid", message);
}

function protocolOfFlow(p: string | number): number {
  if (typeof p === "number") {
    if (Number.isInteger(p) && p >= 0 && p <= 255) return p;
    throw invalid(`flow protocol ${p} is not a protocol number (0-255)`);
  }
  const byName = Object.entries(PROTOCOL_NUMBERS).find(
    ([name]) => name.toLowerCase() === p.toLowerCase(),
  );
  if (byName) return byName[1];
  if (/^[0-9]+$/.test(p) && Number(p) <= 255) return Number(p);
  throw invalid(
    `flow protocol ${JSON.stringify(p)} is not valid: use ${Object.keys(PROTOCOL_NUMBERS).join(", ")} or a number 0-255`,
  );
}

function parseAddress(text: string, what: string): IPAddress {
  const ip = parseIP(text);
  if (!ip) throw invalid(`${what} ${JSON.stringify(text)} is not an IP address`);
  return ip;
}

function endpointOf(cluster: Cluster, end: FlowEnd, what: string): Endpoint | undefined {
  if ("ip" in end) return undefined;
  const id =
    "workload" in end
      ? `workload/${end.workload.namespace}/${end.workload.name}`
      : `host/${end.host.name}`;
  const ep = cluster.endpoints.get(id);
  if (!ep) {
    const kind = "workload" in end ? "workload endpoint" : "host endpoint";
    throw new TwillError(
      "NotFound",
      `${what} ${kind} "${id.slice(id.indexOf("/") + 1)}" not found`,
    );
  }
  return ep;
}

function addressesOf(ep: Endpoint): IPAddress[] {
  return ep.nets.map((c) => ({ family: c.family, value: c.network }));
}

/** The family of the flow: given, from any explicit address, or the first both endpoints have. */
function familyOfFlow(
  flow: Flow,
  ends: { end: FlowEnd; ep: Endpoint | undefined; explicit: string | undefined; what: string }[],
): 4 | 6 {
  const seen: { family: 4 | 6; why: string }[] = [];
  if (flow.ipVersion !== undefined) seen.push({ family: flow.ipVersion, why: "ipVersion" });
  for (const e of ends) {
    if ("ip" in e.end) {
      seen.push({ family: parseAddress(e.end.ip, `${e.what} address`).family, why: e.end.ip });
    }
    if (e.explicit !== undefined) {
      seen.push({ family: parseAddress(e.explicit, `${e.what} address`).family, why: e.explicit });
    }
  }
  const first = seen[0];
  if (first) {
    const clash = seen.find((s) => s.family !== first.family);
    if (clash) {
      throw invalid(
        `flow mixes IP families: ${first.why} is IPv${first.family} but ${clash.why} is IPv${clash.family}`,
      );
    }
    return first.family;
  }
  for (const family of [4, 6] as const) {
    if (ends.every((e) => !e.ep || addressesOf(e.ep).some((a) => a.family === family))) {
      return family;
    }
  }
  throw invalid("the flow's endpoints have no IP family in common: give srcIP/dstIP or ipVersion");
}

function resolveEnd(
  end: FlowEnd,
  ep: Endpoint | undefined,
  explicit: string | undefined,
  family: 4 | 6,
  port: number | undefined,
  what: string,
): ResolvedEnd {
  if ("ip" in end) {
    const ip = parseAddress(end.ip, `${what} address`);
    if (explicit !== undefined && parseAddress(explicit, `${what} address`).value !== ip.value) {
      throw invalid(`${what} is the address ${end.ip}, but ${what}IP says ${explicit}`);
    }
    return { text: end.ip, ip, ipText: end.ip, endpoint: undefined, port };
  }
  const endpoint = ep!;
  const own = addressesOf(endpoint);
  if (explicit !== undefined) {
    const ip = parseAddress(explicit, `${what}IP`);
    if (own.length > 0 && !own.some((a) => a.family === ip.family && a.value === ip.value)) {
      throw invalid(`${what}IP ${explicit} is not an address of ${endpoint.id}`);
    }
    return { text: endpoint.id, ip, ipText: explicit, endpoint, port };
  }
  const ip = own.find((a) => a.family === family);
  if (!ip) throw invalid(`${endpoint.id} has no IPv${family} address: give ${what}IP`);
  return { text: endpoint.id, ip, ipText: formatIP(ip.family, ip.value), endpoint, port };
}

// ---------------------------------------------------------------------------
// Rule matching: every criterion ANDed. Each check returns why the rule does
// not match, or undefined when that criterion holds.

type SideName = "source" | "destination";

function containing(cluster: Cluster, ip: IPAddress): Selectable[] {
  return cluster.selectables.filter((s) => s.nets.some((c) => cidrContainsIP(c, ip)));
}

function icmpFieldsMatch(
  fields: { type?: number | undefined; code?: number | undefined },
  icmp: Packet["icmp"],
): boolean | "unknown" {
  if (fields.type === undefined) return true;
  if (!icmp) return "unknown";
  if (icmp.type !== fields.type) return false;
  if (fields.code === undefined) return true;
  if (icmp.code === undefined) return "unknown";
  return icmp.code === fields.code;
}

/** Felix renders a rule only for the family of its CIDRs: a list wholly of the other family excludes the rule. */
function familyMismatch(rule: Rule, family: 4 | 6): string | undefined {
  for (const side of ["source", "destination"] as const) {
    for (const field of ["nets", "notNets"] as const) {
      const nets = hostRoutes(rule[side]?.[field]);
      if (nets.length > 0 && !nets.some((c) => c.family === family)) {
        return `${side} ${field} are IPv${family === 4 ? 6 : 4} and the flow is IPv${family}`;
      }
    }
  }
  return undefined;
}

function portMatches(
  cluster: Cluster,
  item: number | string,
  end: ResolvedEnd,
  port: number,
  protocol: number,
  sideSelector: Selector | undefined,
): boolean {
  const parsed = parsePort(item);
  if (typeof parsed === "string") return false;
  if ("min" in parsed) return port >= parsed.min && port <= parsed.max;
  return containing(cluster, end.ip).some(
    (s) =>
      s.isEndpoint &&
      (!sideSelector || sideSelector.matches(s.labels)) &&
      s.ports.some((p) => p.name === parsed.name && p.protocol === protocol && p.port === port),
  );
}

function sideMismatch(
  cluster: Cluster,
  side: EntityRule | undefined,
  name: SideName,
  end: ResolvedEnd,
  packet: Packet,
  policyNamespace: string | undefined,
): string | undefined {
  if (!side) return undefined;
  const ofFamily = (texts: readonly string[] | undefined) =>
    hostRoutes(texts).filter((c) => c.family === packet.family);
  const nets = ofFamily(side.nets);
  if (nets.length > 0 && !nets.some((c) => cidrContainsIP(c, end.ip))) {
    return `${name} ${end.ipText} is not in nets ${(side.nets ?? []).join(", ")}`;
  }
  const inNotNet = ofFamily(side.notNets).findIndex((c) => cidrContainsIP(c, end.ip));
  if (inNotNet >= 0) return `${name} ${end.ipText} is in notNets`;

  const here = containing(cluster, end.ip);
  const selector = ruleSideSelector(side, policyNamespace);
  if (selector && !here.some((s) => selector.matches(s.labels))) {
    return `${name} ${end.ipText} is not an address of anything selected by "${selector.toString()}"`;
  }
  const notSelector = ruleSideNotSelector(side);
  const excluded = notSelector ? here.find((s) => notSelector.matches(s.labels)) : undefined;
  if (notSelector && excluded) {
    return `${name} ${end.ipText} belongs to ${excluded.id}, selected by notSelector "${notSelector.toString()}"`;
  }

  const ports = side.ports ?? [];
  const notPorts = side.notPorts ?? [];
  if ((ports.length > 0 || notPorts.length > 0) && end.port === undefined) {
    return `the flow gives no ${name} port`;
  }
  const port = end.port ?? 0;
  const matches = (item: number | string) =>
    portMatches(cluster, item, end, port, packet.protocol, selector);
  if (ports.length > 0 && !ports.some(matches)) {
    return `${name} port ${port} is not in ports ${ports.join(", ")}`;
  }
  const hit = notPorts.find(matches);
  if (hit !== undefined) return `${name} port ${port} matches notPorts item ${hit}`;
  return undefined;
}

function ruleMismatch(
  cluster: Cluster,
  rule: Rule,
  packet: Packet,
  policyNamespace: string | undefined,
): string | undefined {
  if (rule.ipVersion !== undefined && rule.ipVersion !== packet.family) {
    return `ipVersion ${rule.ipVersion}, the flow is IPv${packet.family}`;
  }
  const familyWhy = familyMismatch(rule, packet.family);
  if (familyWhy) return familyWhy;
  const protocol = protocolNumberOf(rule.protocol);
  if (rule.protocol !== undefined && protocol !== packet.protocol) {
    return `protocol ${String(rule.protocol)}, the flow's is ${packet.protocol}`;
  }
  if (rule.notProtocol !== undefined && protocolNumberOf(rule.notProtocol) === packet.protocol) {
    return `notProtocol ${String(rule.notProtocol)}`;
  }
  if (rule.icmp) {
    const m = icmpFieldsMatch(rule.icmp, packet.icmp);
    if (m === "unknown") return "the rule matches ICMP type/code and the flow gives none";
    if (!m)
      return `icmp ${JSON.stringify(rule.icmp)} does not match ${JSON.stringify(packet.icmp)}`;
  }
  if (rule.notICMP) {
    const m = icmpFieldsMatch(rule.notICMP, packet.icmp);
    if (m === "unknown") return "the rule matches notICMP type/code and the flow gives none";
    if (m) return `notICMP ${JSON.stringify(rule.notICMP)} matches ${JSON.stringify(packet.icmp)}`;
  }
  return (
    sideMismatch(cluster, rule.source, "source", packet.src, packet, policyNamespace) ??
    sideMismatch(cluster, rule.destination, "destination", packet.dst, packet, policyNamespace)
  );
}

/** Criteria twill cannot evaluate (see the header). */
function unsupportedCriteria(rule: Rule): string[] {
  const out: string[] = [];
  if (rule.http) out.push("http");
  for (const side of ["source", "destination"] as const) {
    if (rule[side]?.services) out.push(`${side}.services`);
    const saSelector = rule[side]?.serviceAccounts?.selector;
    if (saSelector !== undefined && saSelector.trim() !== "") {
      out.push(`${side}.serviceAccounts.selector`);
    }
  }
  return out;
}

type RuleOutcome =
  | { kind: "skip" }
  | { kind: "log" }
  | { kind: "pass" }
  | { kind: "decide"; action: "Allow" | "Deny" };

/** Evaluates one rule and writes its line to the trace. */
function evaluateRule(
  cluster: Cluster,
  rule: Rule,
  index: number,
  packet: Packet,
  policyNamespace: string | undefined,
  trace: string[],
  indent: string,
): RuleOutcome {
  const head = `${indent}rule ${index} (${rule.action})`;
  const why = ruleMismatch(cluster, rule, packet, policyNamespace);
  if (why) {
    trace.push(`${head}: no match: ${why}`);
    return { kind: "skip" };
  }
  const unsupported = unsupportedCriteria(rule);
  if (unsupported.length > 0) {
    if (rule.action !== "Deny") {
      trace.push(
        `${head}: no match: twill cannot evaluate ${unsupported.join(", ")}; an ${rule.action} rule with it never matches (fail closed)`,
      );
      return { kind: "skip" };
    }
    trace.push(
      `${head}: twill cannot evaluate ${unsupported.join(", ")}; a Deny rule is matched without it (fail closed)`,
    );
  }
  switch (rule.action) {
    case "Allow":
      trace.push(`${head}: matched: accepted`);
      return { kind: "decide", action: "Allow" };
    case "Deny":
      trace.push(`${head}: matched: dropped`);
      return { kind: "decide", action: "Deny" };
    case "Log":
      trace.push(`${head}: matched: logged, continuing`);
      return { kind: "log" };
    case "Pass":
      trace.push(`${head}: matched: pass`);
      return { kind: "pass" };
  }
}

// ---------------------------------------------------------------------------
// One direction at one endpoint.

function formatLabels(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? "(none)" : keys.map((k) => `${k}=${labels[k]}`).join(", ");
}

function evaluateDirection(
  cluster: Cluster,
  packet: Packet,
  direction: Direction,
): DirectionExplanation {
  const local = direction === "egress" ? packet.src : packet.dst;
  const role = direction === "egress" ? "source" : "destination";
  const ep = local.endpoint;
  if (!ep) {
    const decision: Decision = { by: "not-applicable", action: "Allow" };
    return {
      action: "Allow",
      decision,
      trace: [`${role} ${local.text} is not a twill endpoint: no ${direction} policy here`],
    };
  }
  const trace: string[] = [
    `${direction} at ${ep.id} (${local.ipText})`,
    `labels: ${formatLabels(ep.labels)}`,
  ];
  const done = (decision: Decision): DirectionExplanation => ({
    endpoint: ep.id,
    action: decision.action,
    decision,
    trace,
  });
  const type: PolicyType = direction === "egress" ? "Egress" : "Ingress";

  // Policies that select the endpoint for this direction.
  const selecting = cluster.policies.filter(
    (p) => p.types.includes(type) && p.selector.matches(ep.labels),
  );
  for (const p of selecting) {
    if (p.mode !== "normal") {
      trace.push(
        `policy ${p.id} (${p.mode}) selects this endpoint but is not evaluated: explain covers normal policy only`,
      );
    }
  }
  const applying = selecting.filter((p) => p.mode === "normal");
  const tierNames = [...new Set(applying.map((p) => p.tier))];
  const tiers = tierNames
    .map((n) => cluster.tiers.get(n)!)
    .sort((a, b) => compareOrderThenName(a, b));
  if (tiers.length === 0) trace.push(`no ${direction} policy applies`);

  for (const tier of tiers) {
    const order = tier.order === undefined ? "none" : String(tier.order);
    trace.push(
      `tier ${tier.name} (order ${order}, defaultAction ${tier.defaultAction}${tier.exists ? "" : ", no Tier resource: defaults"})`,
    );
    const inTier = applying
      .filter((p) => p.tier === tier.name)
      .sort((a, b) => compareOrderThenName(a, b));
    let passed = false;
    for (const policy of inTier) {
      const porder = policy.order === undefined ? "none" : String(policy.order);
      trace.push(`  policy ${policy.id} (order ${porder})`);
      const rules = direction === "egress" ? policy.egress : policy.ingress;
      for (let i = 0; i < rules.length && !passed; i++) {
        const outcome = evaluateRule(
          cluster,
          rules[i]!,
          i,
          packet,
          policy.namespace,
          trace,
          "    ",
        );
        if (outcome.kind === "decide") {
          return done({
            by: "rule",
            stage: "tier",
            tier: tier.name,
            policy: policy.id,
            ruleIndex: i,
            action: outcome.action,
          });
        }
        if (outcome.kind === "pass") passed = true;
      }
      if (passed) break;
      trace.push(`    no rule of ${policy.id} decided`);
    }
    if (passed) {
      trace.push(`  passed: the rest of tier ${tier.name} is skipped`);
      continue;
    }
    if (tier.defaultAction === "Pass") {
      trace.push(`  no rule decided in tier ${tier.name}: defaultAction Pass, next tier`);
      continue;
    }
    trace.push(`  no rule decided in tier ${tier.name}: defaultAction Deny, dropped`);
    return done({ by: "tier-end", tier: tier.name, action: "Deny" });
  }

  // Profiles.
  trace.push(`profiles: ${ep.profiles.length === 0 ? "(none)" : ep.profiles.join(", ")}`);
  const missing = ep.profiles.find((name) => !cluster.profiles.has(name));
  if (missing !== undefined) {
    trace.push(`  profile ${missing} does not exist: dropped (fail closed)`);
    return done({ by: "missing-profile", profile: missing, action: "Deny" });
  }
  for (const name of ep.profiles) {
    const profile = cluster.profiles.get(name)!;
    trace.push(`  profile ${name}`);
    const rules = (direction === "egress" ? profile.spec?.egress : profile.spec?.ingress) ?? [];
    for (let i = 0; i < rules.length; i++) {
      const outcome = evaluateRule(cluster, rules[i]!, i, packet, undefined, trace, "    ");
      if (outcome.kind === "decide") {
        return done({
          by: "rule",
          stage: "profile",
          profile: name,
          ruleIndex: i,
          action: outcome.action,
        });
      }
      if (outcome.kind === "pass") {
        trace.push(`    passed: the rest of profile ${name} is skipped`);
        break;
      }
    }
  }
  trace.push("no profile accepted: dropped");
  return done({ by: "no-match", action: "Deny" });
}

// ---------------------------------------------------------------------------

/**
 * Which tier, policy and rule decide a flow, at the source (egress) and at
 * the destination (ingress). Throws TwillError "NotFound" for an endpoint
 * that is not in the state, "Invalid" for a flow that cannot be evaluated
 * (bad protocol or address, no address of the flow's family).
 */
export function explain(state: ClusterState, flow: Flow): Explanation {
  const cluster = buildCluster(state);
  const protocol = protocolOfFlow(flow.protocol);
  const srcEp = endpointOf(cluster, flow.src, "source");
  const dstEp = endpointOf(cluster, flow.dst, "destination");
  const family = familyOfFlow(flow, [
    { end: flow.src, ep: srcEp, explicit: flow.srcIP, what: "source" },
    { end: flow.dst, ep: dstEp, explicit: flow.dstIP, what: "destination" },
  ]);
  const packet: Packet = {
    family,
    protocol,
    icmp: flow.icmp,
    src: resolveEnd(flow.src, srcEp, flow.srcIP, family, flow.srcPort, "src"),
    dst: resolveEnd(flow.dst, dstEp, flow.dstIP, family, flow.dstPort, "dst"),
  };
  const egress = evaluateDirection(cluster, packet, "egress");
  const ingress = evaluateDirection(cluster, packet, "ingress");
  return { egress, ingress, allowed: egress.action === "Allow" && ingress.action === "Allow" };
}
