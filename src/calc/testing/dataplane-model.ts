// An honest fake dataplane for calc tests: it applies the calc graph's
// message stream (messages.ts) to plain state and THROWS the moment the
// ordering contract is broken, so a test that feeds it every flush proves the
// graph never makes the dataplane refer to something it has not been told
// about, nor take away something still in use:
//
//   ipset-delta / ipset-remove      of a set that is not there
//   ipset-delta                     adding a member already in, removing one not in
//   policy-update / profile-update  referring to a set that is not there
//   endpoint-update                 naming a policy or profile that is not there
//   route-update                    for an endpoint that is not there
//   *-remove                        of something not there, or still referred to
//   a first non-empty flush         that does not end with in-sync
//
// It also interprets flows through the compiled state (evaluate), with the
// semantics of issue 3 as explain.ts spells them out where the issue leaves
// room, so the compiled form can be checked against the brute-force one:
//
//   per direction at a local endpoint: tiers in order, each tier's policies
//   for that direction in order, rules in order (Allow accepts, Deny drops,
//   Log continues, Pass skips the rest of the tier); a tier in which a policy
//   applied but nothing decided drops unless its defaultAction is Pass; then
//   missingProfiles → drop; then profiles in order (Pass skips the rest of
//   that profile); nothing accepted → drop.
//
// Pure: no I/O. dump() is canonical JSON (sorted keys, sorted members), so
// two models holding the same state dump the same text.
import { cidrContainsIP, parseCIDR, parseIP } from "../../api/ip.js";
import type { CIDR, IPAddress } from "../../api/ip.js";
import type {
  CompiledMatch,
  CompiledPolicy,
  CompiledProfile,
  CompiledRule,
  DataplaneMessage,
  IPSetInfo,
  LocalEndpoint,
  Route,
  TierPolicies,
} from "../messages.js";

/** The dataplane's view of a broken contract: which message, and why. */
export class ContractError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ContractError";
  }
}

export interface ModelIPSet {
  info: IPSetInfo;
  members: Set<string>;
}

/** One end of a flow as the dataplane sees it: an address, and the local endpoint if it is one. */
export interface ModelFlowEnd {
  ip: string;
  /** LocalEndpoint id when this end is a local endpoint (its policy is evaluated here). */
  endpoint?: string;
  port?: number;
}

export interface ModelFlow {
  src: ModelFlowEnd;
  dst: ModelFlowEnd;
  /** IP protocol number. */
  protocol: number;
  icmp?: { type: number; code?: number };
}

export type Verdict = "Allow" | "Deny";

/** Per direction, undefined when that end is not a local endpoint of this dataplane. */
export interface ModelVerdict {
  egress?: Verdict;
  ingress?: Verdict;
}

const PROTOCOL_NAMES: Readonly<Record<number, string>> = { 6: "tcp", 17: "udp", 132: "sctp" };

function canonical(value: unknown): unknown {
  if (value instanceof Set) return [...value].map(canonical).sort();
  if (value instanceof Map) {
    return canonical(Object.fromEntries([...value.entries()].sort(([a], [b]) => cmp(a, b))));
  }
  if (Array.isArray(value)) return value.map(canonical);
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[k];
      if (v !== undefined) out[k] = canonical(v);
    }
    return out;
  }
  return value;
}

function cmp(a: unknown, b: unknown): number {
  const x = String(a);
  const y = String(b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** JSON with sorted object keys, Sets and Maps as sorted arrays / objects. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonical(value), null, 1);
}

function matchIpsets(m: CompiledMatch): string[] {
  return [
    ...(m.ipSets ?? []),
    ...(m.notIpSets ?? []),
    ...(m.namedPortIpSets ?? []),
    ...(m.notNamedPortIpSets ?? []),
  ];
}

function rulesIpsets(rules: readonly CompiledRule[]): string[] {
  return rules.flatMap((r) => [...matchIpsets(r.src), ...matchIpsets(r.dst)]);
}

