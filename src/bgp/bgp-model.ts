// The BGP model: what this host's BIRD must do, as plain data, computed from
// the datastore's view (BgpInputs). Pure: no I/O, no clocks. render-bird.ts
// turns it into BIRD 2's configuration; `twill node status` labels sessions
// with it.
//
//   BgpInputs ──buildBgpModel──► BgpModel ──renderBird──► bird.conf
//
// Semantics follow Calico's (its confd templates and resource reference);
// where Calico is silent or unsafe, the choice is written next to the code
// and in docs/bgp.md. Invariants of a model:
// - sessions are sorted (IPv4 first, by peer address, then port); names are
//   unique BIRD symbols; at most one session per (peer address, port): an
//   explicit BGPPeer wins over the mesh, a node-scoped peer over a global
//   one, then the first BGPPeer by name.
// - every prefix is canonical CIDR text; lists are sorted (IPv4 first, then
//   by address, then by prefix length) so the rendered text is deterministic.
// - never a session to one of this node's own addresses.
import {
  cidrContains,
  cidrContainsIP,
  formatCIDR,
  formatIP,
  parseCIDR,
  parseIP,
} from "../api/ip.js";
import type { CIDR, IPAddress, IPFamily } from "../api/ip.js";
import { BGP_CONFIGURATION_DEFAULTS } from "../api/schemas/bgp-configuration.js";
import type { BGPConfiguration } from "../api/schemas/bgp-configuration.js";
import { parsePeerIP } from "../api/schemas/bgp-peer.js";
import type { BGPPeer } from "../api/schemas/bgp-peer.js";
import { parseDuration } from "../api/schemas/common.js";
import type { Node } from "../api/schemas/node.js";
import { TWILL_ROUTE_PROTOCOL } from "../api/schemas/felix-configuration.js";
import { parseSelector } from "../selector/parse-selector.js";
import type { Selector } from "../selector/parse-selector.js";
import { TwillError } from "../util/errors.js";
import type { BgpInputs } from "./bgp-inputs.js";

/**
 * Why a session exists, as `twill node status` shows it:
 * - mesh: the node-to-node mesh (BGPConfiguration nodeToNodeMeshEnabled);
 * - global / node: a BGPPeer with no node scope / with `node` or `nodeSelector`;
 * - reflector: the peer is a twill route reflector (and does not take us as
 *   its client, or we are a reflector of the same cluster);
 * - rr-client: this node is a route reflector and the peer is its client.
 */
export type SessionKind = "mesh" | "global" | "node" | "reflector" | "rr-client";

/** Where the session came from: the mesh, or a BGPPeer's scope. */
export type SessionScope = "mesh" | "global" | "node";

/**
 * Next hop of announced routes: auto (BGP's own rules: our address for
 * routes we originate, the original next hop for reflected iBGP routes),
 * self (always our address) or keep (never rewritten).
 */
export type NextHopMode = "auto" | "self" | "keep";

/** BGP timers, in seconds. */
export interface BgpTimers {
  /** Delay before the first connection attempt once a session may start. */
  connectDelayTime: number;
  /** Delay between connection attempts while the peer does not answer. */
  connectRetryTime: number;
  /** Back-off after an error: first wait, and the most it grows to. */
  errorWaitTime: readonly [number, number];
  holdTime: number;
  keepaliveTime: number;
  /**
   * After BIRD starts in graceful restart recovery (`bird -R`), how long the
   * kernel protocol may wait for peers before it syncs the kernel table.
   */
  gracefulRestartWait: number;
}

/**
 * Chosen for fast convergence in a lab and in a rack (measured on this
 * machine: BIRD's defaults took ~4 s from start to the peer's route in the
 * kernel, these ~1.2 s; see /work/shared/LINUX-NOTES.md):
 * - connect delay 0 / retry 1: a peer that just started is dialled at once
 *   and again every second, instead of after 5 s and every 120 s;
 * - error wait 1..5: a flapping peer is retried quickly but backs off;
 * - hold 9 / keepalive 3: a dead host (no TCP close) is noticed in ≤ 9 s.
 *   A BIRD that is merely killed or restarted closes its TCP sessions, and
 *   graceful restart (not the hold timer) keeps its routes in place.
 * - graceful restart wait 30: a restarted BIRD holds back kernel changes
 *   until its peers re-sent their routes, at most this long.
 */
