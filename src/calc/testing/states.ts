// The library of named datastore states the calc graph's state-sequence
// tests walk through, in Felix's style: each state is the whole datastore
// (a list of resources), with flows whose verdicts on host "node-1" the
// semantics of issue 3 fix. A test moves a graph from state to state and
// checks both the compiled state (against a fresh graph fed the state alone)
// and these verdicts (interpreted by the dataplane model).
//
// Cast: namespace "shop" (labels team=a, env=prod) and "dev" (env=dev);
// local workloads web-1 (10.65.0.1, named port http 8080), db-1 (10.65.0.2)
// on node-1; remote web-2 (10.65.1.1, http 8081), db-2 (10.65.1.2) and
// client-1 in dev (10.65.2.1) on node-2.
import type { Resource } from "../../api/resource.js";
import type { FlowSpec } from "./flows.js";
import {
  globalNetworkSet,
  globalPolicy,
  hostEndpoint,
  k8sNetworkPolicy,
  namespaceProfile,
  networkPolicy,
  networkSet,
  profile,
  tier,
  workload,
} from "./resources.js";
import type { WorkloadOptions } from "./resources.js";

export const LOCAL_HOST = "node-1";
export const REMOTE_HOST = "node-2";

/** A flow and the verdicts issue 3 gives it on node-1 (undefined: that end is not local). */
export interface FlowCheck {
  what: string;
  flow: FlowSpec;
  egress?: "Allow" | "Deny";
  ingress?: "Allow" | "Deny";
}

export interface NamedState {
  name: string;
  resources: readonly Resource[];
  checks: readonly FlowCheck[];
}

// ---------------------------------------------------------------------------
// The cast.

const wl = (o: Omit<WorkloadOptions, "node"> & { node?: string }) =>
  workload({ node: LOCAL_HOST, ...o });

const ksShop = namespaceProfile("shop", { team: "a", env: "prod" });
const ksDev = namespaceProfile("dev", { env: "dev" });
const ksDevRelabelled = namespaceProfile("dev", { env: "prod" });

const web1Opts = {
  namespace: "shop",
  pod: "web-1",
  ips: ["10.65.0.1"],
  labels: { app: "web" },
  ports: [
    { name: "http", protocol: "TCP", port: 8080 },
    { name: "metrics", protocol: 6, port: 9090 },
  ],
};
const web1 = wl(web1Opts);
const web1AsDb = wl({ ...web1Opts, labels: { app: "db" } });
const web1Moved = wl({ ...web1Opts, node: REMOTE_HOST });
const web1DualStack = wl({ ...web1Opts, ips: ["10.65.0.1", "fd00::1"] });
const web1MissingProfile = wl({ ...web1Opts, profiles: ["kns.shop", "ksa.shop.web"] });
const db1 = wl({ namespace: "shop", pod: "db-1", ips: ["10.65.0.2"], labels: { app: "db" } });
const db1DualStack = wl({
  namespace: "shop",
  pod: "db-1",
  ips: ["10.65.0.2", "fd00::2"],
  labels: { app: "db" },
});
const db1Sa = wl({
  namespace: "shop",
  pod: "db-1",
  ips: ["10.65.0.2"],
  labels: { app: "db" },
  profiles: ["kns.shop", "ksa.shop.db"],
});
const web2Opts = {
  namespace: "shop",
  pod: "web-2",
  node: REMOTE_HOST,
  ips: ["10.65.1.1"],
  labels: { app: "web" },
  ports: [{ name: "http", protocol: "TCP", port: 8081 }],
};
const web2 = wl(web2Opts);
const web2Canary = wl({ ...web2Opts, labels: { app: "web", version: "canary" } });
const web2AsCache = wl({ ...web2Opts, labels: { app: "cache" } });
const db2 = wl({
  namespace: "shop",
  pod: "db-2",
  node: REMOTE_HOST,
  ips: ["10.65.1.2"],
  labels: { app: "db" },
});
const client1 = wl({
  namespace: "dev",
  pod: "client-1",
  node: REMOTE_HOST,
  ips: ["10.65.2.1"],
  labels: { app: "client" },
});
const devLocal = wl({
  namespace: "dev",
  pod: "tool-1",
  ips: ["10.65.0.9"],
  labels: { app: "tool" },
});

