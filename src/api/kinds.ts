// The registry of resource kinds twill understands: their API group, names as
// the CLI accepts them (singular, plural, short names, as calicoctl and
// kubectl do), and whether they live in a namespace. Schemas are attached in
// schemas/index.ts; this file holds only naming so that the datastore and CLI
// can depend on it without pulling in validation.

export const CALICO_API_VERSION = "projectcalico.org/v3";
export const K8S_NETWORKING_API_VERSION = "networking.k8s.io/v1";

/** Stable identifier of a kind: the Calico kind name, or `Kind.group` for other groups. */
export type KindId =
  | "Node"
  | "WorkloadEndpoint"
  | "HostEndpoint"
  | "Profile"
  | "Tier"
  | "GlobalNetworkPolicy"
  | "NetworkPolicy"
  | "GlobalNetworkSet"
  | "NetworkSet"
  | "IPPool"
  | "IPReservation"
  | "IPAMConfiguration"
  | "BGPConfiguration"
  | "BGPPeer"
  | "FelixConfiguration"
  | "ClusterInformation"
  | "NetworkPolicy.networking.k8s.io";

export interface KindInfo {
  id: KindId;
  apiVersion: string;
  kind: string;
  namespaced: boolean;
  /** Lower-case plural, used in datastore keys and `twill get` headings. */
  plural: string;
  /** Every name the CLI accepts, lower case (singular, plural, short names). */
  aliases: readonly string[];
  /** One line for `twill get --help` and the docs index. */
  summary: string;
}

const c = CALICO_API_VERSION;