export const DEFAULT_BGP_TIMERS: BgpTimers = {
  connectDelayTime: 0,
  connectRetryTime: 1,
  errorWaitTime: [1, 5],
  holdTime: 9,
  keepaliveTime: 3,
  gracefulRestartWait: 30,
};

/** Graceful restart time announced to peers when nothing sets one (BIRD's and Calico's mesh default). */
export const DEFAULT_RESTART_TIME_S = 120;

/** A BGP community: standard "aa:nn" or large "aa:nn:mm". */
export interface BgpCommunity {
  kind: "standard" | "large";
  /** Two (standard) or three (large) numbers. */
  parts: readonly number[];
  /** As written: "64512:100". */
  text: string;
}

export type ExportOrigin =
  "block" | "borrowed" | "service-cluster-ip" | "service-external-ip" | "service-loadbalancer-ip";

/** A prefix this node announces. */
export interface ExportedPrefix {
  cidr: string;
  family: IPFamily;
  origin: ExportOrigin;
  /** Attached on announcement (prefixAdvertisements), sorted, no duplicates. */
  communities: readonly BgpCommunity[];
}

export interface BgpSession {
  /** BIRD protocol name: stable, unique, letters/digits/underscores ("mesh_10_0_0_2"). */
  name: string;
  kind: SessionKind;
  scope: SessionScope;
  /** What made it: "node-to-node mesh" or `BGPPeer "<name>"`. */
  source: string;
  family: IPFamily;
  peerAddress: string;
  port: number;
  peerAS: number;
  /** Our AS on this session (BGPPeer localASNumber, else the node's). */
  localAS: number;
  /** The twill Node behind peerAddress, when it is one. */
  peerNode?: string;
  /** Source address of the TCP connection; the kernel chooses when absent. */
  sourceAddress?: string;
  /** TCP MD5 password (resolved from its secret). */
  password?: string;
  nextHop: NextHopMode;
  /** Graceful restart time announced to the peer, seconds. */
  restartTime: number;
  /** Treat the peer as our route reflector client. */
  rrClient: boolean;
  /** Our cluster ID, on rr-client sessions. */
  clusterId?: string;
  /** Wait for the peer to connect (the mesh connects one way: the higher address dials). */
  passive: boolean;
  /** direct: the peer is on one of our subnets (eBGP, TTL 1); multihop otherwise and for iBGP. */
  connection: "direct" | "multihop";
  /** GTSM (BGPPeer ttlSecurity): hops to the peer. */
  ttlSecurityHops?: number;
  /** Times our own AS may appear in a received path (numAllowedLocalASNumbers). */
  allowLocalAS?: number;
  /** A gateway towards peerAddress (BGPPeer reachableBy): a host route to the peer is installed. */
  reachableBy?: string;
  /** Re-announce BGP-learned routes on this session (route reflectors, to iBGP peers). */
  exportLearned: boolean;
  timers: BgpTimers;
  /** Rendered but administratively down, with the reason (e.g. a missing password secret). */
  disabledReason?: string;
}

export interface BgpModel {
  nodeName: string;
  /** The node's IPv4 address; a stable address derived from the node's name when it has none. */
  routerId: string;
  localAS: number;
  listenPort: number;
  logSeverity: "Trace" | "Debug" | "Info" | "Warning" | "Error" | "Fatal";
  /** BGPConfiguration bindMode NodeIP: BIRD accepts sessions only on the node's address. */
  strictBind: boolean;
  /** This node's BGP addresses, without prefix length. */
  ipv4Address?: string;
  ipv6Address?: string;
  /** Set when this node is a route reflector (Node spec.bgp.routeReflectorClusterID). */
  routeReflectorClusterId?: string;
  meshEnabled: boolean;
  sessions: readonly BgpSession[];
  /** Every block this node holds: each gets a local blackhole route, exported or not. */
  blocks: readonly string[];
  /** Borrowed workload addresses (/32, /128) announced from the agent's kernel routes. */
  borrowed: readonly string[];
  /** Everything announced to peers. */
  exported: readonly ExportedPrefix[];
  /** Accepted from peers: these prefixes and everything inside them. */
  accepted: readonly string[];
  /** Never accepted from peers: our own blocks and anything inside them but host routes. */
  rejected: readonly string[];
  /** Route protocol number of the agent's workload routes (learned for borrowed addresses). */
  workloadRouteProtocol: number;
  /** Workload interfaces, left out of BIRD's direct protocol ("tw" → "tw*"). */
  workloadInterfacePrefix: string;
  /** Interfaces whose device routes BIRD ignores (BGPConfiguration ignoredInterfaces). */
  ignoredInterfaces: readonly string[];
  timers: BgpTimers;
  /** Things in the inputs that were ignored or could not be honoured, for the log. */
  problems: readonly string[];
}

