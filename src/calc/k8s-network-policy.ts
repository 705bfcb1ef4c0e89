// Translates a Kubernetes NetworkPolicy (networking.k8s.io/v1) into the Calico
// NetworkPolicy (projectcalico.org/v3) that enforces it, following Calico's
// own converter (libcalico-go, backend/k8s/conversion) rule for rule, so that
// the policy twill evaluates is the one Calico would:
//
// - name "knp.default.<name>", the same namespace, tier "default", order 1000;
// - selector: `projectcalico.org/orchestrator == 'k8s'` && the pod selector;
// - types from policyTypes (Ingress first, duplicates collapsed; none given
//   means Ingress);
// - each k8s rule becomes one Allow rule per (protocol, peer), protocols in
//   sorted order ("SCTP" < "TCP" < "UDP") on the outside, peers in the given
//   order inside. A rule without ports has no protocol and matches all
//   traffic from (to) its peers; a rule without peers matches any peer.
// - a pod selector becomes `orchestrator == 'k8s' && ...` (so it never
//   matches host endpoints or non-k8s workloads); a namespace selector is
//   translated bare, `{}` meaning all(); a peer with only a namespace
//   selector gets the orchestrator term alone as its selector. An ipBlock
//   becomes nets [cidr] and notNets except.
// - ports of one protocol are merged as Calico merges them: numeric ports
//   and ranges coalesced into sorted maximal ranges after the named ports
//   (unless there is at most one numeric port, when the list is kept as
//   given); a port entry without `port` means every port of its protocol and
//   overrides the others of that protocol.
//
// Deny-by-default needs nothing here: the policy selects its pods in the
// default tier, and a tier in which a policy applied but no rule matched drops.
// The input is validated (and defaulted) by the k8s NetworkPolicy schema; the
// output is in stored form (what validateResource returns for it).
import type {
  K8sNetworkPolicy,
  K8sNetworkPolicySpec,
  LabelSelector,
} from "../api/schemas/k8s-network-policy.js";
import type {
  NetworkPolicy,
  NetworkPolicySpec,
  PolicyType,
} from "../api/schemas/network-policy.js";
import type { EntityRule, Port, Rule } from "../api/schemas/rule.js";
import { formatCIDR, parseCIDR } from "../api/ip.js";
import { compareCodePoints } from "../selector/index.js";
import { TwillError } from "../util/errors.js";

/** Prefix of the names of translated policies. */
export const K8S_POLICY_NAME_PREFIX = "knp.default.";

/** Where translated policies sit in the default tier. */
export const K8S_POLICY_ORDER = 1000;

/** The term every translated pod selector starts with. */
export const K8S_ORCHESTRATOR_SELECTOR = "projectcalico.org/orchestrator == 'k8s'";

/**
 * The translated policy: a NetworkPolicy whose namespace and spec are always
 * present (the inferred NetworkPolicy type leaves both optional).
 */
export type TranslatedNetworkPolicy = NetworkPolicy & {
  metadata: NetworkPolicy["metadata"] & { namespace: string };
  spec: NetworkPolicySpec;
};

/** What the schema makes of a NetworkPolicy without a spec. */
const EMPTY_SPEC: K8sNetworkPolicySpec = { podSelector: {}, policyTypes: ["Ingress"] };

type IngressRule = NonNullable<K8sNetworkPolicySpec["ingress"]>[number];
type EgressRule = NonNullable<K8sNetworkPolicySpec["egress"]>[number];
type Peer = NonNullable<IngressRule["from"]>[number];
type K8sPort = NonNullable<IngressRule["ports"]>[number];
type K8sProtocol = K8sPort["protocol"];

/** A port or inclusive range, or a named port. */
type PortItem = { min: number; max: number } | { name: string };

/**
 * Calico selector text for a Kubernetes label selector: the prefix term (if
 * any), then `k == 'v'` for matchLabels in key order, then matchExpressions
 * in their order (`k in { 'a', 'b' }`, `k not in { ... }`, `has(k)`,
 * `! has(k)`), joined with ` && `. With no terms at all: `all()`.
 */