const saWeb = profile("ksa.shop.web", { labelsToApply: { sa: "web" } });
const saDb = profile("ksa.shop.db", { labelsToApply: { sa: "db" } });
const saDbRenamed = profile("ksa.shop.db", { labelsToApply: { sa: "database" } });

// Policies.
const webIngress = networkPolicy("shop", "web-ingress", {
  selector: "app == 'web'",
  ingress: [
    {
      action: "Allow",
      protocol: "TCP",
      source: { selector: "app == 'db'" },
      destination: { ports: [8080] },
    },
  ],
});
const dbIngress = networkPolicy("shop", "db-ingress", {
  selector: "app == 'db'",
  ingress: [{ action: "Allow", source: { selector: "app == 'web'" } }],
});
/** Uses the same source selector as web-ingress: the two share one IP set. */
const webIngressTwin = networkPolicy("shop", "web-ingress-twin", {
  selector: "app == 'web'",
  order: 10,
  ingress: [
    {
      action: "Allow",
      protocol: "UDP",
      source: { selector: "app == 'db'" },
      destination: { ports: ["5000:5010"] },
    },
  ],
});
const fromDevNamespace = globalPolicy("from-dev-namespace", {
  selector: "app == 'web'",
  types: ["Ingress"],
  ingress: [{ action: "Allow", source: { namespaceSelector: "env == 'dev'" } }],
});
const securityTier = tier("security", { order: 100 });
const auditTier = tier("audit", { order: 50, defaultAction: "Pass" });
const securityInternal = globalPolicy("security.internal", {
  tier: "security",
  selector: "all()",
  types: ["Ingress", "Egress"],
  ingress: [
    { action: "Pass", source: { nets: ["10.65.0.0/16"] } },
    { action: "Deny", protocol: "TCP", destination: { ports: [8080] } },
  ],
  egress: [{ action: "Pass" }],
});
const auditLog = globalPolicy("audit.log-all", {
  tier: "audit",
  selector: "has(app)",
  types: ["Ingress", "Egress"],
  ingress: [{ action: "Log" }],
  egress: [{ action: "Log" }],
});
const dbEgress = networkPolicy("shop", "db-egress", {
  selector: "app == 'db'",
  types: ["Egress"],
  egress: [
    {
      action: "Allow",
      protocol: "TCP",
      destination: { selector: "app == 'web'", ports: ["http"] },
    },
    { action: "Allow", protocol: 6, destination: { ports: ["metrics"] } },
  ],
});
const hostNode = hostEndpoint({
  name: "node-1-eth0",
  node: LOCAL_HOST,
  ips: ["192.168.0.1"],
  labels: { role: "node" },
});
const hostRemote = hostEndpoint({
  name: "node-2-eth0",
  node: REMOTE_HOST,
  ips: ["192.168.0.2"],
  labels: { role: "node" },
});
const preDnat = globalPolicy("pre-dnat-block", {
  selector: "role == 'node'",
  preDNAT: true,
  applyOnForward: true,
  types: ["Ingress"],
  ingress: [{ action: "Deny", source: { nets: ["198.51.100.0/24"] } }],
});
const forwardAllow = globalPolicy("forward-ssh", {
  selector: "role == 'node'",
  applyOnForward: true,
  order: 10,
  types: ["Ingress", "Egress"],
  ingress: [
    { action: "Allow", protocol: "TCP", source: { selector: "role == 'node'" } },
    { action: "Allow", protocol: "TCP", destination: { ports: [22] } },
  ],
  egress: [{ action: "Allow" }],
});
const untracked = globalPolicy("untracked-dns", {
  selector: "role == 'node'",
  doNotTrack: true,
  applyOnForward: true,
  types: ["Ingress"],
  ingress: [{ action: "Allow", protocol: "UDP", destination: { ports: [53] } }],
});
const hostNormal = globalPolicy("host-https", {
  selector: "role == 'node'",
  order: 20,
  types: ["Ingress"],
  ingress: [
    {
      action: "Allow",
      protocol: "TCP",
      source: { nets: ["10.0.0.0/8"] },
      destination: { ports: [443] },
    },
  ],
});
const k8sDefaultDeny = k8sNetworkPolicy("shop", "default-deny", {
  podSelector: {},
  policyTypes: ["Ingress"],
});
const k8sAllowDb = k8sNetworkPolicy("shop", "web-from-db", {
  podSelector: { matchLabels: { app: "web" } },
  ingress: [
    {
      from: [{ podSelector: { matchLabels: { app: "db" } } }],
      ports: [{ protocol: "TCP", port: 8000, endPort: 8090 }],
    },
  ],
});
const external = globalNetworkSet("external", ["198.51.100.0/24"], { role: "external" });
const partners = networkSet("shop", "partners", ["203.0.113.0/24"], { role: "partner" });
const fromExternal = globalPolicy("from-external", {
  selector: "app == 'web'",
  types: ["Ingress"],
  ingress: [
    { action: "Allow", source: { selector: "role == 'external'", namespaceSelector: "global()" } },
  ],
});
const fromPartners = networkPolicy("shop", "from-partners", {
  selector: "app == 'web'",
  ingress: [{ action: "Allow", source: { selector: "role == 'partner'" } }],
});
const fromSaWeb = networkPolicy("shop", "db-from-sa-web", {
  selector: "sa == 'db'",
  ingress: [{ action: "Allow", source: { selector: "sa == 'web'" } }],
});
const negations = globalPolicy("negations", {
  selector: "app == 'db'",
  types: ["Ingress", "Egress"],
  ingress: [
    { action: "Deny", protocol: "TCP", destination: { notPorts: [5432, "6000:6001"] } },
    { action: "Allow", notProtocol: "UDP", source: { notSelector: "app == 'web'" } },
    { action: "Allow", protocol: "UDP", source: { notNets: ["10.65.1.0/24"] } },
  ],
  egress: [
    { action: "Allow", protocol: "ICMP", icmp: { type: 8, code: 0 } },
    { action: "Deny", protocol: "ICMP" },
    { action: "Allow", ipVersion: 6 },
  ],
});