const MESH_SOURCE = "node-to-node mesh";
/** Largest graceful restart time BGP can carry (a 12-bit field). */
const MAX_RESTART_TIME_S = 4095;

interface NodeAddress {
  address: string;
  ip: IPAddress;
  subnet: CIDR;
}

interface NodeInfo {
  name: string;
  labels: Readonly<Record<string, string>>;
  v4?: NodeAddress;
  v6?: NodeAddress;
  asNumber: number;
  clusterId?: string;
  listenPort: number;
}

type ConfigSpec = BGPConfiguration["spec"];

/**
 * Builds this node's BGP model. Throws TwillError "NotFound" when `nodeName`
 * has no Node among `inputs.nodes` (the agent registers it first).
 */
export function buildBgpModel(inputs: BgpInputs): BgpModel {
  const problems: string[] = [];
  const defaultConfig = inputs.bgpConfigurations.find((c) => c.metadata.name === "default")?.spec;
  const nodeConfigs = new Map<string, ConfigSpec>();
  for (const c of inputs.bgpConfigurations) {
    if (c.metadata.name.startsWith("node.")) nodeConfigs.set(c.metadata.name.slice(5), c.spec);
  }
  const ownConfig = nodeConfigs.get(inputs.nodeName);
  const clusterAS = defaultConfig?.asNumber ?? BGP_CONFIGURATION_DEFAULTS.asNumber;
  const clusterPort = defaultConfig?.listenPort ?? BGP_CONFIGURATION_DEFAULTS.listenPort;
  const meshEnabled =
    defaultConfig?.nodeToNodeMeshEnabled ?? BGP_CONFIGURATION_DEFAULTS.nodeToNodeMeshEnabled;

  const nodes = [...inputs.nodes]
    .map((n) =>
      nodeInfo(n, clusterAS, nodeConfigs.get(n.metadata.name)?.listenPort ?? clusterPort, problems),
    )
    .sort((a, b) => cmpStr(a.name, b.name));
  const self = nodes.find((n) => n.name === inputs.nodeName);
  if (!self) {
    throw new TwillError(
      "NotFound",
      `cannot build the BGP model of node "${inputs.nodeName}": it has no Node resource`,
    );
  }
  const timers: BgpTimers = { ...DEFAULT_BGP_TIMERS, ...inputs.timers };

  const ctx: SessionContext = {
    self,
    nodes,
    timers,
    secrets: inputs.secrets ?? {},
    problems,
    candidates: [],
  };
  if (meshEnabled) addMeshSessions(ctx, defaultConfig);
  for (const peer of [...inputs.bgpPeers].sort((a, b) =>
    cmpStr(a.metadata.name, b.metadata.name),
  )) {
    addPeerSessions(ctx, peer);
  }
  const sessions = pickSessions(ctx);

  const pools = inputs.ipPools
    .map((p) => ({ pool: p, cidr: parseCIDR(p.spec.cidr, { allowBareIP: true }) }))
    .filter(
      (p): p is { pool: (typeof inputs.ipPools)[number]; cidr: CIDR } => p.cidr !== undefined,
    );
  const noExport = pools.filter((p) => p.pool.spec.disableBGPExport).map((p) => p.cidr);
  const ownBlocks = uniqueCidrs(inputs.ownBlocks, "ownBlocks", problems);
  const blockSet = ownBlocks.map((b) => b.cidr);

  const exported: { cidr: CIDR; origin: ExportOrigin }[] = [];
  for (const b of blockSet) {
    if (noExport.some((p) => cidrContains(p, b))) continue;
    exported.push({ cidr: b, origin: "block" });
  }
  const borrowed: CIDR[] = [];
  for (const text of [...new Set(inputs.localWorkloadAddresses)]) {
    const ip = hostAddress(text);
    if (!ip) {
      problems.push(`local workload address "${text}" is not an IP address: ignored`);
      continue;
    }
    if (blockSet.some((b) => cidrContainsIP(b, ip))) continue;
    const inPools = pools.filter((p) => cidrContainsIP(p.cidr, ip));
    if (inPools.length === 0 || inPools.some((p) => p.pool.spec.disableBGPExport)) continue;
    const host: CIDR = {
      family: ip.family,
      network: ip.value,
      prefixLength: ip.family === 4 ? 32 : 128,
      hostBitsSet: false,
    };
    borrowed.push(host);
    exported.push({ cidr: host, origin: "borrowed" });
  }
  const serviceFields = [
    ["serviceClusterIPs", "service-cluster-ip"],
    ["serviceExternalIPs", "service-external-ip"],
    ["serviceLoadBalancerIPs", "service-loadbalancer-ip"],
  ] as const;
  for (const [field, origin] of serviceFields) {
    for (const entry of defaultConfig?.[field] ?? []) {
      const cidr = parseCIDR(entry.cidr, { allowBareIP: true });
      if (cidr) exported.push({ cidr, origin });
    }
  }

  const communityRules = advertisementCommunities(defaultConfig, ownConfig, problems);
  const seenExport = new Set<string>();
  const exportedOut: ExportedPrefix[] = [];
  for (const e of exported.sort((a, b) => cmpCidr(a.cidr, b.cidr))) {
    const text = formatCIDR(e.cidr);
    if (seenExport.has(text)) continue; // first origin wins: block, borrowed, then services
    seenExport.add(text);
    const communities = new Map<string, BgpCommunity>();
    for (const rule of communityRules) {
      if (!cidrContains(rule.cidr, e.cidr)) continue;
      for (const c of rule.communities) communities.set(c.text, c);
    }
    exportedOut.push({
      cidr: text,
      family: e.cidr.family,
      origin: e.origin,
      communities: [...communities.values()].sort(cmpCommunity),
    });
  }

  const accepted = uniqueCidrs(
    [...pools.map((p) => p.pool.spec.cidr), ...(inputs.acceptedPrefixes ?? [])],
    "acceptedPrefixes",
    problems,
  );

  const model: BgpModel = {
    nodeName: self.name,
    routerId: self.v4?.address ?? hashRouterId(self.name),
    localAS: self.asNumber,
    listenPort: self.listenPort,
    logSeverity:
      ownConfig?.logSeverityScreen ??
      defaultConfig?.logSeverityScreen ??
      BGP_CONFIGURATION_DEFAULTS.logSeverityScreen,
    strictBind: defaultConfig?.bindMode === "NodeIP",
    meshEnabled,
    sessions,
    blocks: blockSet.map(formatCIDR),
    borrowed: borrowed.sort(cmpCidr).map(formatCIDR),
    exported: exportedOut,
    accepted: accepted.map((a) => formatCIDR(a.cidr)),
    rejected: blockSet.map(formatCIDR),
    workloadRouteProtocol: inputs.workloadRouteProtocol ?? TWILL_ROUTE_PROTOCOL,
    workloadInterfacePrefix: interfacePrefix(inputs.workloadInterfacePrefix, problems),
    ignoredInterfaces: [...new Set(defaultConfig?.ignoredInterfaces ?? [])].sort(cmpStr),
    timers,
    problems: [...new Set(problems)].sort(cmpStr),
  };
  if (self.v4) model.ipv4Address = self.v4.address;
  if (self.v6) model.ipv6Address = self.v6.address;
  if (self.clusterId !== undefined) model.routeReflectorClusterId = self.clusterId;
  if (!self.v4 && !self.v6) {
    model.problems = [
      ...model.problems,
      `node "${self.name}" has no BGP address (spec.bgp.ipv4Address/ipv6Address): no sessions`,
    ].sort(cmpStr);
  }
  return model;
}