function tierPolicyIds(tiers: readonly TierPolicies[]): string[] {
  return tiers.flatMap((t) => [...t.ingress, ...t.egress]);
}

function endpointPolicyIds(ep: LocalEndpoint): string[] {
  return [
    ...tierPolicyIds(ep.tiers),
    ...tierPolicyIds(ep.forwardTiers),
    ...tierPolicyIds(ep.preDnatTiers),
    ...tierPolicyIds(ep.untrackedTiers),
  ];
}

interface Packet {
  family: 4 | 6;
  protocol: number;
  icmp: ModelFlow["icmp"];
  src: { ip: IPAddress; port: number | undefined };
  dst: { ip: IPAddress; port: number | undefined };
}

type Outcome = "allow" | "deny" | "log" | "pass" | "skip";

export class DataplaneModel {
  readonly #ipsets = new Map<string, ModelIPSet>();
  readonly #policies = new Map<string, CompiledPolicy>();
  readonly #profiles = new Map<string, CompiledProfile>();
  readonly #endpoints = new Map<string, LocalEndpoint>();
  readonly #routes = new Map<string, Route>();
  #inSync = false;
  #flushes = 0;
  /** Parsed members per set, rebuilt lazily for evaluate(). */
  readonly #parsed = new Map<string, { nets: CIDR[]; ports: { net: CIDR; key: string }[] }>();

  get inSync(): boolean {
    return this.#inSync;
  }
  get ipsets(): ReadonlyMap<string, ModelIPSet> {
    return this.#ipsets;
  }
  get policies(): ReadonlyMap<string, CompiledPolicy> {
    return this.#policies;
  }
  get profiles(): ReadonlyMap<string, CompiledProfile> {
    return this.#profiles;
  }
  get endpoints(): ReadonlyMap<string, LocalEndpoint> {
    return this.#endpoints;
  }
  get routes(): ReadonlyMap<string, Route> {
    return this.#routes;
  }

  /** Applies the messages of one flush, in order. Throws ContractError on a broken contract. */
  apply(messages: readonly DataplaneMessage[]): void {
    this.#flushes++;
    if (!this.#inSync && messages.length > 0 && messages.at(-1)?.type !== "in-sync") {
      throw new ContractError(
        `flush ${this.#flushes}: ${messages.length} message(s) before the first in-sync (the flush does not end with in-sync)`,
      );
    }
    messages.forEach((msg, i) => {
      try {
        this.#applyOne(msg);
      } catch (err) {
        if (err instanceof ContractError) {
          throw new ContractError(
            `flush ${this.#flushes}, message ${i} (${msg.type}): ${err.message}`,
          );
        }
        throw err;
      }
    });
  }

