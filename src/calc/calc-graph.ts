// The calculation graph: synchronous, incremental, pure. Resource updates
// from the syncer go in; this host's desired dataplane state comes out of
// flush() as DataplaneMessages (messages.ts), in dependency order.
//
//   updates ──► items (endpoints, network sets) ──► effective labels
//                  │                                   │
//                  │          policy index ◄───────────┤ (local endpoints only)
//                  │          (policy selectors)       │
//                  │              │ matches            │
//                  │              ▼                    │
//                  │     active policies ──► compiled rules ──► IP set refs
//                  │     local endpoints' tiers              │
//                  │                                         ▼
//                  └────────────────────────────────► ipset index (all items,
//                                                     active selectors only)
//                                                            │
//                                                   IP set members (refcounted)
//
// Invariants:
// - Only policies that select a local endpoint are active, and only the IP
//   sets their (and active profiles') rules use exist. Remote endpoints feed
//   only IP set membership.
// - Both label indexes find candidates through label buckets, so one
//   endpoint or one selector change costs in proportion to what it touches.
// - Nothing is emitted before the syncer's first in-sync; then every flush
//   emits the difference between what was last sent and what is desired.
// - The semantics of labels and selectors live in model.ts, shared with
//   explain.ts (the brute-force reference this graph is tested against).
// - Memory is per endpoint, and there may be hundreds of thousands: an item
//   keeps no resource (local endpoints excepted), only its id, canonical
//   nets, a shared list of named ports, and one label object whose prototype
//   holds what its group (same namespace, orchestrator and profiles)
//   inherits (model.ts, layeredLabels). Both label indexes hold that same
//   object and index only the label keys some selector reads. About 1 KB per
//   endpoint in all (docs/benchmarks.md, `calc`).
import type { KindId } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import type { GlobalNetworkPolicy, NetworkPolicy } from "../api/schemas/network-policy.js";
import type { EntityRule, Rule } from "../api/schemas/rule.js";
import type { Profile } from "../api/schemas/profile.js";
import type { Tier } from "../api/schemas/tier.js";
import type { WorkloadEndpoint } from "../api/schemas/workload-endpoint.js";
import type { HostEndpoint } from "../api/schemas/host-endpoint.js";
import type { GlobalNetworkSet, NetworkSet } from "../api/schemas/network-set.js";
import type { K8sNetworkPolicy } from "../api/schemas/k8s-network-policy.js";
import { DEFAULT_TIER_ORDER } from "../api/schemas/tier.js";
import { parseCIDR, formatIP } from "../api/ip.js";
import { parseSelector } from "../selector/index.js";
import type { Selector } from "../selector/index.js";
import { LabelIndex } from "./label-index.js";
import { translateK8sNetworkPolicy } from "./k8s-network-policy.js";
import type {
  CompiledMatch,
  CompiledPolicy,
  CompiledProfile,
  CompiledRule,
  DataplaneMessage,
  IPSetInfo,
  LocalEndpoint,
  NamedPortProtocol,
  PortRange,
  Route,
  TierPolicies,
} from "./messages.js";
import {
  DEFAULT_TIER,
  compareOrderThenName,
  inheritedLabels,
  layeredLabels,
  namespaceLabels,
  namespaceProfileName,
  policyEndpointSelector,
  protocolNumberOf,
  relayeredLabels,
  ruleSideNotSelector,
  ruleSideSelector,
  stableHash,
} from "./model.js";
import type { Labels } from "./model.js";

export type CalcInput =
  | { type: "put"; resource: Resource }
  | { type: "delete"; kind: { id: KindId }; name: string; namespace?: string }
  | { type: "status"; status: "waiting" | "resyncing" | "in-sync" };

export interface CalcGraphOptions {
  /** This host's node name: endpoints whose `node` equals it are local. */
  hostname: string;
}

/** A problem with one input resource; the graph skips it and carries on. */
export interface CalcError {
  resource: string;
  message: string;
}

type ItemKind = "workload" | "host" | "netset" | "gnetset";

interface NamedPort {
  name: string;
  protocol: NamedPortProtocol;
  port: number;
}

/** An endpoint or network set as the syncer gave it, before the graph files it. */
interface ItemInput {
  id: string;
  kind: ItemKind;
  namespace?: string;
  ownLabels: Labels | undefined;
  profiles: readonly string[];
  orchestrator?: string;
  serviceAccount?: string;
  nets: readonly string[];
  ports: readonly NamedPort[];
  local: boolean;
  resource?: WorkloadEndpoint | HostEndpoint;
}

/**
 * Items with the same namespace, orchestrator and profiles: they inherit the
 * same labels, held once (`inherited`, the prototype of each item's labels;
 * see layeredLabels). A quarter of a million endpoints fall in a few
 * thousand groups.
 */
interface LabelGroup {
  readonly namespace: string | undefined;
  readonly orchestrator: string | undefined;
  readonly profiles: readonly string[];
  /** Replaced, never changed, when a profile's labels change: the label indexes hold the old one. */
  inherited: Labels;
  readonly items: Set<string>;
}

/**
 * An endpoint or network set: anything a selector can match. Kept small, as
 * there can be hundreds of thousands: the raw resource is not kept (except
 * for local endpoints), nor the own labels apart from `labels`.
 */
interface Item {
  readonly id: string;
  readonly kind: ItemKind;
  readonly group: LabelGroup;
  /** Effective labels: own labels over the group's inherited ones (layeredLabels). */
  labels: Labels;
  /** Addresses as canonical CIDRs. */
  readonly nets: readonly string[];
  readonly ports: readonly NamedPort[];
  readonly local: boolean;
  /** For local endpoints: the resource, to build the LocalEndpoint message. */
  readonly resource: WorkloadEndpoint | HostEndpoint | undefined;
}

interface PolicyRecord {
  id: string;
  tier: string;
  name: string;
  namespace?: string;
  order?: number;
  ingress: boolean;
  egress: boolean;
  mode: "normal" | "preDNAT" | "doNotTrack";
  applyOnForward: boolean;
  selector: Selector;
  inboundRules: readonly Rule[];
  outboundRules: readonly Rule[];
}

interface IPSetRecord {
  info: IPSetInfo;
  selector: Selector;
  refs: number;
  members: Map<string, number>;
}

interface Activation<T> {
  compiled: T;
  ipsets: string[];
}

const POLICY_KINDS = new Set<KindId>([
  "GlobalNetworkPolicy",
  "NetworkPolicy",
  "NetworkPolicy.networking.k8s.io",
]);