// ---------------------------------------------------------------------------
// Nodes

function nodeAddress(text: string | undefined): NodeAddress | undefined {
  if (text === undefined) return undefined;
  const subnet = parseCIDR(text, { allowBareIP: true });
  const slash = text.indexOf("/");
  const ip = parseIP(slash < 0 ? text : text.slice(0, slash));
  if (!subnet || !ip) return undefined;
  return { address: formatIP(ip.family, ip.value), ip, subnet };
}

function nodeInfo(node: Node, clusterAS: number, listenPort: number, problems: string[]): NodeInfo {
  const bgp = node.spec?.bgp;
  const info: NodeInfo = {
    name: node.metadata.name,
    labels: node.metadata.labels ?? {},
    asNumber: bgp?.asNumber ?? clusterAS,
    listenPort,
  };
  const v4 = nodeAddress(bgp?.ipv4Address);
  const v6 = nodeAddress(bgp?.ipv6Address);
  if (v4) info.v4 = v4;
  if (v6) info.v6 = v6;
  if (bgp?.routeReflectorClusterID !== undefined) info.clusterId = bgp.routeReflectorClusterID;
  if (bgp?.asNumber === 0) problems.push(`node "${info.name}" has AS number 0`);
  return info;
}

function addressOf(node: NodeInfo, family: IPFamily): NodeAddress | undefined {
  return family === 4 ? node.v4 : node.v6;
}