// ---------------------------------------------------------------------------
// Flows.

const W = (namespace: string, pod: string, node = LOCAL_HOST) => ({
  workload: {
    namespace,
    name: `${node.replaceAll("-", "--")}-k8s-${pod.replaceAll("-", "--")}-eth0`,
  },
});
const WEB1 = W("shop", "web-1");
const DB1 = W("shop", "db-1");
const WEB2 = W("shop", "web-2", REMOTE_HOST);
const DB2 = W("shop", "db-2", REMOTE_HOST);
const CLIENT1 = W("dev", "client-1", REMOTE_HOST);
const TOOL1 = W("dev", "tool-1");
const HOST1 = { host: { name: "node-1-eth0" } };
const HOST2 = { host: { name: "node-2-eth0" } };
const tcp = (src: FlowSpec["src"], dst: FlowSpec["dst"], dstPort: number): FlowSpec => ({
  src,
  dst,
  protocol: "TCP",
  srcPort: 40000,
  dstPort,
});
const udp = (src: FlowSpec["src"], dst: FlowSpec["dst"], dstPort: number): FlowSpec => ({
  ...tcp(src, dst, dstPort),
  protocol: "UDP",
});

// ---------------------------------------------------------------------------
// The states.

const s = (name: string, resources: Resource[], checks: FlowCheck[] = []): NamedState => ({
  name,
  resources,
  checks,
});

export const STATES: Record<string, NamedState> = {};
function add(st: NamedState): NamedState {
  STATES[st.name] = st;
  return st;
}

export const empty = add(s("empty", []));

export const oneLocal = add(
  s(
    "one local workload with a profile",
    [ksShop, web1],
    [
      {
        what: "no policy: the namespace profile allows ingress",
        flow: tcp({ ip: "192.0.2.1" }, WEB1, 80),
        ingress: "Allow",
      },
      {
        what: "no policy: the namespace profile allows egress",
        flow: tcp(WEB1, { ip: "192.0.2.1" }, 80),
        egress: "Allow",
      },
    ],
  ),
);

export const withPolicy = add(
  s(
    "+ policy selecting it",
    [ksShop, web1, db1, webIngress],
    [
      { what: "allowed by rule", flow: tcp(DB1, WEB1, 8080), egress: "Allow", ingress: "Allow" },
      {
        what: "selected, no rule matched: the tier drops",
        flow: tcp(DB1, WEB1, 9090),
        egress: "Allow",
        ingress: "Deny",
      },
      {
        what: "a policy whose types lack Egress has no effect on egress",
        flow: tcp(WEB1, DB1, 5432),
        egress: "Allow",
        ingress: "Allow",
      },
    ],
  ),
);