/**
 * An item's id. Built with join, not a template: V8 keeps a template's result
 * as a tree of concatenations (holding the resource's name string), several
 * times the size of the flat string join makes, and every item keeps its id.
 */
function itemIdOf(kind: KindId, name: string, namespace?: string): string | undefined {
  switch (kind) {
    case "WorkloadEndpoint":
      return ["workload", namespace ?? "default", name].join("/");
    case "HostEndpoint":
      return ["host", name].join("/");
    case "NetworkSet":
      return ["netset", namespace ?? "default", name].join("/");
    case "GlobalNetworkSet":
      return ["gnetset", name].join("/");
    default:
      return undefined;
  }
}

function policyIdOf(tier: string, name: string, namespace?: string): string {
  return namespace === undefined ? `${tier}/${name}` : `${tier}/${namespace}/${name}`;
}

/**
 * Canonical CIDR texts, in an exactly sized array (one per endpoint: an array
 * grown by push would carry room for 16 more), each a flat string (joined,
 * see itemIdOf).
 */
function canonicalNets(texts: readonly string[] | undefined): string[] {
  if (texts === undefined || texts.length === 0) return [];
  const out: string[] = [];
  for (const t of texts) {
    const c = parseCIDR(t, { allowBareIP: true });
    if (c) out.push([formatIP(c.family, c.network), c.prefixLength].join("/"));
  }
  return out.slice();
}

/** The named-port protocol of a protocol given by name or number (6, 17, 132), if it has ports. */
function portProtocolOf(protocol: unknown): NamedPortProtocol | undefined {
  switch (protocolNumberOf(protocol as string | number | undefined)) {
    case 6:
      return "tcp";
    case 17:
      return "udp";
    case 132:
      return "sctp";
    default:
      return undefined;
  }
}