// ---------------------------------------------------------------------------
// Sessions

interface Candidate {
  session: BgpSession;
  /** Lower wins when two candidates reach the same peer address and port. */
  rank: number;
}

interface SessionContext {
  self: NodeInfo;
  nodes: readonly NodeInfo[];
  timers: BgpTimers;
  secrets: NonNullable<BgpInputs["secrets"]>;
  problems: string[];
  candidates: Candidate[];
}

interface Target {
  family: IPFamily;
  address: string;
  ip: IPAddress;
  port: number;
  peerAS: number;
  peerNode?: NodeInfo;
}

interface SessionOptions {
  scope: SessionScope;
  source: string;
  rank: number;
  password?:
    { secretKeyRef: { name: string; key: string; optional?: boolean | undefined } } | undefined;
  useNodeIP: boolean;
  restartTime?: string | undefined;
  keepaliveTime?: string | undefined;
  localAS?: number | undefined;
  nextHop: NextHopMode;
  allowLocalAS?: number | undefined;
  ttlSecurity?: number | undefined;
  reachableBy?: string | undefined;
}

// Calico's mesh: every node with a BGP address of a family peers with every
// other such node, except route reflectors, which stay out of the mesh (and
// a reflector has no mesh sessions at all).
function addMeshSessions(ctx: SessionContext, config: ConfigSpec | undefined): void {
  if (ctx.self.clusterId !== undefined) return;
  for (const node of ctx.nodes) {
    if (node.name === ctx.self.name || node.clusterId !== undefined) continue;
    for (const family of [4, 6] as const) {
      const peer = addressOf(node, family);
      if (!peer || !addressOf(ctx.self, family)) continue;
      addSession(
        ctx,
        {
          family,
          address: peer.address,
          ip: peer.ip,
          port: node.listenPort,
          peerAS: node.asNumber,
          peerNode: node,
        },
        {
          scope: "mesh",
          source: MESH_SOURCE,
          rank: 2,
          password: config?.nodeMeshPassword,
          useNodeIP: true,
          restartTime: config?.nodeMeshMaxRestartTime,
          nextHop: "auto",
        },
      );
    }
  }
}