export const remotes = add(
  s(
    "+ remote endpoints matching a rule selector",
    [ksShop, web1, db1, web2, db2, webIngress],
    [
      { what: "remote db-2 is in the source set", flow: tcp(DB2, WEB1, 8080), ingress: "Allow" },
      { what: "remote web-2 is not", flow: tcp(WEB2, WEB1, 8080), ingress: "Deny" },
    ],
  ),
);

export const remoteRelabelled = add(
  s(
    "remote endpoint label change keeps it in the set",
    [ksShop, web1, db1, web2Canary, db2, webIngress, dbIngress],
    [{ what: "web-2 still matches app == 'web'", flow: tcp(WEB2, DB1, 5432), ingress: "Allow" }],
  ),
);

export const remoteLeaves = add(
  s(
    "remote endpoint label change takes it out of the set",
    [ksShop, web1, db1, web2AsCache, db2, webIngress, dbIngress],
    [
      { what: "web-2 no longer matches app == 'web'", flow: tcp(WEB2, DB1, 5432), ingress: "Deny" },
      { what: "web-1 still does", flow: tcp(WEB1, DB1, 5432), egress: "Allow", ingress: "Allow" },
    ],
  ),
);

export const sharedSelector = add(
  s(
    "identical selectors share one set",
    [ksShop, web1, db1, db2, webIngress, webIngressTwin],
    [
      { what: "twin policy (order 10) first", flow: udp(DB2, WEB1, 5005), ingress: "Allow" },
      { what: "then web-ingress", flow: tcp(DB2, WEB1, 8080), ingress: "Allow" },
      { what: "neither", flow: udp(DB2, WEB1, 5011), ingress: "Deny" },
    ],
  ),
);

export const namespaceLabels = add(
  s(
    "namespace labels via kns profile",
    [ksShop, ksDev, web1, client1, fromDevNamespace],
    [{ what: "client-1's namespace is env=dev", flow: tcp(CLIENT1, WEB1, 80), ingress: "Allow" }],
  ),
);

export const namespaceRelabelled = add(
  s(
    "namespace labels changed",
    [ksShop, ksDevRelabelled, web1, client1, fromDevNamespace],
    [{ what: "dev is now env=prod", flow: tcp(CLIENT1, WEB1, 80), ingress: "Deny" }],
  ),
);

export const tiers = add(
  s(
    "tiers with Pass",
    [ksShop, web1, db1, securityTier, auditTier, securityInternal, auditLog, webIngress],
    [
      {
        what: "Log continues, audit passes by default, security Pass, default tier allows",
        flow: tcp(DB1, WEB1, 8080),
        egress: "Allow",
        ingress: "Allow",
      },
      {
        what: "outside 10.65/16: security denies port 8080",
        flow: tcp({ ip: "192.0.2.1" }, WEB1, 8080),
        ingress: "Deny",
      },
      {
        what: "outside 10.65/16, another port: security's tier end drops",
        flow: tcp({ ip: "192.0.2.1" }, WEB1, 443),
        ingress: "Deny",
      },
      {
        what: "egress: no default-tier egress policy, profile allows",
        flow: tcp(WEB1, { ip: "192.0.2.1" }, 443),
        egress: "Allow",
      },
    ],
  ),
);

export const namedPorts = add(
  s(
    "named ports",
    [ksShop, web1, db1, web2, dbEgress],
    [
      {
        what: "web-1's http is 8080",
        flow: tcp(DB1, WEB1, 8080),
        egress: "Allow",
        ingress: "Allow",
      },
      { what: "web-2's http is 8081", flow: tcp(DB1, WEB2, 8081), egress: "Allow" },
      { what: "8080 is not web-2's http", flow: tcp(DB1, WEB2, 8080), egress: "Deny" },
      {
        what: "a port declared with protocol 6, a rule with protocol 6",
        flow: tcp(DB1, WEB1, 9090),
        egress: "Allow",
        ingress: "Allow",
      },
      {
        what: "to an address with no named ports",
        flow: tcp(DB1, { ip: "192.0.2.1" }, 8080),
        egress: "Deny",
      },
    ],
  ),
);