export function labelSelectorToSelector(sel: LabelSelector, options?: { prefix?: string }): string {
  const terms: string[] = [];
  if (options?.prefix) terms.push(options.prefix);
  const labels = sel.matchLabels ?? {};
  for (const key of Object.keys(labels).sort(compareCodePoints)) {
    terms.push(`${key} == '${labels[key] ?? ""}'`);
  }
  for (const req of sel.matchExpressions ?? []) {
    const values = req.values ?? [];
    switch (req.operator) {
      case "In":
      case "NotIn": {
        if (values.length === 0) {
          throw new TwillError(
            "Invalid",
            `label selector requirement on "${req.key}": operator ${req.operator} needs at least one value`,
          );
        }
        const op = req.operator === "In" ? "in" : "not in";
        terms.push(`${req.key} ${op} { '${values.join("', '")}' }`);
        break;
      }
      case "Exists":
        terms.push(`has(${req.key})`);
        break;
      case "DoesNotExist":
        terms.push(`! has(${req.key})`);
        break;
    }
  }
  return terms.length === 0 ? "all()" : terms.join(" && ");
}

/** The Calico NetworkPolicy that enforces a Kubernetes NetworkPolicy. */
export function translateK8sNetworkPolicy(np: K8sNetworkPolicy): TranslatedNetworkPolicy {
  const spec = np.spec ?? EMPTY_SPEC;
  const ingress = (spec.ingress ?? []).flatMap((r: IngressRule) =>
    translateRule(r.from, r.ports, "ingress"),
  );
  const egress = (spec.egress ?? []).flatMap((r: EgressRule) =>
    translateRule(r.to, r.ports, "egress"),
  );

  const types: PolicyType[] = [];
  if (spec.policyTypes.includes("Ingress")) types.push("Ingress");
  if (spec.policyTypes.includes("Egress")) types.push("Egress");
  if (types.length === 0) types.push("Ingress");

  // The inferred metadata type of the k8s kind lacks `namespace` as well.
  const sourceMeta: K8sNetworkPolicy["metadata"] & { namespace?: string | undefined } = np.metadata;
  const metadata: TranslatedNetworkPolicy["metadata"] = {
    name: K8S_POLICY_NAME_PREFIX + sourceMeta.name,
    namespace: sourceMeta.namespace ?? "default",
  };
  const uid = np.metadata.uid === undefined ? undefined : derivedUid(np.metadata.uid);
  if (uid !== undefined) metadata.uid = uid;
  if (np.metadata.resourceVersion !== undefined) {
    metadata.resourceVersion = np.metadata.resourceVersion;
  }
  if (np.metadata.creationTimestamp !== undefined) {
    metadata.creationTimestamp = np.metadata.creationTimestamp;
  }

  const out: TranslatedNetworkPolicy = {
    apiVersion: "projectcalico.org/v3",
    kind: "NetworkPolicy",
    metadata,
    spec: {
      tier: "default",
      order: K8S_POLICY_ORDER,
      selector: labelSelectorToSelector(spec.podSelector, { prefix: K8S_ORCHESTRATOR_SELECTOR }),
      types,
    },
  };
  if (ingress.length > 0) out.spec.ingress = ingress;
  if (egress.length > 0) out.spec.egress = egress;
  return out;
}

/**
 * One k8s rule as Calico rules: one per (protocol, peer), protocols sorted on
 * the outside. The peer goes on the remote side (source for ingress,
 * destination for egress); ports always on the destination.
 */
function translateRule(
  peers: Peer[] | undefined,
  ports: K8sPort[] | undefined,
  direction: "ingress" | "egress",
): Rule[] {
  // No peers: one rule per protocol that matches any peer.
  const remoteSides: (Peer | undefined)[] = peers && peers.length > 0 ? peers : [undefined];
  const rules: Rule[] = [];
  for (const [protocol, portItems] of portsByProtocol(ports)) {
    for (const peer of remoteSides) {
      // Fresh objects for every rule: no two rules share an array or object.
      const remote: EntityRule = peer ? peerToEntityRule(peer) : {};
      const destinationPorts: EntityRule =
        portItems.length > 0 ? { ports: portItems.map(portValue) } : {};
      const rule: Rule = { action: "Allow" };
      if (protocol !== undefined) rule.protocol = protocol;
      const source = direction === "ingress" ? remote : {};
      const destination =
        direction === "ingress" ? destinationPorts : { ...remote, ...destinationPorts };
      if (Object.keys(source).length > 0) rule.source = source;
      if (Object.keys(destination).length > 0) rule.destination = destination;
      rules.push(rule);
    }
  }
  return rules;
}