  #applyOne(msg: DataplaneMessage): void {
    switch (msg.type) {
      case "ipset-update":
        this.#ipsets.set(msg.ipset.id, { info: msg.ipset, members: new Set(msg.members) });
        this.#parsed.delete(msg.ipset.id);
        return;
      case "ipset-delta": {
        const set = this.#ipsets.get(msg.id);
        if (!set) throw new ContractError(`ipset "${msg.id}" is not there`);
        for (const m of msg.removed) {
          if (!set.members.delete(m))
            throw new ContractError(`ipset "${msg.id}": removed "${m}" is not a member`);
        }
        for (const m of msg.added) {
          if (set.members.has(m))
            throw new ContractError(`ipset "${msg.id}": added "${m}" is already a member`);
          set.members.add(m);
        }
        this.#parsed.delete(msg.id);
        return;
      }
      case "ipset-remove": {
        if (!this.#ipsets.has(msg.id)) throw new ContractError(`ipset "${msg.id}" is not there`);
        const user = this.#ipsetUser(msg.id);
        if (user) throw new ContractError(`ipset "${msg.id}" is still used by ${user}`);
        this.#ipsets.delete(msg.id);
        this.#parsed.delete(msg.id);
        return;
      }
      case "policy-update":
        this.#checkIpsets(
          `policy "${msg.policy.id}"`,
          rulesIpsets([...msg.policy.inbound, ...msg.policy.outbound]),
        );
        this.#policies.set(msg.policy.id, msg.policy);
        return;
      case "policy-remove": {
        if (!this.#policies.has(msg.id)) throw new ContractError(`policy "${msg.id}" is not there`);
        for (const ep of this.#endpoints.values()) {
          if (endpointPolicyIds(ep).includes(msg.id))
            throw new ContractError(`policy "${msg.id}" is still used by endpoint "${ep.id}"`);
        }
        this.#policies.delete(msg.id);
        return;
      }
      case "profile-update":
        this.#checkIpsets(
          `profile "${msg.profile.id}"`,
          rulesIpsets([...msg.profile.inbound, ...msg.profile.outbound]),
        );
        this.#profiles.set(msg.profile.id, msg.profile);
        return;
      case "profile-remove": {
        if (!this.#profiles.has(msg.id))
          throw new ContractError(`profile "${msg.id}" is not there`);
        for (const ep of this.#endpoints.values()) {
          if (ep.profileIds.includes(msg.id))
            throw new ContractError(`profile "${msg.id}" is still used by endpoint "${ep.id}"`);
        }
        this.#profiles.delete(msg.id);
        return;
      }
      case "endpoint-update": {
        const ep = msg.endpoint;
        for (const id of endpointPolicyIds(ep)) {
          if (!this.#policies.has(id))
            throw new ContractError(`endpoint "${ep.id}" names policy "${id}", which is not there`);
        }
        for (const id of ep.profileIds) {
          if (!this.#profiles.has(id))
            throw new ContractError(
              `endpoint "${ep.id}" names profile "${id}", which is not there`,
            );
        }
        this.#endpoints.set(ep.id, ep);
        return;
      }
      case "endpoint-remove": {
        if (!this.#endpoints.has(msg.id))
          throw new ContractError(`endpoint "${msg.id}" is not there`);
        for (const r of this.#routes.values()) {
          if (r.endpointId === msg.id)
            throw new ContractError(`endpoint "${msg.id}" still has route "${r.dst}"`);
        }
        this.#endpoints.delete(msg.id);
        return;
      }
      case "route-update":
        if (!this.#endpoints.has(msg.route.endpointId)) {
          throw new ContractError(
            `route "${msg.route.dst}" is for endpoint "${msg.route.endpointId}", which is not there`,
          );
        }
        this.#routes.set(msg.route.dst, msg.route);
        return;
      case "route-remove":
        if (!this.#routes.delete(msg.dst))
          throw new ContractError(`route "${msg.dst}" is not there`);
        return;
      case "in-sync":
        this.#inSync = true;
        return;
    }
  }

  #checkIpsets(what: string, ids: readonly string[]): void {
    for (const id of ids) {
      if (!this.#ipsets.has(id))
        throw new ContractError(`${what} uses ipset "${id}", which is not there`);
    }
  }

  #ipsetUser(id: string): string | undefined {
    for (const p of this.#policies.values()) {
      if (rulesIpsets([...p.inbound, ...p.outbound]).includes(id)) return `policy "${p.id}"`;
    }
    for (const p of this.#profiles.values()) {
      if (rulesIpsets([...p.inbound, ...p.outbound]).includes(id)) return `profile "${p.id}"`;
    }
    return undefined;
  }

  /** The whole state as canonical JSON. */
  dump(): string {
    return canonicalJson({
      inSync: this.#inSync,
      ipsets: new Map([...this.#ipsets].map(([id, s]) => [id, { ...s.info, members: s.members }])),
      policies: this.#policies,
      profiles: this.#profiles,
      endpoints: this.#endpoints,
      routes: this.#routes,
    });
  }

  // ------------------------------------------------------------------
  // Flow evaluation through the compiled state.

  /**
   * The verdict at each end that is a local endpoint: egress at the source,
   * ingress at the destination. Throws for an unknown endpoint id or a bad
   * address.
   */
  evaluate(flow: ModelFlow): ModelVerdict {
    const src = parseIP(flow.src.ip);
    const dst = parseIP(flow.dst.ip);
    if (!src || !dst) throw new Error(`flow addresses ${flow.src.ip} -> ${flow.dst.ip} invalid`);
    if (src.family !== dst.family) throw new Error(`flow mixes IP families`);
    const packet: Packet = {
      family: src.family,
      protocol: flow.protocol,
      icmp: flow.icmp,
      src: { ip: src, port: flow.src.port },
      dst: { ip: dst, port: flow.dst.port },
    };
    const out: ModelVerdict = {};
    if (flow.src.endpoint !== undefined) {
      out.egress = this.#evaluateAt(this.#endpoint(flow.src.endpoint), packet, "egress");
    }
    if (flow.dst.endpoint !== undefined) {
      out.ingress = this.#evaluateAt(this.#endpoint(flow.dst.endpoint), packet, "ingress");
    }
    return out;
  }

  #endpoint(id: string): LocalEndpoint {
    const ep = this.#endpoints.get(id);
    if (!ep) throw new Error(`endpoint "${id}" is not a local endpoint of this dataplane`);
    return ep;
  }

  #evaluateAt(ep: LocalEndpoint, packet: Packet, direction: "ingress" | "egress"): Verdict {
    for (const tier of ep.tiers) {
      const ids = direction === "ingress" ? tier.ingress : tier.egress;
      if (ids.length === 0) continue;
      let passed = false;
      for (const id of ids) {
        const policy = this.#policies.get(id)!;
        const rules = direction === "ingress" ? policy.inbound : policy.outbound;
        for (const rule of rules) {
          const o = this.#ruleOutcome(rule, packet);
          if (o === "allow") return "Allow";
          if (o === "deny") return "Deny";
          if (o === "pass") {
            passed = true;
            break;
          }
        }
        if (passed) break;
      }
      if (passed || tier.defaultAction === "Pass") continue;
      return "Deny";
    }
    if (ep.missingProfiles.length > 0) return "Deny";
    for (const id of ep.profileIds) {
      const profile = this.#profiles.get(id)!;
      const rules = direction === "ingress" ? profile.inbound : profile.outbound;
      for (const rule of rules) {
        const o = this.#ruleOutcome(rule, packet);
        if (o === "allow") return "Allow";
        if (o === "deny") return "Deny";
        if (o === "pass") break;
      }
    }
    return "Deny";
  }

  #ruleOutcome(rule: CompiledRule, packet: Packet): Outcome {
    if (!this.#ruleMatches(rule, packet)) return "skip";
    switch (rule.action) {
      case "Allow":
        return "allow";
      case "Deny":
        return "deny";
      case "Log":
        return "log";
      case "Pass":
        return "pass";
    }
  }

  #ruleMatches(rule: CompiledRule, packet: Packet): boolean {
    if (rule.ipVersion !== undefined && rule.ipVersion !== packet.family) return false;
    // A rule whose nets on some side are all of the other family is not rendered for this one.
    for (const m of [rule.src, rule.dst]) {
      for (const list of [m.nets, m.notNets]) {
        if (list && list.length > 0 && !list.some((n) => parseCIDR(n)?.family === packet.family))
          return false;
      }
    }
    if (rule.protocol !== undefined && rule.protocol !== packet.protocol) return false;
    if (rule.notProtocol !== undefined && rule.notProtocol === packet.protocol) return false;
    if (rule.icmp) {
      const m = icmpMatches(rule.icmp, packet.icmp);
      if (m !== true) return false;
    }
    if (rule.notICMP) {
      const m = icmpMatches(rule.notICMP, packet.icmp);
      if (m !== false) return false;
    }
    return (
      this.#sideMatches(rule.src, packet.src, packet) &&
      this.#sideMatches(rule.dst, packet.dst, packet)
    );
  }

  #sideMatches(
    m: CompiledMatch,
    end: { ip: IPAddress; port: number | undefined },
    packet: Packet,
  ): boolean {
    const ofFamily = (list: readonly string[] | undefined) =>
      (list ?? []).flatMap((n) => {
        const c = parseCIDR(n);
        return c && c.family === packet.family ? [c] : [];
      });
    const nets = ofFamily(m.nets);
    if (nets.length > 0 && !nets.some((c) => cidrContainsIP(c, end.ip))) return false;
    if (ofFamily(m.notNets).some((c) => cidrContainsIP(c, end.ip))) return false;
    for (const id of m.ipSets ?? []) if (!this.#inSet(id, end.ip)) return false;
    for (const id of m.notIpSets ?? []) if (this.#inSet(id, end.ip)) return false;

    const hasPorts = (m.ports?.length ?? 0) > 0 || (m.namedPortIpSets?.length ?? 0) > 0;
    const hasNotPorts = (m.notPorts?.length ?? 0) > 0 || (m.notNamedPortIpSets?.length ?? 0) > 0;
    if ((hasPorts || hasNotPorts) && end.port === undefined) return false;
    const port = end.port ?? 0;
    const portHit = (
      ranges: CompiledMatch["ports"],
      named: CompiledMatch["namedPortIpSets"],
    ): boolean =>
      (ranges ?? []).some((r) => port >= r.first && port <= r.last) ||
      (named ?? []).some((id) => this.#inPortSet(id, end.ip, packet.protocol, port));
    if (hasPorts && !portHit(m.ports, m.namedPortIpSets)) return false;
    if (hasNotPorts && portHit(m.notPorts, m.notNamedPortIpSets)) return false;
    return true;
  }

  #parsedSet(id: string): { nets: CIDR[]; ports: { net: CIDR; key: string }[] } {
    let p = this.#parsed.get(id);
    if (p) return p;
    const set = this.#ipsets.get(id);
    if (!set) throw new Error(`ipset "${id}" is not there`);
    p = { nets: [], ports: [] };
    for (const member of set.members) {
      const comma = member.indexOf(",");
      if (comma < 0) {
        const c = parseCIDR(member);
        if (!c) throw new Error(`ipset "${id}": member "${member}" is not a CIDR`);
        p.nets.push(c);
      } else {
        const c = parseCIDR(member.slice(0, comma));
        if (!c || !/^(tcp|udp|sctp):[0-9]+$/.test(member.slice(comma + 1)))
          throw new Error(`ipset "${id}": member "${member}" is not "cidr,proto:port"`);
        p.ports.push({ net: c, key: member.slice(comma + 1) });
      }
    }
    this.#parsed.set(id, p);
    return p;
  }

  #inSet(id: string, ip: IPAddress): boolean {
    return this.#parsedSet(id).nets.some((c) => cidrContainsIP(c, ip));
  }

  #inPortSet(id: string, ip: IPAddress, protocol: number, port: number): boolean {
    const name = PROTOCOL_NAMES[protocol];
    if (name === undefined) return false;
    const key = `${name}:${port}`;
    return this.#parsedSet(id).ports.some((p) => p.key === key && cidrContainsIP(p.net, ip));
  }
}

/** true / false, or "unknown" when the rule asks about a type or code the flow does not give. */
function icmpMatches(
  fields: { type: number; code?: number },
  icmp: ModelFlow["icmp"],
): boolean | "unknown" {
  if (!icmp) return "unknown";
  if (icmp.type !== fields.type) return false;
  if (fields.code === undefined) return true;
  if (icmp.code === undefined) return "unknown";
  return icmp.code === fields.code;
}