export const hostEndpoints = add(
  s(
    "host endpoint with preDNAT/applyOnForward policies",
    [ksShop, web1, hostNode, hostRemote, preDnat, forwardAllow, untracked, hostNormal],
    [
      {
        what: "normal policy allows https from 10/8",
        flow: tcp({ ip: "10.1.1.1" }, HOST1, 443),
        ingress: "Allow",
      },
      {
        what: "ssh allowed by the applyOnForward policy",
        flow: tcp({ ip: "192.0.2.1" }, HOST1, 22),
        ingress: "Allow",
      },
      { what: "another host by selector", flow: tcp(HOST2, HOST1, 179), ingress: "Allow" },
      { what: "nothing else", flow: tcp({ ip: "192.0.2.1" }, HOST1, 80), ingress: "Deny" },
      {
        what: "preDNAT and doNotTrack policies are not normal policy",
        flow: udp({ ip: "192.0.2.1" }, HOST1, 53),
        ingress: "Deny",
      },
      { what: "egress allowed", flow: tcp(HOST1, { ip: "192.0.2.1" }, 80), egress: "Allow" },
    ],
  ),
);

export const k8sDeny = add(
  s(
    "k8s NetworkPolicy default deny",
    [ksShop, ksDev, web1, db1, devLocal, k8sDefaultDeny, k8sAllowDb],
    [
      { what: "allowed port range", flow: tcp(DB1, WEB1, 8085), egress: "Allow", ingress: "Allow" },
      { what: "outside endPort", flow: tcp(DB1, WEB1, 8091), egress: "Allow", ingress: "Deny" },
      {
        what: "selected pods deny by default",
        flow: tcp(WEB1, DB1, 5432),
        egress: "Allow",
        ingress: "Deny",
      },
      {
        what: "unselected namespace is allowed",
        flow: tcp(WEB1, TOOL1, 22),
        egress: "Allow",
        ingress: "Allow",
      },
    ],
  ),
);

export const missingProfile = add(
  s(
    "missing profile",
    [ksShop, web1MissingProfile, db1],
    [
      {
        what: "fail closed on ingress",
        flow: tcp(DB1, WEB1, 8080),
        egress: "Allow",
        ingress: "Deny",
      },
      { what: "and on egress", flow: tcp(WEB1, DB1, 8080), egress: "Deny", ingress: "Allow" },
    ],
  ),
);

export const missingProfileCreated = add(
  s(
    "missing profile created",
    [ksShop, saWeb, web1MissingProfile, db1],
    [
      {
        what: "profiles allow again",
        flow: tcp(DB1, WEB1, 8080),
        egress: "Allow",
        ingress: "Allow",
      },
    ],
  ),
);

export const webAndDbPolicies = add(
  s(
    "label change: before",
    [ksShop, web1, db1, webIngress, dbIngress],
    [
      { what: "web-1 is web", flow: tcp(WEB1, DB1, 5432), egress: "Allow", ingress: "Allow" },
      {
        what: "db-1 to web-1 port 80 is dropped by web-ingress",
        flow: tcp(DB1, WEB1, 80),
        egress: "Allow",
        ingress: "Deny",
      },
    ],
  ),
);

export const labelMoved = add(
  s(
    "label change moves endpoint between policies",
    [ksShop, web1AsDb, db1, webIngress, dbIngress],
    [
      {
        what: "web-1 is now db: not in db-ingress's source set",
        flow: tcp(WEB1, DB1, 5432),
        egress: "Allow",
        ingress: "Deny",
      },
      {
        what: "and selected by db-ingress, not web-ingress",
        flow: tcp(DB1, WEB1, 8080),
        egress: "Allow",
        ingress: "Deny",
      },
    ],
  ),
);

export const networkSets = add(
  s(
    "network sets",
    [ksShop, web1, external, partners, fromExternal, fromPartners],
    [
      {
        what: "global network set via global()",
        flow: tcp({ ip: "198.51.100.7" }, WEB1, 80),
        ingress: "Allow",
      },
      {
        what: "namespaced network set",
        flow: tcp({ ip: "203.0.113.5" }, WEB1, 80),
        ingress: "Allow",
      },
      { what: "neither", flow: tcp({ ip: "192.0.2.9" }, WEB1, 80), ingress: "Deny" },
    ],
  ),
);

export const profileLabels = add(
  s(
    "labels inherited from profiles",
    [ksShop, saWeb, saDb, web1MissingProfile, db1Sa, fromSaWeb],
    [
      {
        what: "sa=web inherited by web-1",
        flow: tcp(WEB1, DB1, 5432),
        egress: "Allow",
        ingress: "Allow",
      },
      { what: "not by an outsider", flow: tcp({ ip: "192.0.2.1" }, DB1, 5432), ingress: "Deny" },
    ],
  ),
);