/**
 * The ports of a rule grouped by protocol, in sorted protocol order, each
 * list simplified. No ports at all: one group with no protocol (any traffic).
 * An empty list in a group means every port of that protocol.
 */
function portsByProtocol(ports: K8sPort[] | undefined): [K8sProtocol | undefined, PortItem[]][] {
  if (!ports || ports.length === 0) return [[undefined, []]];
  // undefined: every port of the protocol.
  const groups = new Map<K8sProtocol, PortItem[] | undefined>();
  for (const p of ports) {
    if (p.port === undefined) {
      groups.set(p.protocol, undefined);
      continue;
    }
    if (groups.has(p.protocol) && groups.get(p.protocol) === undefined) continue;
    const item: PortItem =
      typeof p.port === "string" ? { name: p.port } : { min: p.port, max: p.endPort ?? p.port };
    groups.set(p.protocol, [...(groups.get(p.protocol) ?? []), item]);
  }
  return [...groups.keys()]
    .sort(compareCodePoints)
    .map((protocol) => [protocol, simplifyPorts(groups.get(protocol) ?? [])]);
}

/**
 * Calico's port merge: with two or more numeric ports in all, the named ports
 * (in order) followed by the numeric ports as sorted maximal ranges
 * (adjacent and overlapping ranges joined). Otherwise the list unchanged.
 */
function simplifyPorts(items: PortItem[]): PortItem[] {
  if (items.length <= 1) return items;
  const named = items.filter((p) => "name" in p);
  const numeric = items.filter((p): p is { min: number; max: number } => "min" in p);
  const count = numeric.reduce((n, p) => n + (p.max - p.min + 1), 0);
  if (count <= 1) return items;
  const sorted = [...numeric].sort((a, b) => a.min - b.min || a.max - b.max);
  const merged: { min: number; max: number }[] = [];
  for (const p of sorted) {
    const last = merged[merged.length - 1];
    if (last && p.min <= last.max + 1) last.max = Math.max(last.max, p.max);
    else merged.push({ min: p.min, max: p.max });
  }
  return [...named, ...merged];
}

/** A port item as Calico stores it: 80, "80:90" or "http". */
function portValue(p: PortItem): Port {
  if ("name" in p) return p.name;
  return p.min === p.max ? p.min : `${p.min}:${p.max}`;
}

/** One peer as the remote side's matches (fields in Calico's order). */
function peerToEntityRule(peer: Peer): EntityRule {
  if (peer.ipBlock) {
    const side: EntityRule = { nets: [canonicalCidr(peer.ipBlock.cidr)] };
    const except = peer.ipBlock.except ?? [];
    if (except.length > 0) side.notNets = except.map(canonicalCidr);
    return side;
  }
  const side: EntityRule = {
    selector: labelSelectorToSelector(peer.podSelector ?? {}, {
      prefix: K8S_ORCHESTRATOR_SELECTOR,
    }),
  };
  if (peer.namespaceSelector)
    side.namespaceSelector = labelSelectorToSelector(peer.namespaceSelector);
  return side;
}

/** "10.0.0.1/8" → "10.0.0.0/8": the network, as Calico writes it. */
function canonicalCidr(text: string): string {
  const cidr = parseCIDR(text);
  if (!cidr) throw new TwillError("Invalid", `ipBlock CIDR "${text}" is not a CIDR`);
  return formatCIDR(cidr);
}

/**
 * The uid of the translated policy: the source's UUID with the bits of every
 * byte reversed except the version (7th) and variant (9th) bytes, as Calico
 * derives it, so that the two objects never share a uid. Undefined for a uid
 * that is not a UUID.
 */
function derivedUid(uid: string): string | undefined {
  const m = /^([0-9a-f]{8})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{4})-([0-9a-f]{12})$/i.exec(uid);
  if (!m) return undefined;
  const hex = m.slice(1).join("");
  const bytes: number[] = [];
  for (let i = 0; i < 16; i++) bytes.push(parseInt(hex.slice(2 * i, 2 * i + 2), 16));
  const out = bytes.map((b, i) => (i === 6 || i === 8 ? b : reverseBits(b)));
  const h = out.map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

function reverseBits(byte: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((byte >> i) & 1) << (7 - i);
  return r;
}