function namedPortsOf(
  ports: readonly { name?: string | undefined; protocol: unknown; port: number }[] | undefined,
): NamedPort[] {
  const out: NamedPort[] = [];
  for (const p of ports ?? []) {
    if (p.name === undefined) continue;
    const proto = portProtocolOf(p.protocol);
    if (proto !== undefined) out.push({ name: p.name, protocol: proto, port: p.port });
  }
  return out;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function sameContributions(a: Item, b: Item): boolean {
  return (
    sameStrings(a.nets, b.nets) &&
    a.ports.length === b.ports.length &&
    a.ports.every(
      (p, i) =>
        p.name === b.ports[i]?.name &&
        p.protocol === b.ports[i]?.protocol &&
        p.port === b.ports[i]?.port,
    )
  );
}

/** Parses "80" / 80 / "80:90" into a range; names return undefined. */
function numericPort(p: string | number): PortRange | undefined {
  if (typeof p === "number") return { first: p, last: p };
  const m = /^([0-9]+)(?::([0-9]+))?$/.exec(p);
  if (!m) return undefined;
  const first = Number(m[1]);
  return { first, last: m[2] === undefined ? first : Number(m[2]) };
}

/**
 * Parses every selector of the rules, throwing on a malformed one: called
 * before a put changes anything, so a bad rule fails its own update rather
 * than a later label-index callback (which would leave the graph half done).
 */
function checkRuleSelectors(rules: readonly Rule[], namespace: string | undefined): void {
  for (const rule of rules) {
    for (const side of [rule.source, rule.destination]) {
      if (!side) continue;
      ruleSideSelector(side, namespace);
      ruleSideNotSelector(side);
    }
  }
}

const NO_PORTS: readonly NamedPort[] = Object.freeze([]);
/** Distinct named-port lists kept for sharing (see #internPorts). */
const PORT_LISTS_MAX = 4096;
const EMPTY_LABELS: Labels = Object.freeze(Object.create(null) as Labels);

export class CalcGraph {
  readonly #hostname: string;

  // --- Inputs, as the graph holds them.
  readonly #items = new Map<string, Item>();
  readonly #profiles = new Map<string, Profile>();
  readonly #tiers = new Map<string, { order?: number; defaultAction: "Deny" | "Pass" }>();
  readonly #policies = new Map<string, PolicyRecord>();
  /** resource key (kind/ns/name) → policy id, since a policy's id includes its tier. */
  readonly #policyIdByKey = new Map<string, string>();

  // --- Label inheritance: items grouped by what they inherit.
  /** By namespace (undefined: not namespaced); a namespace has one or a few. */
  readonly #groupsByNamespace = new Map<string | undefined, LabelGroup[]>();
  /** Profile name → the groups whose inherited labels it shapes (see #profilesShaping). */
  readonly #groupsByProfile = new Map<string, Set<LabelGroup>>();
  readonly #portLists = new Map<string, readonly NamedPort[]>();

  // --- Policy selection over local endpoints.
  readonly #policyIndex: LabelIndex<string, string>;
  readonly #policyMatchCount = new Map<string, number>();
  readonly #activePolicies = new Map<string, Activation<CompiledPolicy>>();

  // --- Profiles referenced by local endpoints.
  readonly #profileRefs = new Map<string, number>();
  readonly #activeProfiles = new Map<string, Activation<CompiledProfile>>();

  // --- IP sets over every item.
  readonly #ipsetIndex: LabelIndex<string, string>;
  readonly #ipsets = new Map<string, IPSetRecord>();
  /** While true, ipset index callbacks only track matches; updateItem adjusts members itself. */
  #itemUpdateInProgress = false;

  // --- Delta tracking towards the dataplane.
  #syncStatus: "waiting" | "resyncing" | "in-sync" = "waiting";
  #inSyncPending = false;
  readonly #dirtyIpsets = new Set<string>();
  /**
   * Per set, each member whose count went to or from zero since the last
   * flush, with whether it was present at that flush. After a flush the
   * dataplane holds exactly the members present then, so this is all a
   * flush needs to send deltas: no copy of what was sent is kept.
   */
  readonly #touchedMembers = new Map<string, Map<string, boolean>>();
  /** Sets the dataplane has been sent (and not told to remove). */
  readonly #sentIpsetIds = new Set<string>();
  /** Sent sets dropped since the last flush: their members at that flush. */
  readonly #retiredIpsets = new Map<string, string[]>();
  readonly #dirtyPolicies = new Set<string>();
  readonly #dirtyProfiles = new Set<string>();
  readonly #dirtyEndpoints = new Set<string>();
  readonly #sentPolicies = new Map<string, string>();
  readonly #sentProfiles = new Map<string, string>();
  readonly #sentEndpoints = new Map<string, string>();
  readonly #sentRoutes = new Map<string, string>();
  readonly #routesByEndpoint = new Map<string, Set<string>>();
  #sentInSync = false;
  readonly #errors: CalcError[] = [];

  constructor(options: CalcGraphOptions) {
    this.#hostname = options.hostname;
    this.#policyIndex = new LabelIndex<string, string>({
      onMatchStarted: (policyId, itemId) => this.#onPolicyMatch(policyId, itemId, +1),
      onMatchStopped: (policyId, itemId) => this.#onPolicyMatch(policyId, itemId, -1),
    });
    this.#ipsetIndex = new LabelIndex<string, string>({
      onMatchStarted: (setId, itemId) => this.#onIpsetMatch(setId, itemId, +1),
      onMatchStopped: (setId, itemId) => this.#onIpsetMatch(setId, itemId, -1),
    });
  }

  /** Applies a batch of updates from the syncer. Never throws for bad input: see drainErrors(). */
  onUpdates(updates: readonly CalcInput[]): void {
    for (const u of updates) {
      try {
        this.#onUpdate(u);
      } catch (err) {
        const what =
          u.type === "put"
            ? `${u.resource.kind} "${u.resource.metadata.name}"`
            : u.type === "delete"
              ? `${u.kind.id} "${u.name}"`
              : "status";
        this.#errors.push({
          resource: what,
          message: err instanceof Error ? err.message : String(err),
        });
      }
    }
  }

  /** Problems met since the last call (resources skipped), for the agent to log. */
  drainErrors(): CalcError[] {
    return this.#errors.splice(0);
  }

  get syncStatus(): "waiting" | "resyncing" | "in-sync" {
    return this.#syncStatus;
  }

  /** Counts for metrics and tests. */
  stats(): {
    items: number;
    localEndpoints: number;
    activePolicies: number;
    activeProfiles: number;
    ipsets: number;
  } {
    let local = 0;
    for (const it of this.#items.values()) if (it.local) local++;
    return {
      items: this.#items.size,
      localEndpoints: local,
      activePolicies: this.#activePolicies.size,
      activeProfiles: this.#activeProfiles.size,
      ipsets: this.#ipsets.size,
    };
  }

  #onUpdate(u: CalcInput): void {
    if (u.type === "status") {
      if (u.status === "in-sync" && this.#syncStatus !== "in-sync") {
        this.#inSyncPending = true;
        // The snapshot is in: file selectors by the buckets' real sizes.
        this.#policyIndex.replan();
        this.#ipsetIndex.replan();
      }
      this.#syncStatus = u.status;
      return;
    }
    if (u.type === "put") {
      this.#onPut(u.resource);
      return;
    }
    this.#onDelete(u.kind.id, u.name, u.namespace);
  }

  #onPut(res: Resource): void {
    const meta = res.metadata;
    switch (
      res.apiVersion === "networking.k8s.io/v1" ? "NetworkPolicy.networking.k8s.io" : res.kind
    ) {
      case "WorkloadEndpoint":
        this.#putItem(this.#workloadItem(res as WorkloadEndpoint));
        return;
      case "HostEndpoint":
        this.#putItem(this.#hostItem(res as HostEndpoint));
        return;
      case "NetworkSet": {
        const ns = res as NetworkSet;
        this.#putItem({
          id: itemIdOf("NetworkSet", meta.name, meta.namespace)!,
          kind: "netset",
          namespace: meta.namespace ?? "default",
          ownLabels: meta.labels ?? {},
          profiles: [],
          nets: canonicalNets(ns.spec?.nets),
          ports: [],
          local: false,
        });
        return;
      }
      case "GlobalNetworkSet": {
        const gns = res as GlobalNetworkSet;
        this.#putItem({
          id: itemIdOf("GlobalNetworkSet", meta.name)!,
          kind: "gnetset",
          ownLabels: meta.labels ?? {},
          profiles: [],
          nets: canonicalNets(gns.spec?.nets),
          ports: [],
          local: false,
        });
        return;
      }
      case "Profile":
        this.#putProfile(res as Profile);
        return;
      case "Tier":
        this.#putTier(res as Tier);
        return;
      case "GlobalNetworkPolicy":
        this.#putPolicy("GlobalNetworkPolicy", res as GlobalNetworkPolicy);
        return;
      case "NetworkPolicy":
        this.#putPolicy("NetworkPolicy", res as NetworkPolicy);
        return;
      case "NetworkPolicy.networking.k8s.io":
        // Keyed by the k8s name (deletes carry it), not the translated "knp.default.<name>".
        this.#putPolicy(
          "NetworkPolicy.networking.k8s.io",
          translateK8sNetworkPolicy(res as K8sNetworkPolicy),
          meta.name,
        );
        return;
      default:
        return; // Kinds the graph does not use (Node, IPPool, BGP, ...).
    }
  }

  #onDelete(kind: KindId, name: string, namespace: string | undefined): void {
    const itemId = itemIdOf(kind, name, namespace);
    if (itemId !== undefined) {
      this.#deleteItem(itemId);
      return;
    }
    if (kind === "Profile") this.#deleteProfile(name);
    else if (kind === "Tier") this.#deleteTier(name);
    else if (POLICY_KINDS.has(kind)) {
      const key = `${kind}/${kind === "GlobalNetworkPolicy" ? "" : (namespace ?? "default")}/${name}`;
      const id = this.#policyIdByKey.get(key);
      if (id !== undefined) {
        this.#policyIdByKey.delete(key);
        this.#deletePolicy(id);
      }
    }
  }

  // ------------------------------------------------------------------
  // Items: endpoints and network sets.

  #workloadItem(wep: WorkloadEndpoint): ItemInput {
    const spec = wep.spec;
    const item: ItemInput = {
      id: itemIdOf("WorkloadEndpoint", wep.metadata.name, wep.metadata.namespace)!,
      kind: "workload",
      namespace: wep.metadata.namespace ?? "default",
      ownLabels: wep.metadata.labels,
      profiles: spec.profiles ?? [],
      orchestrator: spec.orchestrator,
      nets: canonicalNets(spec.ipNetworks),
      ports: this.#internPorts(namedPortsOf(spec.ports)),
      local: spec.node === this.#hostname,
    };
    // Only local endpoints keep their resource (for the LocalEndpoint
    // message): a remote one is reduced to what selectors and sets need.
    if (item.local) item.resource = wep;
    if (spec.serviceAccountName !== undefined) item.serviceAccount = spec.serviceAccountName;
    return item;
  }

  #hostItem(hep: HostEndpoint): ItemInput {
    const spec = hep.spec;
    const item: ItemInput = {
      id: itemIdOf("HostEndpoint", hep.metadata.name)!,
      kind: "host",
      ownLabels: hep.metadata.labels,
      profiles: spec.profiles ?? [],
      nets: canonicalNets(spec.expectedIPs),
      ports: this.#internPorts(namedPortsOf(spec.ports)),
      local: spec.node === this.#hostname,
    };
    if (item.local) item.resource = hep;
    return item;
  }

  /**
   * One shared copy of each distinct list of named ports (pods of one
   * deployment all have the same). Interning only saves memory, so the table
   * is simply emptied when it grows large: lists handed out stay valid.
   */
  #internPorts(ports: NamedPort[]): readonly NamedPort[] {
    if (ports.length === 0) return NO_PORTS;
    let key = "";
    for (const p of ports) key += `${p.name}\u0000${p.protocol}\u0000${p.port}\u0000`;
    const known = this.#portLists.get(key);
    if (known !== undefined) return known;
    if (this.#portLists.size >= PORT_LISTS_MAX) this.#portLists.clear();
    const list = Object.freeze(ports.slice());
    this.#portLists.set(key, list);
    return list;
  }

  /** The group for an item's namespace, orchestrator and profiles, made if new. */
  #acquireGroup(input: ItemInput): LabelGroup {
    let groups = this.#groupsByNamespace.get(input.namespace);
    for (const g of groups ?? []) {
      if (g.orchestrator === input.orchestrator && sameStrings(g.profiles, input.profiles))
        return g;
    }
    const group: LabelGroup = {
      namespace: input.namespace,
      orchestrator: input.orchestrator,
      profiles: input.profiles.slice(),
      inherited: EMPTY_LABELS,
      items: new Set(),
    };
    group.inherited = this.#inheritedLabels(group);
    if (groups === undefined) this.#groupsByNamespace.set(input.namespace, (groups = []));
    groups.push(group);
    for (const p of this.#profilesShaping(group)) {
      let shaped = this.#groupsByProfile.get(p);
      if (shaped === undefined) this.#groupsByProfile.set(p, (shaped = new Set()));
      shaped.add(group);
    }
    return group;
  }

  /** Forgets `id` in its group, and the group when it was the last. */
  #releaseGroup(group: LabelGroup, id: string): void {
    group.items.delete(id);
    if (group.items.size > 0) return;
    const groups = this.#groupsByNamespace.get(group.namespace)!;
    groups.splice(groups.indexOf(group), 1);
    if (groups.length === 0) this.#groupsByNamespace.delete(group.namespace);
    for (const p of this.#profilesShaping(group)) {
      const groups = this.#groupsByProfile.get(p);
      groups?.delete(group);
      if (groups?.size === 0) this.#groupsByProfile.delete(p);
    }
  }

  /** The profiles whose labels a group inherits: its own, and its namespace's. */
  #profilesShaping(group: LabelGroup): Set<string> {
    const names = new Set(group.profiles);
    if (group.namespace !== undefined) names.add(namespaceProfileName(group.namespace));
    return names;
  }

  #inheritedLabels(group: LabelGroup): Labels {
    return inheritedLabels({
      inherited: group.profiles.map((p) => this.#profiles.get(p)?.spec?.labelsToApply),
      namespace: group.namespace,
      namespaceLabels:
        group.namespace === undefined
          ? undefined
          : namespaceLabels(
              group.namespace,
              this.#profiles.get(namespaceProfileName(group.namespace))?.spec?.labelsToApply,
            ),
      orchestrator: group.orchestrator,
    });
  }

  #putItem(input: ItemInput): void {
    const old = this.#items.get(input.id);
    const group = this.#acquireGroup(input);
    group.items.add(input.id);
    const item: Item = {
      id: input.id,
      kind: input.kind,
      group,
      labels: layeredLabels(group.inherited, input.ownLabels, input),
      nets: input.nets,
      ports: input.ports,
      local: input.local,
      resource: input.resource,
    };
    if (old) {
      if (old.group !== group) this.#releaseGroup(old.group, old.id);
      if (old.local && !item.local) {
        this.#policyIndex.deleteItem(old.id);
        this.#dirtyEndpoints.add(old.id);
      }
    }
    // Claim before release, so a profile both use is not recompiled.
    if (item.local) this.#claimLocalProfiles(item);
    if (old?.local) this.#releaseLocalProfiles(old);
    this.#reindexItem(old, item);
  }

  #reindexItem(old: Item | undefined, item: Item): void {
    const labels = item.labels;
    const oldSets = old ? new Set(this.#ipsetIndex.matchingSelectors(old.id)) : new Set<string>();
    this.#items.set(item.id, item);
    this.#itemUpdateInProgress = true;
    try {
      this.#ipsetIndex.updateItem(item.id, labels);
    } finally {
      this.#itemUpdateInProgress = false;
    }
    const newSets = this.#ipsetIndex.matchingSelectors(item.id);
    const same = old !== undefined && sameContributions(old, item);
    for (const s of oldSets) {
      if (!same || !newSets.has(s)) this.#contribute(s, old!, -1);
    }
    for (const s of newSets) {
      if (!same || !oldSets.has(s)) this.#contribute(s, item, +1);
    }
    if (item.local) {
      this.#policyIndex.updateItem(item.id, labels);
      this.#dirtyEndpoints.add(item.id);
    }
  }

  #deleteItem(id: string): void {
    const old = this.#items.get(id);
    if (!old) return;
    for (const s of this.#ipsetIndex.matchingSelectors(id)) this.#contribute(s, old, -1);
    this.#itemUpdateInProgress = true;
    try {
      this.#ipsetIndex.deleteItem(id);
    } finally {
      this.#itemUpdateInProgress = false;
    }
    this.#releaseGroup(old.group, id);
    if (old.local) {
      this.#releaseLocalProfiles(old);
      this.#policyIndex.deleteItem(id);
      this.#dirtyEndpoints.add(id);
    }
    this.#items.delete(id);
  }

  // ------------------------------------------------------------------
  // Profiles and tiers.

  #putProfile(p: Profile): void {
    const name = p.metadata.name;
    checkRuleSelectors([...(p.spec?.ingress ?? []), ...(p.spec?.egress ?? [])], undefined);
    const old = this.#profiles.get(name);
    this.#profiles.set(name, p);
    const labelsChanged =
      JSON.stringify(old?.spec?.labelsToApply ?? {}) !==
      JSON.stringify(p.spec?.labelsToApply ?? {});
    if (labelsChanged || !old) this.#refreshProfileDependants(name);
    if (this.#activeProfiles.has(name) || (this.#profileRefs.get(name) ?? 0) > 0) {
      this.#activateProfile(name);
    }
    this.#markEndpointsUsingProfile(name);
  }

  #deleteProfile(name: string): void {
    if (!this.#profiles.delete(name)) return;
    this.#refreshProfileDependants(name);
    if (this.#activeProfiles.has(name)) this.#deactivateProfile(name);
    this.#markEndpointsUsingProfile(name);
  }

  /** Re-reads the inherited labels of every group the profile shapes, and re-files their items. */
  #refreshProfileDependants(name: string): void {
    for (const group of [...(this.#groupsByProfile.get(name) ?? [])]) {
      group.inherited = this.#inheritedLabels(group);
      for (const id of [...group.items]) {
        const item = this.#items.get(id);
        if (item === undefined) continue;
        item.labels = relayeredLabels(item.labels, group.inherited);
        this.#reindexItem(item, item);
      }
    }
  }

  /** Marks the local endpoints that list the profile (their profile ids may change). */
  #markEndpointsUsingProfile(name: string): void {
    for (const group of this.#groupsByProfile.get(name) ?? []) {
      if (!group.profiles.includes(name)) continue;
      for (const id of group.items) {
        if (this.#items.get(id)?.local) this.#dirtyEndpoints.add(id);
      }
    }
  }

  #claimLocalProfiles(item: Item): void {
    for (const p of new Set(item.group.profiles)) {
      const n = (this.#profileRefs.get(p) ?? 0) + 1;
      this.#profileRefs.set(p, n);
      if (n === 1 && this.#profiles.has(p)) this.#activateProfile(p);
    }
  }

  #releaseLocalProfiles(item: Item): void {
    for (const p of new Set(item.group.profiles)) {
      const n = (this.#profileRefs.get(p) ?? 0) - 1;
      if (n > 0) {
        this.#profileRefs.set(p, n);
        continue;
      }
      this.#profileRefs.delete(p);
      if (this.#activeProfiles.has(p)) this.#deactivateProfile(p);
    }
  }

  #activateProfile(name: string): void {
    const p = this.#profiles.get(name);
    if (!p) return;
    const ipsets: string[] = [];
    const compiled: CompiledProfile = {
      id: name,
      inbound: this.#compileRules(p.spec?.ingress ?? [], `${name}/ingress`, undefined, ipsets),
      outbound: this.#compileRules(p.spec?.egress ?? [], `${name}/egress`, undefined, ipsets),
    };
    const old = this.#activeProfiles.get(name);
    this.#activeProfiles.set(name, { compiled, ipsets });
    if (old) this.#unrefIpsets(old.ipsets);
    this.#dirtyProfiles.add(name);
  }

  #deactivateProfile(name: string): void {
    const old = this.#activeProfiles.get(name);
    if (!old) return;
    this.#activeProfiles.delete(name);
    this.#unrefIpsets(old.ipsets);
    this.#dirtyProfiles.add(name);
  }

  #tierOf(name: string): { order?: number; defaultAction: "Deny" | "Pass" } {
    const t = this.#tiers.get(name);
    if (t) return t;
    // The default tier exists even without a resource. A policy in a tier
    // with no Tier resource is ordered last, with defaultAction Deny.
    return name === DEFAULT_TIER
      ? { order: DEFAULT_TIER_ORDER, defaultAction: "Deny" }
      : { defaultAction: "Deny" };
  }

  #putTier(t: Tier): void {
    const rec: { order?: number; defaultAction: "Deny" | "Pass" } = {
      defaultAction: t.spec?.defaultAction === "Pass" ? "Pass" : "Deny",
    };
    if (t.metadata.name === DEFAULT_TIER) rec.order = DEFAULT_TIER_ORDER;
    else if (t.spec?.order !== undefined) rec.order = t.spec.order;
    this.#tiers.set(t.metadata.name, rec);
    this.#markEndpointsInTier(t.metadata.name);
  }

  #deleteTier(name: string): void {
    if (this.#tiers.delete(name)) this.#markEndpointsInTier(name);
  }

  #markEndpointsInTier(tier: string): void {
    for (const [id, item] of this.#items) {
      if (!item.local) continue;
      for (const pid of this.#policyIndex.matchingSelectors(id)) {
        if (this.#policies.get(pid)?.tier === tier) {
          this.#dirtyEndpoints.add(id);
          break;
        }
      }
    }
  }

  // ------------------------------------------------------------------
  // Policies.

  #putPolicy(
    kind: KindId,
    p: GlobalNetworkPolicy | NetworkPolicy,
    keyName: string = p.metadata.name,
  ): void {
    const spec = p.spec ?? {};
    const namespace =
      kind === "GlobalNetworkPolicy" ? undefined : (p.metadata.namespace ?? "default");
    const tier = (spec as { tier?: string }).tier ?? DEFAULT_TIER;
    const id = policyIdOf(tier, p.metadata.name, namespace);
    const key = `${kind}/${namespace ?? ""}/${keyName}`;
    const g = spec as GlobalNetworkPolicy["spec"] & NetworkPolicy["spec"];
    checkRuleSelectors([...(g.ingress ?? []), ...(g.egress ?? [])], namespace);
    const oldId = this.#policyIdByKey.get(key);
    if (oldId !== undefined && oldId !== id) this.#deletePolicy(oldId);
    this.#policyIdByKey.set(key, id);

    const types = g.types ?? [];
    const mode = (g as { preDNAT?: boolean }).preDNAT
      ? "preDNAT"
      : (g as { doNotTrack?: boolean }).doNotTrack
        ? "doNotTrack"
        : "normal";
    const rec: PolicyRecord = {
      id,
      tier,
      name: p.metadata.name,
      ingress: types.includes("Ingress"),
      egress: types.includes("Egress"),
      mode,
      applyOnForward: (g as { applyOnForward?: boolean }).applyOnForward === true,
      selector: policyEndpointSelector({
        selector: g.selector,
        namespace,
        namespaceSelector: (g as { namespaceSelector?: string }).namespaceSelector,
      }),
      inboundRules: g.ingress ?? [],
      outboundRules: g.egress ?? [],
    };
    if (namespace !== undefined) rec.namespace = namespace;
    if (g.order !== undefined) rec.order = g.order;
    const old = this.#policies.get(id);
    this.#policies.set(id, rec);
    if (old && this.#activePolicies.has(id)) {
      // Order, tier or types may have changed: the endpoints' tier lists follow.
      for (const ep of this.#policyIndex.matchingItems(id)) this.#dirtyEndpoints.add(ep);
      this.#activatePolicy(id);
    }
    if (!old || old.selector.toString() !== rec.selector.toString()) {
      this.#policyIndex.updateSelector(id, rec.selector);
    }
  }

  #deletePolicy(id: string): void {
    if (!this.#policies.has(id)) return;
    this.#policyIndex.deleteSelector(id); // fires match-stopped → deactivates
    this.#policies.delete(id);
    this.#policyMatchCount.delete(id);
    if (this.#activePolicies.has(id)) this.#deactivatePolicy(id);
  }

  #onPolicyMatch(policyId: string, endpointId: string, delta: 1 | -1): void {
    this.#dirtyEndpoints.add(endpointId);
    const n = (this.#policyMatchCount.get(policyId) ?? 0) + delta;
    if (n > 0) this.#policyMatchCount.set(policyId, n);
    else this.#policyMatchCount.delete(policyId);
    if (n === 1 && delta === 1) this.#activatePolicy(policyId);
    if (n === 0) this.#deactivatePolicy(policyId);
  }

  #activatePolicy(id: string): void {
    const p = this.#policies.get(id);
    if (!p) return;
    const ipsets: string[] = [];
    const compiled: CompiledPolicy = {
      id,
      tier: p.tier,
      name: p.name,
      inbound: p.ingress
        ? this.#compileRules(p.inboundRules, `${id}/ingress`, p.namespace, ipsets)
        : [],
      outbound: p.egress
        ? this.#compileRules(p.outboundRules, `${id}/egress`, p.namespace, ipsets)
        : [],
    };
    if (p.namespace !== undefined) compiled.namespace = p.namespace;
    const old = this.#activePolicies.get(id);
    this.#activePolicies.set(id, { compiled, ipsets });
    if (old) this.#unrefIpsets(old.ipsets);
    this.#dirtyPolicies.add(id);
  }

  #deactivatePolicy(id: string): void {
    const old = this.#activePolicies.get(id);
    if (!old) return;
    this.#activePolicies.delete(id);
    this.#unrefIpsets(old.ipsets);
    this.#dirtyPolicies.add(id);
  }

  // ------------------------------------------------------------------
  // Rule compilation.

  #compileRules(
    rules: readonly Rule[],
    prefix: string,
    namespace: string | undefined,
    ipsets: string[],
  ): CompiledRule[] {
    const out: CompiledRule[] = [];
    rules.forEach((rule, i) => {
      const c = this.#compileRule(rule, `${prefix}/${i}`, namespace, ipsets);
      if (c) out.push(c);
    });
    return out;
  }

  /**
   * One rule. twill cannot see Kubernetes Services, HTTP requests or
   * service-account labels: an Allow, Log or Pass rule that matches on them
   * is left out (it never matches), and a Deny rule is kept without those
   * criteria (it denies more, never less). See docs/policy.md.
   */
  #compileRule(
    rule: Rule,
    ruleId: string,
    namespace: string | undefined,
    ipsets: string[],
  ): CompiledRule | undefined {
    const unevaluable =
      rule.http !== undefined ||
      [rule.source, rule.destination].some(
        (side) => side?.services !== undefined || side?.serviceAccounts?.selector !== undefined,
      );
    if (unevaluable) {
      if (rule.action !== "Deny") return undefined;
      const strip = (side: EntityRule | undefined): EntityRule | undefined => {
        if (!side) return side;
        const { services: _services, serviceAccounts, ...rest } = side;
        if (serviceAccounts?.names?.length)
          return { ...rest, serviceAccounts: { names: serviceAccounts.names } };
        return rest;
      };
      const { http: _http, ...plain } = rule;
      const stripped = { ...plain } as Rule;
      const src = strip(rule.source);
      const dst = strip(rule.destination);
      if (src) stripped.source = src;
      if (dst) stripped.destination = dst;
      return this.#compileRule(stripped, ruleId, namespace, ipsets);
    }
    const protocol = protocolNumberOf(rule.protocol as string | number | undefined);
    const out: CompiledRule = {
      action: rule.action,
      src: this.#compileSide(rule.source, rule.protocol, namespace, ipsets),
      dst: this.#compileSide(rule.destination, rule.protocol, namespace, ipsets),
      ruleId,
    };
    if (rule.ipVersion !== undefined) out.ipVersion = rule.ipVersion;
    if (protocol !== undefined) out.protocol = protocol;
    const notProtocol = protocolNumberOf(rule.notProtocol as string | number | undefined);
    if (notProtocol !== undefined) out.notProtocol = notProtocol;
    if (rule.icmp?.type !== undefined) {
      out.icmp =
        rule.icmp.code === undefined
          ? { type: rule.icmp.type }
          : { type: rule.icmp.type, code: rule.icmp.code };
    }
    if (rule.notICMP?.type !== undefined) {
      out.notICMP =
        rule.notICMP.code === undefined
          ? { type: rule.notICMP.type }
          : { type: rule.notICMP.type, code: rule.notICMP.code };
    }
    return out;
  }

  #compileSide(
    side: EntityRule | undefined,
    protocol: unknown,
    namespace: string | undefined,
    ipsets: string[],
  ): CompiledMatch {
    const m: CompiledMatch = {};
    if (!side) return m;
    if (side.nets?.length) m.nets = canonicalNets(side.nets);
    if (side.notNets?.length) m.notNets = canonicalNets(side.notNets);
    const sel = ruleSideSelector(side, namespace);
    if (sel) m.ipSets = [this.#refIpset(sel, undefined, ipsets)];
    const notSel = ruleSideNotSelector(side);
    if (notSel) m.notIpSets = [this.#refIpset(notSel, undefined, ipsets)];
    // Validation requires TCP, UDP or SCTP (by name or number) with ports.
    const proto = portProtocolOf(protocol) ?? "tcp";
    const portSets = (ports: readonly (string | number)[] | undefined) => {
      const ranges: PortRange[] = [];
      const named: string[] = [];
      for (const p of ports ?? []) {
        const r = numericPort(p);
        if (r) ranges.push(r);
        else
          named.push(
            this.#refIpset(
              sel ?? parseSelector("all()"),
              { name: String(p), protocol: proto },
              ipsets,
            ),
          );
      }
      return { ranges, named };
    };
    const ports = portSets(side.ports);
    if (ports.ranges.length) m.ports = ports.ranges;
    if (ports.named.length) m.namedPortIpSets = ports.named;
    const notPorts = portSets(side.notPorts);
    if (notPorts.ranges.length) m.notPorts = notPorts.ranges;
    if (notPorts.named.length) m.notNamedPortIpSets = notPorts.named;
    return m;
  }

  // ------------------------------------------------------------------
  // IP sets.

  #refIpset(selector: Selector, namedPort: IPSetInfo["namedPort"], refs: string[]): string {
    const text = selector.toString();
    const key = namedPort ? `${text}\u0000${namedPort.protocol}:${namedPort.name}` : text;
    const id = `${namedPort ? "p" : "s"}:${stableHash(key)}`;
    refs.push(id);
    let rec = this.#ipsets.get(id);
    if (rec) {
      rec.refs++;
      return id;
    }
    const info: IPSetInfo = { id, kind: namedPort ? "net-port" : "net", selector: text };
    if (namedPort) info.namedPort = namedPort;
    rec = { info, selector, refs: 1, members: new Map() };
    this.#ipsets.set(id, rec);
    this.#dirtyIpsets.add(id);
    // Dropped and made again before a flush: the dataplane still holds the
    // old members, so the next flush sends a delta against them.
    const retired = this.#retiredIpsets.get(id);
    this.#retiredIpsets.delete(id);
    this.#touchedMembers.set(id, new Map((retired ?? []).map((m) => [m, true])));
    this.#ipsetIndex.updateSelector(id, selector); // fires match-started per item → members
    return id;
  }

  #unrefIpsets(ids: readonly string[]): void {
    for (const id of ids) {
      const rec = this.#ipsets.get(id);
      if (!rec) continue;
      if (--rec.refs > 0) continue;
      this.#ipsets.delete(id);
      this.#dirtyIpsets.add(id);
      if (this.#sentIpsetIds.has(id)) {
        this.#retiredIpsets.set(id, this.#membersAtLastFlush(id, rec));
      }
      this.#touchedMembers.delete(id);
      this.#itemUpdateInProgress = true;
      try {
        this.#ipsetIndex.deleteSelector(id);
      } finally {
        this.#itemUpdateInProgress = false;
      }
    }
  }

  #onIpsetMatch(setId: string, itemId: string, delta: 1 | -1): void {
    if (this.#itemUpdateInProgress) return;
    const item = this.#items.get(itemId);
    if (item) this.#contribute(setId, item, delta);
  }

  /** The members a set had at the last flush: now, with touched members as they were. */
  #membersAtLastFlush(id: string, rec: IPSetRecord): string[] {
    const touched = this.#touchedMembers.get(id);
    const out: string[] = [];
    for (const m of rec.members.keys()) if (!touched?.has(m)) out.push(m);
    for (const [m, was] of touched ?? []) if (was) out.push(m);
    return out;
  }

  /** Adds (or removes) the members an item gives a set. */
  #contribute(setId: string, item: Item, delta: 1 | -1): void {
    const rec = this.#ipsets.get(setId);
    if (!rec) return;
    const np = rec.info.namedPort;
    const members: string[] = [];
    if (np) {
      for (const port of item.ports) {
        if (port.name !== np.name || port.protocol !== np.protocol) continue;
        // Joined, not a template: a flat string (see itemIdOf), one per member.
        for (const net of item.nets) members.push([net, `${np.protocol}:${port.port}`].join(","));
      }
    } else {
      members.push(...item.nets);
    }
    if (members.length === 0) return;
    // A set not yet sent goes out whole: no need to track its members.
    let touched: Map<string, boolean> | undefined;
    if (this.#sentIpsetIds.has(setId)) {
      touched = this.#touchedMembers.get(setId);
      if (touched === undefined) this.#touchedMembers.set(setId, (touched = new Map()));
    }
    for (const m of members) {
      const before = rec.members.get(m) ?? 0;
      const n = before + delta;
      if (n > 0) rec.members.set(m, n);
      else rec.members.delete(m);
      if (touched && (before === 0) !== (n === 0) && !touched.has(m)) touched.set(m, before > 0);
    }
    this.#dirtyIpsets.add(setId);
  }

  // ------------------------------------------------------------------
  // Local endpoints and routes.

  #tiersFor(
    endpointId: string,
    isHost: boolean,
  ): {
    tiers: TierPolicies[];
    forwardTiers: TierPolicies[];
    preDnatTiers: TierPolicies[];
    untrackedTiers: TierPolicies[];
  } {
    const policies: PolicyRecord[] = [];
    for (const pid of this.#policyIndex.matchingSelectors(endpointId)) {
      const p = this.#policies.get(pid);
      if (p) policies.push(p);
    }
    const group = (ps: PolicyRecord[]): TierPolicies[] => {
      const byTier = new Map<string, PolicyRecord[]>();
      for (const p of ps) {
        if (!p.ingress && !p.egress) continue;
        let list = byTier.get(p.tier);
        if (!list) byTier.set(p.tier, (list = []));
        list.push(p);
      }
      const tiers = [...byTier.keys()].map((name) => ({ name, ...this.#tierOf(name) }));
      tiers.sort(compareOrderThenName);
      return tiers.map((t) => {
        const list = (byTier.get(t.name) ?? [])
          .slice()
          .sort((a, b) =>
            compareOrderThenName(
              { order: a.order, name: `${a.name}\u0000${a.namespace ?? ""}` },
              { order: b.order, name: `${b.name}\u0000${b.namespace ?? ""}` },
            ),
          );
        return {
          name: t.name,
          defaultAction: t.defaultAction,
          ingress: list.filter((p) => p.ingress).map((p) => p.id),
          egress: list.filter((p) => p.egress).map((p) => p.id),
        };
      });
    };
    const normal = policies.filter((p) => p.mode === "normal");
    return {
      tiers: group(normal),
      forwardTiers: isHost ? group(normal.filter((p) => p.applyOnForward)) : [],
      preDnatTiers: isHost ? group(policies.filter((p) => p.mode === "preDNAT")) : [],
      untrackedTiers: isHost ? group(policies.filter((p) => p.mode === "doNotTrack")) : [],
    };
  }

  #localEndpoint(item: Item): LocalEndpoint | undefined {
    const res = item.resource;
    if (!res || !item.local) return undefined;
    const isHost = item.kind === "host";
    const ipv4Nets = item.nets.filter((n) => !n.includes(":"));
    const ipv6Nets = item.nets.filter((n) => n.includes(":"));
    const profiles = [...item.group.profiles];
    const ep: LocalEndpoint = {
      id: item.id,
      kind: isHost ? "host" : "workload",
      name: res.metadata.name,
      interfaceName: (res.spec as { interfaceName?: string }).interfaceName ?? (isHost ? "*" : ""),
      ipv4Nets,
      ipv6Nets,
      allowSpoofedSourcePrefixes: canonicalNets(
        (res.spec as { allowSpoofedSourcePrefixes?: string[] }).allowSpoofedSourcePrefixes,
      ),
      ...this.#tiersFor(item.id, isHost),
      profileIds: profiles.filter((p) => this.#profiles.has(p)),
      missingProfiles: profiles.filter((p) => !this.#profiles.has(p)),
    };
    if (item.group.namespace !== undefined) ep.namespace = item.group.namespace;
    const mac = (res.spec as { mac?: string }).mac;
    if (mac !== undefined) ep.mac = mac;
    return ep;
  }

  // ------------------------------------------------------------------
  // Flush: the difference since the last flush, in dependency order.

  /**
   * Everything that changed since the last flush, as messages in dependency
   * order (updates: ipsets → policies → profiles → endpoints → routes;
   * removes reversed), then `in-sync` once the syncer reached it. Before the
   * first in-sync nothing is emitted: the dataplane must not act on a
   * partial picture.
   */
  flush(): DataplaneMessage[] {
    if (!this.#inSyncPending && !this.#sentInSync) return [];
    const updates: DataplaneMessage[] = [];
    const routeRemoves: DataplaneMessage[] = [];
    const endpointRemoves: DataplaneMessage[] = [];
    const profileRemoves: DataplaneMessage[] = [];
    const policyRemoves: DataplaneMessage[] = [];
    const ipsetRemoves: DataplaneMessage[] = [];

    // IP sets.
    for (const id of [...this.#dirtyIpsets].sort()) {
      const rec = this.#ipsets.get(id);
      const sent = this.#sentIpsetIds.has(id);
      if (!rec) {
        if (sent) {
          ipsetRemoves.push({ type: "ipset-remove", id });
          this.#sentIpsetIds.delete(id);
        }
        continue;
      }
      if (!sent) {
        const members = [...rec.members.keys()].sort();
        updates.push({ type: "ipset-update", ipset: rec.info, members });
        this.#sentIpsetIds.add(id);
        continue;
      }
      const added: string[] = [];
      const removed: string[] = [];
      for (const [m, was] of this.#touchedMembers.get(id) ?? []) {
        const now = rec.members.has(m);
        if (now && !was) added.push(m);
        else if (!now && was) removed.push(m);
      }
      added.sort();
      removed.sort();
      if (added.length || removed.length) {
        updates.push({ type: "ipset-delta", id, added, removed });
      }
    }
    this.#dirtyIpsets.clear();
    this.#touchedMembers.clear();
    this.#retiredIpsets.clear();

    // Policies, then profiles.
    const flushCompiled = <T extends { id: string }>(
      dirty: Set<string>,
      active: Map<string, Activation<T>>,
      sentMap: Map<string, string>,
      update: (c: T) => DataplaneMessage,
      remove: (id: string) => DataplaneMessage,
      removes: DataplaneMessage[],
    ) => {
      for (const id of [...dirty].sort()) {
        const a = active.get(id);
        if (!a) {
          if (sentMap.delete(id)) removes.push(remove(id));
          continue;
        }
        const json = JSON.stringify(a.compiled);
        if (sentMap.get(id) !== json) {
          sentMap.set(id, json);
          updates.push(update(a.compiled));
        }
      }
      dirty.clear();
    };
    flushCompiled(
      this.#dirtyPolicies,
      this.#activePolicies,
      this.#sentPolicies,
      (policy) => ({ type: "policy-update", policy }),
      (id) => ({ type: "policy-remove", id }),
      policyRemoves,
    );
    flushCompiled(
      this.#dirtyProfiles,
      this.#activeProfiles,
      this.#sentProfiles,
      (profile) => ({ type: "profile-update", profile }),
      (id) => ({ type: "profile-remove", id }),
      profileRemoves,
    );

    // Endpoints and their routes.
    const routeUpdates: DataplaneMessage[] = [];
    const claimed = new Set<string>();
    const released = new Set<string>();
    for (const id of [...this.#dirtyEndpoints].sort()) {
      const item = this.#items.get(id);
      const ep = item ? this.#localEndpoint(item) : undefined;
      const sentJson = this.#sentEndpoints.get(id);
      if (!ep) {
        if (sentJson !== undefined) {
          this.#sentEndpoints.delete(id);
          endpointRemoves.push({ type: "endpoint-remove", id });
        }
      } else {
        const json = JSON.stringify(ep);
        if (json !== sentJson) {
          this.#sentEndpoints.set(id, json);
          updates.push({ type: "endpoint-update", endpoint: ep });
        }
      }
      const want = new Set<string>();
      if (ep && ep.kind === "workload" && ep.interfaceName !== "") {
        for (const dst of [...ep.ipv4Nets, ...ep.ipv6Nets]) {
          want.add(dst);
          claimed.add(dst);
          const route: Route = { dst, interfaceName: ep.interfaceName, endpointId: id };
          const json = JSON.stringify(route);
          if (this.#sentRoutes.get(dst) !== json) {
            this.#sentRoutes.set(dst, json);
            routeUpdates.push({ type: "route-update", route });
          }
        }
      }
      for (const dst of this.#routesByEndpoint.get(id) ?? []) {
        if (!want.has(dst)) released.add(dst);
      }
      if (want.size > 0) this.#routesByEndpoint.set(id, want);
      else this.#routesByEndpoint.delete(id);
    }
    this.#dirtyEndpoints.clear();
    // A route another endpoint claimed in this flush is not removed.
    for (const dst of [...released].sort()) {
      if (claimed.has(dst) || !this.#sentRoutes.delete(dst)) continue;
      routeRemoves.push({ type: "route-remove", dst });
    }

    const out = [
      ...updates,
      ...routeUpdates,
      ...routeRemoves,
      ...endpointRemoves,
      ...profileRemoves,
      ...policyRemoves,
      ...ipsetRemoves,
    ];
    if (this.#inSyncPending) {
      out.push({ type: "in-sync" });
      this.#inSyncPending = false;
      this.#sentInSync = true;
    }
    return out;
  }
}