function compileSelector(text: string, what: string, problems: string[]): Selector | undefined {
  try {
    return parseSelector(text);
  } catch (err) {
    problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}: ignored`);
    return undefined;
  }
}

function addPeerSessions(ctx: SessionContext, peer: BGPPeer): void {
  const spec = peer.spec;
  const what = `BGPPeer "${peer.metadata.name}"`;
  const scope: SessionScope =
    spec.node !== undefined || spec.nodeSelector !== undefined ? "node" : "global";
  // Which nodes hold this peering: the named node, the selected nodes, or all.
  let holds: (n: NodeInfo) => boolean = () => true;
  if (spec.node !== undefined) {
    const name = spec.node;
    holds = (n) => n.name === name;
  } else if (spec.nodeSelector !== undefined) {
    const sel = compileSelector(spec.nodeSelector, `${what} nodeSelector`, ctx.problems);
    if (!sel) return;
    holds = (n) => sel.matches(n.labels);
  }
  const options: SessionOptions = {
    scope,
    source: what,
    rank: scope === "node" ? 0 : 1,
    password: spec.password,
    useNodeIP: spec.sourceAddress !== "None",
    restartTime: spec.maxRestartTime,
    keepaliveTime: spec.keepaliveTime,
    localAS: spec.localASNumber,
    nextHop: spec.keepOriginalNextHop
      ? "keep"
      : spec.nextHopMode === "Self"
        ? "self"
        : spec.nextHopMode === "Keep"
          ? "keep"
          : "auto",
    allowLocalAS: spec.numAllowedLocalASNumbers,
    ttlSecurity: spec.ttlSecurity,
    reachableBy: spec.reachableBy,
  };

  if (spec.peerIP !== undefined) {
    if (!holds(ctx.self)) return;
    const parsed = parsePeerIP(spec.peerIP);
    if (!parsed) {
      ctx.problems.push(`${what}: peerIP "${spec.peerIP}" is not an address: ignored`);
      return;
    }
    const address = formatAddress(parsed.ip);
    const peerNode = ctx.nodes.find((n) => addressOf(n, parsed.ip.family)?.address === address);
    const target: Target = {
      family: parsed.ip.family,
      address,
      ip: parsed.ip,
      port: parsed.port ?? peerNode?.listenPort ?? BGP_CONFIGURATION_DEFAULTS.listenPort,
      peerAS: spec.asNumber ?? peerNode?.asNumber ?? 0,
    };
    if (peerNode) target.peerNode = peerNode;
    if (target.peerAS === 0) {
      ctx.problems.push(`${what}: no AS number for peer ${address}: ignored`);
      return;
    }
    addSession(ctx, target, options);
    return;
  }

  if (spec.peerSelector !== undefined) {
    const sel = compileSelector(spec.peerSelector, `${what} peerSelector`, ctx.problems);
    if (!sel) return;
    const peers = new Map<string, NodeInfo>();
    if (holds(ctx.self)) {
      for (const n of ctx.nodes) if (sel.matches(n.labels)) peers.set(n.name, n);
    }
    // Reverse peering (Calico's default, "Auto"): a node the selector picks
    // peers back with every node that holds the peering, so one BGPPeer
    // ("all nodes peer with the reflectors") configures both ends.
    if (spec.reversePeering !== "Manual" && sel.matches(ctx.self.labels)) {
      for (const n of ctx.nodes) if (holds(n)) peers.set(n.name, n);
    }
    peers.delete(ctx.self.name);
    for (const node of [...peers.values()].sort((a, b) => cmpStr(a.name, b.name))) {
      for (const family of [4, 6] as const) {
        const addr = addressOf(node, family);
        if (!addr || !addressOf(ctx.self, family)) continue;
        addSession(
          ctx,
          {
            family,
            address: addr.address,
            ip: addr.ip,
            port: node.listenPort,
            peerAS: node.asNumber,
            peerNode: node,
          },
          options,
        );
      }
    }
    return;
  }

  if (spec.localWorkloadSelector !== undefined && holds(ctx.self)) {
    ctx.problems.push(`${what}: localWorkloadSelector peerings are not supported yet: ignored`);
  }
}

function addSession(ctx: SessionContext, target: Target, o: SessionOptions): void {
  const self = ctx.self;
  const own = addressOf(self, target.family);
  if (!own) {
    ctx.problems.push(
      `${o.source}: node "${self.name}" has no IPv${target.family} BGP address: no session to ${target.address}`,
    );
    return;
  }
  if (own.address === target.address) return; // never peer with ourselves
  const localAS = o.localAS ?? self.asNumber;
  const internal = localAS === target.peerAS;
  const peerCluster = target.peerNode?.clusterId;
  // Calico's rule: a reflector takes an iBGP peer as its client unless the
  // peer is a reflector of the same cluster (the "RR mesh" among them).
  const rrClient = self.clusterId !== undefined && internal && peerCluster !== self.clusterId;
  const kind: SessionKind = rrClient
    ? "rr-client"
    : peerCluster !== undefined
      ? "reflector"
      : o.scope;

  const timers: BgpTimers = { ...ctx.timers };
  if (o.keepaliveTime !== undefined) {
    const ms = parseDuration(o.keepaliveTime);
    if (ms !== undefined && ms > 0) {
      timers.keepaliveTime = Math.max(1, Math.round(ms / 1000));
      timers.holdTime = Math.max(timers.holdTime, 3 * timers.keepaliveTime);
    }
  }
  let restartTime = DEFAULT_RESTART_TIME_S;
  if (o.restartTime !== undefined) {
    const ms = parseDuration(o.restartTime);
    if (ms !== undefined) {
      restartTime = Math.min(MAX_RESTART_TIME_S, Math.max(1, Math.ceil(ms / 1000)));
      if (ms / 1000 > MAX_RESTART_TIME_S) {
        ctx.problems.push(
          `${o.source}: restart time "${o.restartTime}" capped at ${MAX_RESTART_TIME_S}s`,
        );
      }
    }
  }

  const portSuffix =
    target.port === BGP_CONFIGURATION_DEFAULTS.listenPort ? "" : `_port_${target.port}`;
  const prefix = o.scope === "mesh" ? "mesh" : o.scope;
  const session: BgpSession = {
    name: `${prefix}${target.family === 6 ? "6" : ""}_${symbolPart(target.address)}${portSuffix}`,
    kind,
    scope: o.scope,
    source: o.source,
    family: target.family,
    peerAddress: target.address,
    port: target.port,
    peerAS: target.peerAS,
    localAS,
    nextHop: o.nextHop,
    restartTime,
    rrClient,
    // The mesh connects one way, as Calico's does: the node with the higher
    // address dials, the other waits. Two crossing connections could abort
    // a graceful restart in progress.
    passive: o.scope === "mesh" && target.ip.value > own.ip.value,
    // iBGP: multihop, next hops resolved through the routing table (routes
    // reflected from another subnet keep their originator as next hop).
    // eBGP: direct when the peer is on our subnet (TTL 1), else multihop.
    connection: !internal && cidrContainsIP(own.subnet, target.ip) ? "direct" : "multihop",
    // Reflectors pass on what they learned: to iBGP peers (BIRD applies the
    // reflection rules) and to explicit external peers (a ToR or upstream
    // router that peers only with the reflectors still learns every block).
    exportLearned: self.clusterId !== undefined && (internal || o.scope !== "mesh"),
    timers,
  };
  if (target.peerNode) session.peerNode = target.peerNode.name;
  if (o.useNodeIP) session.sourceAddress = own.address;
  if (rrClient && self.clusterId !== undefined) session.clusterId = self.clusterId;
  if (o.allowLocalAS !== undefined && o.allowLocalAS > 0) session.allowLocalAS = o.allowLocalAS;
  if (o.ttlSecurity !== undefined && o.ttlSecurity > 0) {
    session.ttlSecurityHops = o.ttlSecurity;
    session.connection = "multihop";
  }
  if (o.reachableBy !== undefined) {
    const via = parseIP(o.reachableBy);
    if (via && via.family === target.family) {
      session.reachableBy = formatAddress(via);
      session.connection = "multihop";
    }
  }
  if (o.password) {
    const ref = o.password.secretKeyRef;
    const value = ctx.secrets[ref.name]?.[ref.key];
    if (value === undefined) {
      if (ref.optional !== true) {
        session.disabledReason = `password secret "${ref.name}" has no key "${ref.key}"`;
      }
    } else if (!/^[\x20-\x21\x23-\x7e]{1,80}$/.test(value)) {
      // BIRD's strings have no escapes; TCP MD5 keys are at most 80 bytes.
      session.disabledReason = `password from secret "${ref.name}" key "${ref.key}" must be 1-80 printable ASCII characters without '"'`;
    } else {
      session.password = value;
    }
  }
  ctx.candidates.push({ session, rank: o.rank });
}

function pickSessions(ctx: SessionContext): BgpSession[] {
  const byPeer = new Map<string, Candidate>();
  for (const c of ctx.candidates) {
    const key = `${c.session.peerAddress}|${c.session.port}`;
    const held = byPeer.get(key);
    if (!held) {
      byPeer.set(key, c);
      continue;
    }
    const winner = c.rank < held.rank ? c : held;
    const loser = winner === c ? held : c;
    byPeer.set(key, winner);
    if (loser.session.source !== winner.session.source) {
      ctx.problems.push(
        `${loser.session.source}: peer ${loser.session.peerAddress} port ${loser.session.port} is already peered by ${winner.session.source}: ignored`,
      );
    }
  }
  // IPv4 first, then by peer address and port: a total order, as (address,
  // port) is unique by now.
  return [...byPeer.values()]
    .map((c) => c.session)
    .sort((a, b) => {
      if (a.family !== b.family) return a.family - b.family;
      const ia = parseIP(a.peerAddress)?.value ?? 0n;
      const ib = parseIP(b.peerAddress)?.value ?? 0n;
      if (ia !== ib) return ia < ib ? -1 : 1;
      return a.port - b.port;
    });
}

// ---------------------------------------------------------------------------
// Communities

interface CommunityRule {
  cidr: CIDR;
  communities: BgpCommunity[];
}

function parseCommunity(text: string): BgpCommunity | undefined {
  const parts = text.split(":").map(Number);
  if (!/^\d+:\d+(:\d+)?$/.test(text)) return undefined;
  if (parts.length === 2 && parts.every((p) => p <= 65535))
    return { kind: "standard", parts, text };
  if (parts.length === 3 && parts.every((p) => p <= 4294967295))
    return { kind: "large", parts, text };
  return undefined;
}

// prefixAdvertisements from the node's BGPConfiguration replace the cluster's
// (Calico reads the node's key first); community names resolve in the node's
// communities, then the cluster's.
function advertisementCommunities(
  cluster: ConfigSpec | undefined,
  node: ConfigSpec | undefined,
  problems: string[],
): CommunityRule[] {
  const named = new Map<string, string>();
  for (const c of cluster?.communities ?? []) named.set(c.name, c.value);
  for (const c of node?.communities ?? []) named.set(c.name, c.value);
  const ads = node?.prefixAdvertisements ?? cluster?.prefixAdvertisements ?? [];
  const rules: CommunityRule[] = [];
  for (const ad of ads) {
    const cidr = parseCIDR(ad.cidr, { allowBareIP: true });
    if (!cidr) continue;
    const communities: BgpCommunity[] = [];
    for (const ref of ad.communities) {
      const c = parseCommunity(named.get(ref) ?? ref);
      if (c) communities.push(c);
      else problems.push(`prefixAdvertisements ${ad.cidr}: community "${ref}" is unknown: ignored`);
    }
    rules.push({ cidr, communities });
  }
  return rules;
}

function cmpCommunity(a: BgpCommunity, b: BgpCommunity): number {
  if (a.kind !== b.kind) return a.kind === "standard" ? -1 : 1;
  for (let i = 0; i < a.parts.length; i++) {
    const d = (a.parts[i] ?? 0) - (b.parts[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Helpers

function uniqueCidrs(texts: readonly string[], what: string, problems: string[]): { cidr: CIDR }[] {
  const seen = new Map<string, CIDR>();
  for (const t of texts) {
    const cidr = parseCIDR(t, { allowBareIP: true });
    if (!cidr) {
      problems.push(`${what}: "${t}" is not a CIDR: ignored`);
      continue;
    }
    const canon: CIDR = { ...cidr, hostBitsSet: false };
    seen.set(formatCIDR(canon), canon);
  }
  return [...seen.values()].sort(cmpCidr).map((cidr) => ({ cidr }));
}

/** "10.65.0.5", or "10.65.0.5/32" as the agent's routes spell it; undefined otherwise. */
function hostAddress(text: string): IPAddress | undefined {
  const cidr = parseCIDR(text, { allowBareIP: true });
  if (!cidr || cidr.hostBitsSet || cidr.prefixLength !== (cidr.family === 4 ? 32 : 128)) {
    return undefined;
  }
  return { family: cidr.family, value: cidr.network };
}

const DEFAULT_INTERFACE_PREFIX = "tw";

/** The workload interface prefix, if it is safe in a BIRD interface pattern. */
function interfacePrefix(prefix: string | undefined, problems: string[]): string {
  if (prefix === undefined) return DEFAULT_INTERFACE_PREFIX;
  if (/^[A-Za-z0-9_.-]{1,14}$/.test(prefix)) return prefix;
  problems.push(
    `workload interface prefix "${prefix}" is not 1-14 letters, digits, '_', '.' or '-': "${DEFAULT_INTERFACE_PREFIX}" used`,
  );
  return DEFAULT_INTERFACE_PREFIX;
}

function formatAddress(ip: IPAddress): string {
  return formatIP(ip.family, ip.value);
}

/** IPv4 before IPv6, then by address, then shorter prefix first. */
export function cmpCidr(a: CIDR, b: CIDR): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.network !== b.network) return a.network < b.network ? -1 : 1;
  return a.prefixLength - b.prefixLength;
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** An address as part of a BIRD symbol: "10.0.0.2" → "10_0_0_2", "fd00::2" → "fd00__2". */
function symbolPart(address: string): string {
  return address.replace(/[^0-9A-Za-z]/g, "_");
}

/**
 * A router ID for a node without an IPv4 address: a stable address derived
 * from its name (FNV-1a 32-bit), as Calico's "hash" router ID does.
 */
export function hashRouterId(name: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  if (h === 0) h = 1; // 0.0.0.0 is not a valid router ID
  return [24, 16, 8, 0].map((s) => String((h >>> s) & 0xff)).join(".");
}