export const KINDS: readonly KindInfo[] = [
  {
    id: "Node",
    apiVersion: c,
    kind: "Node",
    namespaced: false,
    plural: "nodes",
    aliases: ["node", "nodes", "no"],
    summary: "A host running twill: its addresses, AS number and BGP role.",
  },
  {
    id: "WorkloadEndpoint",
    apiVersion: c,
    kind: "WorkloadEndpoint",
    namespaced: true,
    plural: "workloadendpoints",
    aliases: ["workloadendpoint", "workloadendpoints", "wep", "weps"],
    summary: "A workload's network interface: addresses, labels and profiles.",
  },
  {
    id: "HostEndpoint",
    apiVersion: c,
    kind: "HostEndpoint",
    namespaced: false,
    plural: "hostendpoints",
    aliases: ["hostendpoint", "hostendpoints", "hep", "heps"],
    summary: "A host's own interface, so policy can protect the host.",
  },
  {
    id: "Profile",
    apiVersion: c,
    kind: "Profile",
    namespaced: false,
    plural: "profiles",
    aliases: ["profile", "profiles", "pro", "pros"],
    summary: "Default rules and labels shared by the endpoints that name it.",
  },
  {
    id: "Tier",
    apiVersion: c,
    kind: "Tier",
    namespaced: false,
    plural: "tiers",
    aliases: ["tier", "tiers"],
    summary: "An ordered group of policies evaluated before the next tier.",
  },
  {
    id: "GlobalNetworkPolicy",
    apiVersion: c,
    kind: "GlobalNetworkPolicy",
    namespaced: false,
    plural: "globalnetworkpolicies",
    aliases: ["globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps", "cgnp"],
    summary: "Ordered allow/deny rules for endpoints in every namespace and hosts.",
  },
  {
    id: "NetworkPolicy",
    apiVersion: c,
    kind: "NetworkPolicy",
    namespaced: true,
    plural: "networkpolicies",
    aliases: [
      "networkpolicy",
      "networkpolicies",
      "netpol",
      "netpols",
      "np",
      "nps",
      "policy",
      "policies",
      "pol",
      "pols",
    ],
    summary: "Ordered allow/deny rules for the endpoints of one namespace.",
  },
  {
    id: "GlobalNetworkSet",
    apiVersion: c,
    kind: "GlobalNetworkSet",
    namespaced: false,
    plural: "globalnetworksets",
    aliases: ["globalnetworkset", "globalnetworksets", "gns", "gnss", "globalnetsets"],
    summary: "A labelled set of CIDRs that policy selectors can match.",
  },
  {
    id: "NetworkSet",
    apiVersion: c,
    kind: "NetworkSet",
    namespaced: true,
    plural: "networksets",
    aliases: ["networkset", "networksets", "netset", "netsets", "ns"],
    summary: "A labelled set of CIDRs within one namespace.",
  },
  {
    id: "IPPool",
    apiVersion: c,
    kind: "IPPool",
    namespaced: false,
    plural: "ippools",
    aliases: ["ippool", "ippools", "ipp", "ipps", "pool", "pools"],
    summary: "A range of workload addresses, split into blocks that hosts claim.",
  },
  {
    id: "IPReservation",
    apiVersion: c,
    kind: "IPReservation",
    namespaced: false,
    plural: "ipreservations",
    aliases: ["ipreservation", "ipreservations", "ipr", "iprs"],
    summary: "Addresses inside pools that IPAM must never hand out.",
  },
  {
    id: "IPAMConfiguration",
    apiVersion: c,
    kind: "IPAMConfiguration",
    namespaced: false,
    plural: "ipamconfigurations",
    aliases: ["ipamconfiguration", "ipamconfigurations", "ipamconfig", "ipamconfigs"],
    summary: "Cluster-wide IPAM settings (strict affinity, blocks per host).",
  },
  {
    id: "BGPConfiguration",
    apiVersion: c,
    kind: "BGPConfiguration",
    namespaced: false,
    plural: "bgpconfigurations",
    aliases: ["bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"],
    summary: "Cluster-wide or per-node BGP settings: AS number, mesh, advertisements.",
  },
  {
    id: "BGPPeer",
    apiVersion: c,
    kind: "BGPPeer",
    namespaced: false,
    plural: "bgppeers",
    aliases: ["bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"],
    summary: "A BGP session to a router or to other twill nodes.",
  },
  {
    id: "FelixConfiguration",
    apiVersion: c,
    kind: "FelixConfiguration",
    namespaced: false,
    plural: "felixconfigurations",
    aliases: ["felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs"],
    summary: "Agent settings, cluster-wide (`default`) or per node (`node.<name>`).",
  },
  {
    id: "ClusterInformation",
    apiVersion: c,
    kind: "ClusterInformation",
    namespaced: false,
    plural: "clusterinformations",
    aliases: ["clusterinformation", "clusterinformations", "clusterinfo", "clusterinfos"],
    summary: "Cluster-wide facts: cluster GUID, type, datastore readiness.",
  },
  {
    id: "NetworkPolicy.networking.k8s.io",
    apiVersion: K8S_NETWORKING_API_VERSION,
    kind: "NetworkPolicy",
    namespaced: true,
    plural: "networkpolicies.networking.k8s.io",
    aliases: [
      "networkpolicy.networking.k8s.io",
      "networkpolicies.networking.k8s.io",
      "k8snetworkpolicy",
      "k8snetworkpolicies",
      "knp",
    ],
    summary: "A Kubernetes NetworkPolicy, stored as given and translated by the agent.",
  },
];

const byAlias = new Map<string, KindInfo>();
for (const k of KINDS) for (const a of k.aliases) byAlias.set(a, k);

/** The kind a CLI word names (case-insensitive), or undefined. */
export function lookupKind(word: string): KindInfo | undefined {
  return byAlias.get(word.toLowerCase());
}

/** The kind of a document's `apiVersion` and `kind`, or undefined. */
export function kindOf(apiVersion: unknown, kind: unknown): KindInfo | undefined {
  return KINDS.find((k) => k.apiVersion === apiVersion && k.kind === kind);
}

export function kindById(id: KindId): KindInfo {
  const k = KINDS.find((x) => x.id === id);
  if (!k) throw new Error(`unknown kind id "${id}"`);
  return k;
}
