// The one message type between the calculation graph and the dataplane: a
// closed, discriminated union that dataplane managers consume with
// exhaustive switches. The graph emits these only from `flush()`, in the
// dependency order fixed in flush-order.ts, so a consumer applying them in
// sequence never sees a reference to something it has not been told about:
//
//   ipset updates → policy updates → profile updates → endpoint updates → routes
//   route removes → endpoint removes → profile removes → policy removes → ipset removes
//
// and `in-sync` only after the datastore syncer reported in-sync.

/**
 * An IP set member: a CIDR ("10.65.0.5/32", "fd00::5/128", "198.51.100.0/24")
 * for selector sets, or "address,protocol:port" ("10.65.0.5/32,tcp:8080")
 * for named-port sets. IPv4 and IPv6 members share a set; the dataplane
 * splits them by family.
 */
export type IPSetMember = string;

export type IPSetKind = "net" | "net-port";

export interface IPSetInfo {
  id: string;
  kind: IPSetKind;
  /** The selector whose matches it holds (canonical form), for comments and explain. */
  selector: string;
  /** For named-port sets: which port name and protocol. */
  namedPort?: { name: string; protocol: NamedPortProtocol };
}

export type NamedPortProtocol = "tcp" | "udp" | "sctp";

export interface PortRange {
  first: number;
  last: number;
}

/**
 * One side (source or destination) of a compiled rule. Every present field
 * must match (AND). Within `ports` and `namedPortIpSets` any may match
 * (together one OR-list: a packet matches when its port is in `ports` or its
 * (address, protocol, port) is in one of the named-port sets).
 */
export interface CompiledMatch {
  nets?: string[];
  notNets?: string[];
  /** The address must be in every one of these selector sets. */
  ipSets?: string[];
  /** The address must be in none of these. */
  notIpSets?: string[];
  ports?: PortRange[];
  namedPortIpSets?: string[];
  notPorts?: PortRange[];
  notNamedPortIpSets?: string[];
}

export type RuleAction = "Allow" | "Deny" | "Log" | "Pass";

export interface CompiledRule {
  action: RuleAction;
  ipVersion?: 4 | 6;
  /** IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, 132 SCTP, 136 UDPLite). */
  protocol?: number;
  notProtocol?: number;
  icmp?: { type: number; code?: number };
  notICMP?: { type: number; code?: number };
  src: CompiledMatch;
  dst: CompiledMatch;
  /** Stable id: `<policy or profile id>/<ingress|egress>/<index>`, for comments and explain. */
  ruleId: string;
}

export interface CompiledPolicy {
  /** `<tier>/<name>` for global policies, `<tier>/<namespace>/<name>` for namespaced ones. */
  id: string;
  tier: string;
  name: string;
  namespace?: string;
  /** Rules for traffic arriving at the endpoint (empty when the policy has no Ingress type). */
  inbound: CompiledRule[];
  /** Rules for traffic leaving the endpoint (empty when the policy has no Egress type). */
  outbound: CompiledRule[];
}

export interface CompiledProfile {
  id: string;
  inbound: CompiledRule[];
  outbound: CompiledRule[];
}

/** The policies of one tier that apply to an endpoint, in evaluation order. */
export interface TierPolicies {
  name: string;
  /** What happens when a policy applied but no rule decided: Deny (drop) or Pass (next tier). */
  defaultAction: "Deny" | "Pass";
  ingress: string[];
  egress: string[];
}

export interface LocalEndpoint {
  /** `workload/<namespace>/<name>` or `host/<name>`. */
  id: string;
  kind: "workload" | "host";
  name: string;
  namespace?: string;
  /** The host-side interface (workloads) or the host interface ("*" = all interfaces). */
  interfaceName: string;
  /** Workload addresses / host endpoint expected IPs, as CIDRs (/32, /128). */
  ipv4Nets: string[];
  ipv6Nets: string[];
  mac?: string;
  /** Source prefixes a workload may send from besides its own addresses. */
  allowSpoofedSourcePrefixes: string[];
  /** Tiers with applicable normal policies, in evaluation order. */
  tiers: TierPolicies[];
  /** Host endpoints only: policies with applyOnForward, preDNAT, doNotTrack. */
  forwardTiers: TierPolicies[];
  preDnatTiers: TierPolicies[];
  untrackedTiers: TierPolicies[];
  /** Profiles that exist, in order. */
  profileIds: string[];
  /**
   * Profiles the endpoint names that do not exist. When non-empty the profile
   * stage denies (fail closed) instead of evaluating profileIds.
   */
  missingProfiles: string[];
}

export interface Route {
  /** The destination, e.g. "10.65.0.5/32". */
  dst: string;
  /** Local workload route: straight out of this interface (scope link). */
  interfaceName: string;
  endpointId: string;
}

export type DataplaneMessage =
  | { type: "ipset-update"; ipset: IPSetInfo; members: IPSetMember[] }
  | { type: "ipset-delta"; id: string; added: IPSetMember[]; removed: IPSetMember[] }
  | { type: "ipset-remove"; id: string }
  | { type: "policy-update"; policy: CompiledPolicy }
  | { type: "policy-remove"; id: string }
  | { type: "profile-update"; profile: CompiledProfile }
  | { type: "profile-remove"; id: string }
  | { type: "endpoint-update"; endpoint: LocalEndpoint }
  | { type: "endpoint-remove"; id: string }
  | { type: "route-update"; route: Route }
  | { type: "route-remove"; dst: string }
  | { type: "in-sync" };