export const profileLabelsChanged = add(
  s(
    "profile labelsToApply changed",
    [ksShop, saWeb, saDbRenamed, web1MissingProfile, db1Sa, fromSaWeb],
    [
      {
        what: "db-1 lost sa=db: unselected, profile allows",
        flow: tcp({ ip: "192.0.2.1" }, DB1, 5432),
        ingress: "Allow",
      },
    ],
  ),
);

export const movedAway = add(
  s(
    "endpoint moves to another host",
    [ksShop, web1Moved, db1, webIngress, dbIngress],
    [
      {
        what: "web-1 is remote now, still in db-ingress's set",
        flow: tcp(W("shop", "web-1", REMOTE_HOST), DB1, 5432),
        ingress: "Allow",
      },
    ],
  ),
);

export const dualStack = add(
  s(
    "dual-stack endpoints",
    [ksShop, web1DualStack, db1DualStack, dbIngress, negations],
    [
      {
        what: "IPv6 flow into db-1 from web-1 by selector",
        flow: { ...tcp(WEB1, DB1, 5432), ipVersion: 6 },
        egress: "Allow",
        ingress: "Allow",
      },
      {
        what: "db-1 egress over IPv6 allowed by ipVersion 6 rule",
        flow: { ...tcp(DB1, WEB1, 80), ipVersion: 6 },
        egress: "Allow",
        ingress: "Allow",
      },
      {
        what: "over IPv4 it is dropped",
        flow: tcp(DB1, WEB1, 80),
        egress: "Deny",
        ingress: "Allow",
      },
    ],
  ),
);

export const negationRules = add(
  s(
    "negated criteria and ICMP",
    [ksShop, web1, db1, web2, db2, negations],
    [
      { what: "notPorts: 80 is not 5432 → Deny", flow: tcp(DB2, DB1, 80), ingress: "Deny" },
      {
        what: "5432 passes the Deny; not from web, not UDP → Allow",
        flow: tcp(DB2, DB1, 5432),
        ingress: "Allow",
      },
      { what: "port range in notPorts", flow: tcp(DB2, DB1, 6001), ingress: "Allow" },
      {
        what: "from web: notSelector fails, next rules",
        flow: tcp(WEB2, DB1, 5432),
        ingress: "Deny",
      },
      { what: "UDP from inside notNets", flow: udp(WEB2, DB1, 53), ingress: "Deny" },
      {
        what: "UDP from outside notNets",
        flow: udp(WEB1, DB1, 53),
        egress: "Allow",
        ingress: "Allow",
      },
      {
        what: "ICMP echo request code 0",
        flow: { src: DB1, dst: WEB1, protocol: "ICMP", icmp: { type: 8, code: 0 } },
        egress: "Allow",
        ingress: "Allow",
      },
      {
        what: "other ICMP denied",
        flow: { src: DB1, dst: WEB1, protocol: "ICMP", icmp: { type: 0, code: 0 } },
        egress: "Deny",
        ingress: "Allow",
      },
    ],
  ),
);

export const dbProfileNone = add(
  s(
    "profile deleted while endpoints use it",
    [web1, db1, webIngress],
    [
      {
        what: "kns.shop is missing: fail closed",
        flow: tcp(WEB1, DB1, 80),
        egress: "Deny",
        ingress: "Deny",
      },
    ],
  ),
);

/** Sequences of states the tests walk, each also reversed, split, squashed and with empties. */
export const SEQUENCES: readonly (readonly NamedState[])[] = [
  [oneLocal, withPolicy, remotes],
  [remotes, remoteRelabelled, remoteLeaves, remotes],
  [withPolicy, sharedSelector, remotes],
  [namespaceLabels, namespaceRelabelled, namespaceLabels],
  [tiers, withPolicy, tiers],
  [namedPorts, remotes, namedPorts],
  [hostEndpoints, oneLocal, hostEndpoints],
  [k8sDeny, withPolicy, k8sDeny],
  [missingProfile, missingProfileCreated, oneLocal, missingProfile],
  [webAndDbPolicies, labelMoved, webAndDbPolicies],
  [networkSets, tiers, networkSets],
  [profileLabels, profileLabelsChanged, profileLabels],
  [webAndDbPolicies, movedAway, webAndDbPolicies],
  [dualStack, negationRules, dualStack],
  [withPolicy, dbProfileNone, withPolicy],
  Object.values(STATES),
];
