// The calc graph at issue 3's scale: 250,000 workload endpoints (200 of them
// on this host) in 2,000 namespaces on 1,250 hosts, 10,000 policies, the
// namespaces' kns.<ns> profiles, a tier and a few global network sets.
//
// Endpoints carry what Calico gives a pod's WorkloadEndpoint: app (12
// values), role (5), tier (4), version (4), a unique pod-template-hash, one
// /32, the kns.<ns> profile, and named ports http (8080) and, for some,
// metrics (9090). Namespaces have labels env (prod/dev/staging) and team (50
// teams), carried pcns.-prefixed in their profiles' labelsToApply.
// Policies (per 10,000; NetworkPolicies round-robin over the namespaces):
//   5,000  NetworkPolicy "app == A": Allow TCP from role == R to 8080/http;
//          Allow from app == A2 in namespaces team == T (namespaceSelector)
//   2,500  NetworkPolicy "role in {R1, R2}": Allow ingress from tier ==
//          frontend; egress Allow TCP to app == db port 5432, UDP 53
//   1,000  NetworkPolicy all(): default deny (Ingress, no rules)
//   1,000  Kubernetes NetworkPolicy (networking.k8s.io/v1) app == A from
//          pods role == R and namespaces env == prod, TCP 8080
//     500  GlobalNetworkPolicy, half in tier "platform" (order 100, Pass):
//          tier == T workloads from 10.0.0.0/8 to 8080, deny 169.254.169.254;
//          pcns.team == T namespaces from role == external-K network sets
//          (namespaceSelector global()) and pcns.env == prod && app == A
//
// Figures (median of RUNS runs):
//   full_sync_s      every resource put (in datastore key order: kinds by plural
//                    name), then in-sync, then one flush: the first complete
//                    desired state of host-0.
//   rss_mb           the process's resident set after the FIRST full sync (a
//                    fresh process, as an agent starting), once the input
//                    resources are let go, and a forced GC (v8's gc via
//                    --expose-gc, turned on at run time): what an agent holds
//                    (the syncer keeps only resource versions; the graph keeps
//                    whole resources only for local endpoints). V8 does not
//                    hand all freed pages back, so this still includes some of
//                    the inputs' heap. `rss_inputs_mb`: RSS with only the
//                    inputs built. Later runs' RSS is not used: V8 keeps the
//                    freed heap of the previous graph.
//   heap_used_mb     V8 heap in use after each full sync and GC (median).
//   updates_per_s    endpoint label updates, each one put then flushed on its
//                    own: one random endpoint's app, role, tier or version
//                    changed; 90% remote endpoints, 10% local ones (local
//                    changes move policies and so cost more).
//   full_sync_cpu_s, updates_per_cpu_s  the same in process CPU time (user +
//                    system, all threads, so GC included): steadier than the
//                    wall clock when other work shares the machine.
//   load_avg         the 1-minute load average at the start and at the end.
//   baseline_full_sync_s  a naive full sync, same run: every selector (policy
//                    selectors and the rule selectors of all policies) evaluated
//                    against every endpoint and network set, then the policies
//                    of each local endpoint and the members of every set the
//                    active policies use. Its cost is endpoints x selectors, so
//                    it runs at a tenth of the endpoints and a tenth of the
//                    policies (BASELINE_SCALE = 0.01 of the work) and is
//                    extrapolated x100; `baseline_measured_s` is what it took.
//                    Our graph runs at that same small scale too
//                    (`small_full_sync_s`, `ratio` = like for like), and the two
//                    must agree there on every local endpoint's policies and
//                    every set's members, or the benchmark fails.
// Everything is generated from fixed seeds as plain stored-form objects (no
// validation in the timed part); one sample of each shape is checked against
// validateResource first, so the input is what the API would store.

import os from "node:os";
import v8 from "node:v8";
import vm from "node:vm";
import assert from "node:assert/strict";
import type { BenchContext, BenchFigures } from "./run.js";
import type { Resource } from "../src/api/resource.js";
import { validateResource } from "../src/api/validate.js";
import { CalcGraph } from "../src/calc/calc-graph.js";
import type { CalcInput } from "../src/calc/calc-graph.js";
import type { DataplaneMessage } from "../src/calc/messages.js";
import { translateK8sNetworkPolicy } from "../src/calc/k8s-network-policy.js";
import {
  effectiveLabels,
  namespaceLabels,
  policyEndpointSelector,
  ruleSideNotSelector,
  ruleSideSelector,
} from "../src/calc/model.js";
import type { Labels } from "../src/calc/model.js";
import type { Selector } from "../src/selector/index.js";
import { parseSelector } from "../src/selector/index.js";
import { Gen } from "../src/util/prng.js";

interface Scale {
  endpoints: number;
  namespaces: number;
  policies: number;
}

export const FULL: Scale = { endpoints: 250_000, namespaces: 2_000, policies: 10_000 };
/**
 * The naive baseline's scale: a tenth of the endpoints, namespaces and
 * policies (the same densities), with the same 200 endpoints on this host.
 */
const SMALL: Scale = { endpoints: 25_000, namespaces: 200, policies: 1_000 };
const BASELINE_SCALE = (SMALL.endpoints / FULL.endpoints) * (SMALL.policies / FULL.policies);

const HOSTS = 1_250;
export const HOSTNAME = "host-0";
const RUNS = 3;
const UPDATES_PER_RUN = 20_000;
const LOCAL_UPDATE_SHARE = 0.1;

const APPS = ["web", "api", "db", "cache", "worker", "frontend", "auth", "search"];
const APPS_MORE = ["cart", "checkout", "payments", "shipping"];
const ALL_APPS = [...APPS, ...APPS_MORE];
const ROLES = ["web", "db", "cache", "worker", "api"];
const TIERS = ["frontend", "backend", "edge", "internal"];
const VERSIONS = ["v1", "v2", "v3", "v2-canary"];
const ENVS = ["prod", "dev", "staging"];
const TEAMS = 50;
const EXTERNAL_SETS = 20;
const V3 = "projectcalico.org/v3";

export { Gen };

// ---- the cluster ----------------------------------------------------------------

type Doc = Record<string, unknown>;

const nsName = (i: number) => `ns-${i}`;
const teamOf = (i: number) => `team-${i % TEAMS}`;
const envOf = (i: number) => ENVS[i % ENVS.length]!;
const dashed = (s: string) => s.replaceAll("-", "--");

function namespaceProfile(i: number): Resource {
  const ns = nsName(i);
  return {
    apiVersion: V3,
    kind: "Profile",
    metadata: { name: `kns.${ns}` },
    spec: {
      labelsToApply: {
        "pcns.projectcalico.org/name": ns,
        "pcns.kubernetes.io/metadata.name": ns,
        "pcns.env": envOf(i),
        "pcns.team": teamOf(i),
      },
      ingress: [{ action: "Allow" }],
      egress: [{ action: "Allow" }],
    },
  };
}

/** Endpoint n: a random namespace, host n mod HOSTS (so host-0 has 200). */
function workload(n: number, scale: Scale, gen: Gen): Resource {
  const ns = nsName(gen.int(scale.namespaces));
  const node = `host-${n % HOSTS}`;
  const pod = `pod-${n}`;
  const ports: Doc[] = [{ name: "http", protocol: "TCP", port: 8080 }];
  if (gen.rand() < 0.3) ports.push({ name: "metrics", protocol: "TCP", port: 9090 });
  return {
    apiVersion: V3,
    kind: "WorkloadEndpoint",
    metadata: {
      name: `${dashed(node)}-k8s-${dashed(pod)}-eth0`,
      namespace: ns,
      labels: {
        app: gen.pick(ALL_APPS),
        role: gen.pick(ROLES),
        tier: gen.pick(TIERS),
        version: gen.pick(VERSIONS),
        "pod-template-hash": gen.hex(10),
      },
    },
    spec: {
      orchestrator: "k8s",
      node,
      pod,
      endpoint: "eth0",
      ipNetworks: [`10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}/32`],
      profiles: [`kns.${ns}`],
      interfaceName: `tw${n.toString(16).padStart(11, "0")}`,
      ports,
    },
  };
}

function networkPolicy(p: number, scale: Scale, gen: Gen): Resource {
  const nsIndex = p % scale.namespaces;
  const ns = nsName(nsIndex);
  const shape = p % 10;
  if (shape === 9) {
    return {
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: `k8s-${p}`, namespace: ns },
      spec: {
        podSelector: { matchLabels: { app: gen.pick(ALL_APPS) } },
        policyTypes: ["Ingress"],
        ingress: [
          {
            from: [
              { podSelector: { matchLabels: { role: gen.pick(ROLES) } } },
              { namespaceSelector: { matchLabels: { env: "prod" } } },
            ],
            ports: [{ protocol: "TCP", port: 8080 }],
          },
        ],
      },
    };
  }
  let spec: Doc;
  if (shape < 5) {
    spec = {
      tier: "default",
      selector: `app == '${gen.pick(ALL_APPS)}'`,
      types: ["Ingress"],
      ingress: [
        {
          action: "Allow",
          protocol: "TCP",
          source: { selector: `role == '${gen.pick(ROLES)}'` },
          destination: { ports: [8080, "http"] },
        },
        {
          action: "Allow",
          source: {
            selector: `app == '${gen.pick(ALL_APPS)}'`,
            namespaceSelector: `team == '${teamOf(gen.int(TEAMS))}'`,
          },
        },
      ],
    };
  } else if (shape < 8) {
    const a = gen.pick(ROLES);
    const b = gen.pick(ROLES.filter((x) => x !== a));
    spec = {
      tier: "default",
      order: 100,
      selector: `role in {'${a}', '${b}'}`,
      types: ["Ingress", "Egress"],
      ingress: [{ action: "Allow", source: { selector: "tier == 'frontend'" } }],
      egress: [
        {
          action: "Allow",
          protocol: "TCP",
          destination: { selector: "app == 'db'", ports: [5432] },
        },
        { action: "Allow", protocol: "UDP", destination: { ports: [53] } },
      ],
    };
  } else {
    spec = { tier: "default", order: 1000, selector: "all()", types: ["Ingress"] };
  }
  return {
    apiVersion: V3,
    kind: "NetworkPolicy",
    metadata: { name: `np-${p}`, namespace: ns },
    spec,
  };
}

function globalPolicy(g: number, gen: Gen): Resource {
  const platform = g % 2 === 0;
  const name = platform ? `platform.gnp-${g}` : `gnp-${g}`;
  const spec: Doc =
    g % 4 < 2
      ? {
          selector: `has(projectcalico.org/namespace) && tier == '${gen.pick(TIERS)}'`,
          types: ["Ingress", "Egress"],
          ingress: [
            {
              action: "Allow",
              protocol: "TCP",
              source: { nets: ["10.0.0.0/8"] },
              destination: { ports: [8080] },
            },
          ],
          egress: [
            { action: "Deny", destination: { nets: ["169.254.169.254/32"] } },
            { action: "Pass" },
          ],
        }
      : {
          selector: `pcns.team == '${teamOf(gen.int(TEAMS))}'`,
          types: ["Ingress"],
          ingress: [
            {
              action: "Allow",
              source: {
                selector: `role == 'external-${gen.int(EXTERNAL_SETS)}'`,
                namespaceSelector: "global()",
              },
            },
            {
              action: "Allow",
              source: { selector: `pcns.env == 'prod' && app == '${gen.pick(ALL_APPS)}'` },
            },
          ],
        };
  spec["tier"] = platform ? "platform" : "default";
  return { apiVersion: V3, kind: "GlobalNetworkPolicy", metadata: { name }, spec };
}

function globalNetworkSet(k: number): Resource {
  return {
    apiVersion: V3,
    kind: "GlobalNetworkSet",
    metadata: { name: `external-${k}`, labels: { role: `external-${k}` } },
    spec: { nets: [`198.51.${k}.0/24`, `203.0.${k}.0/24`] },
  };
}

const TIER: Resource = {
  apiVersion: V3,
  kind: "Tier",
  metadata: { name: "platform" },
  spec: { order: 100, defaultAction: "Pass" },
};

/** The cluster, in datastore key order (kinds by plural name, then name). */
export function makeCluster(scale: Scale, seed: number): Resource[] {
  const gen = new Gen(seed);
  const globalPolicies = Math.round(scale.policies * 0.05);
  const out: Resource[] = [];
  for (let g = 0; g < globalPolicies; g++) out.push(globalPolicy(g, gen));
  for (let k = 0; k < EXTERNAL_SETS; k++) out.push(globalNetworkSet(k));
  for (let p = 0; p < scale.policies - globalPolicies; p++) out.push(networkPolicy(p, scale, gen));
  for (let i = 0; i < scale.namespaces; i++) out.push(namespaceProfile(i));
  out.push(TIER);
  // At a reduced scale keep the endpoints of host-0 (every HOSTS-th is a
  // multiple of the stride) and a stride's share of the rest.
  const stride = FULL.endpoints / scale.endpoints;
  for (let n = 0; n < FULL.endpoints; n += stride) out.push(workload(n, scale, gen));
  return out;
}

/** Fails unless each shape of generated resource is already in stored form. */
function checkStoredForm(resources: readonly Resource[]): void {
  const seen = new Set<string>();
  for (const r of resources) {
    const shape = `${r.apiVersion}/${r.kind}/${r.metadata.name.replace(/[0-9]+/g, "")}`;
    if (seen.has(shape)) continue;
    seen.add(shape);
    const v = validateResource(r);
    if (!v.ok) throw new Error(`generated ${shape} is invalid: ${JSON.stringify(v.errors)}`);
    assert.deepEqual(v.resource, r, `generated ${shape} is not in stored form`);
  }
}

// ---- measurement ------------------------------------------------------------------

function forceGc(): () => void {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (exposed) return exposed;
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const round = (n: number, digits: number) => Number(n.toFixed(digits));
const yieldToEventLoop = () => new Promise((resolve) => setImmediate(resolve));

/** Process CPU seconds (user + system, all threads, so GC included). */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

export function fullSync(resources: readonly Resource[]): {
  graph: CalcGraph;
  messages: DataplaneMessage[];
  seconds: number;
  cpuSeconds: number;
} {
  const cpuStart = cpuSeconds();
  const start = performance.now();
  const graph = new CalcGraph({ hostname: HOSTNAME });
  const inputs: CalcInput[] = resources.map((resource) => ({ type: "put", resource }));
  inputs.push({ type: "status", status: "in-sync" });
  graph.onUpdates(inputs);
  const messages = graph.flush();
  const seconds = (performance.now() - start) / 1000;
  const cpu = cpuSeconds() - cpuStart;
  const errors = graph.drainErrors();
  if (errors.length > 0) throw new Error(`calc errors: ${JSON.stringify(errors.slice(0, 3))}`);
  return { graph, messages, seconds, cpuSeconds: cpu };
}

const UPDATE_POOLS: Record<string, readonly string[]> = {
  app: ALL_APPS,
  role: ROLES,
  tier: TIERS,
  version: VERSIONS,
};
const UPDATE_KEYS = Object.keys(UPDATE_POOLS);

/** `count` endpoint label changes (resources to put), keeping `endpoints` current. */
export function makeUpdates(
  endpoints: Resource[],
  local: number[],
  remote: number[],
  count: number,
  gen: Gen,
): Resource[] {
  const out: Resource[] = [];
  for (let n = 0; n < count; n++) {
    const i = gen.rand() < LOCAL_UPDATE_SHARE ? gen.pick(local) : gen.pick(remote);
    const old = endpoints[i]!;
    const labels = old.metadata.labels ?? {};
    const key = gen.pick(UPDATE_KEYS);
    const value = gen.pick(UPDATE_POOLS[key]!.filter((v) => v !== labels[key]));
    const next: Resource = {
      ...old,
      metadata: { ...old.metadata, labels: { ...labels, [key]: value } },
    };
    endpoints[i] = next;
    out.push(next);
  }
  return out;
}

// ---- the naive baseline -------------------------------------------------------------

interface NaiveResult {
  /** Local endpoint id → sorted policy ids that apply to it. */
  policiesOf: Map<string, string[]>;
  /** Set key (selector text, or selector text + named port) → sorted members. */
  members: Map<string, string[]>;
}

/**
 * The same desired state by brute force: effective labels for everything,
 * every selector against every item, then what host-0 needs.
 */
function naiveFullSync(resources: readonly Resource[]): NaiveResult {
  const profiles = new Map<string, Labels | undefined>();
  for (const r of resources) {
    if (r.kind === "Profile") {
      profiles.set(r.metadata.name, (r.spec as { labelsToApply?: Labels }).labelsToApply);
    }
  }
  interface Item {
    id: string;
    labels: Labels;
    nets: string[];
    ports: { name: string; protocol: string; port: number }[];
    local: boolean;
  }
  const items: Item[] = [];
  interface PolicyInfo {
    id: string;
    selector: Selector;
    namespace: string | undefined;
    rules: { source?: Doc; destination?: Doc; protocol?: string | number }[];
  }
  const policies: PolicyInfo[] = [];
  for (const r of resources) {
    if (r.kind === "WorkloadEndpoint") {
      const spec = r.spec as {
        node: string;
        ipNetworks: string[];
        profiles: string[];
        orchestrator: string;
        ports: { name: string; protocol: string; port: number }[];
      };
      const ns = r.metadata.namespace!;
      items.push({
        id: `workload/${ns}/${r.metadata.name}`,
        labels: effectiveLabels({
          own: r.metadata.labels,
          inherited: spec.profiles.map((p) => profiles.get(p)),
          namespace: ns,
          namespaceLabels: namespaceLabels(ns, profiles.get(`kns.${ns}`)),
          orchestrator: spec.orchestrator,
        }),
        nets: spec.ipNetworks,
        ports: spec.ports,
        local: spec.node === HOSTNAME,
      });
    } else if (r.kind === "GlobalNetworkSet") {
      items.push({
        id: `gnetset/${r.metadata.name}`,
        labels: effectiveLabels({ own: r.metadata.labels }),
        nets: (r.spec as { nets: string[] }).nets,
        ports: [],
        local: false,
      });
    } else if (r.kind === "GlobalNetworkPolicy" || r.kind === "NetworkPolicy") {
      const p =
        r.apiVersion === V3 ? r : (translateK8sNetworkPolicy(r as never) as unknown as Resource);
      const spec = p.spec as Doc & { tier: string; ingress?: Doc[]; egress?: Doc[] };
      const ns = p.kind === "NetworkPolicy" ? p.metadata.namespace : undefined;
      policies.push({
        id:
          ns === undefined
            ? `${spec.tier}/${p.metadata.name}`
            : `${spec.tier}/${ns}/${p.metadata.name}`,
        selector: policyEndpointSelector({
          selector: spec["selector"] as string,
          namespace: ns,
          namespaceSelector: spec["namespaceSelector"] as string | undefined,
        }),
        namespace: ns,
        rules: [...(spec.ingress ?? []), ...(spec.egress ?? [])],
      });
    }
  }

  // Every selector, parsed once per distinct text.
  const cache = new Map<string, Selector>();
  const intern = (s: Selector) =>
    cache.get(s.toString()) ?? cache.set(s.toString(), s).get(s.toString())!;
  const ruleSets: { policy: number; key: string; selector: Selector; port?: string }[] = [];
  policies.forEach((p, i) => {
    for (const rule of p.rules) {
      for (const side of [rule.source, rule.destination]) {
        if (!side) continue;
        const sel = ruleSideSelector(side, p.namespace);
        if (sel) ruleSets.push({ policy: i, key: sel.toString(), selector: intern(sel) });
        const notSel = ruleSideNotSelector(side);
        if (notSel) ruleSets.push({ policy: i, key: notSel.toString(), selector: intern(notSel) });
        for (const port of (side["ports"] as (string | number)[] | undefined) ?? []) {
          if (typeof port === "number" || /^[0-9:]+$/.test(port)) continue;
          const s = sel ?? intern(parseSelector("all()"));
          ruleSets.push({ policy: i, key: `${s.toString()}\u0000tcp:${port}`, selector: s, port });
        }
      }
    }
  });

  // Every selector against every item.
  const matchesOf = new Map<Selector, boolean[]>();
  for (const s of [...policies.map((p) => p.selector), ...cache.values()]) {
    if (matchesOf.has(s)) continue;
    matchesOf.set(
      s,
      items.map((it) => s.matches(it.labels)),
    );
  }

  const policiesOf = new Map<string, string[]>();
  const active = new Set<number>();
  items.forEach((it, j) => {
    if (!it.local) return;
    const ids: string[] = [];
    policies.forEach((p, i) => {
      if (matchesOf.get(p.selector)![j]) {
        ids.push(p.id);
        active.add(i);
      }
    });
    policiesOf.set(it.id, ids.sort());
  });
  const members = new Map<string, string[]>();
  for (const rs of ruleSets) {
    if (!active.has(rs.policy) || members.has(rs.key)) continue;
    const m = matchesOf.get(rs.selector)!;
    const out: string[] = [];
    items.forEach((it, j) => {
      if (!m[j]) return;
      if (rs.port === undefined) out.push(...it.nets);
      else {
        for (const p of it.ports) {
          if (p.name === rs.port) for (const net of it.nets) out.push(`${net},tcp:${p.port}`);
        }
      }
    });
    members.set(rs.key, [...new Set(out)].sort());
  }
  return { policiesOf, members };
}

/** Fails unless the graph's first flush holds what the naive computation found. */
function checkAgreement(messages: readonly DataplaneMessage[], naive: NaiveResult): void {
  let endpoints = 0;
  let sets = 0;
  for (const m of messages) {
    if (m.type === "endpoint-update") {
      endpoints++;
      const ids = m.endpoint.tiers.flatMap((t) => [...new Set([...t.ingress, ...t.egress])]).sort();
      assert.deepEqual(ids, naive.policiesOf.get(m.endpoint.id), `policies of ${m.endpoint.id}`);
    } else if (m.type === "ipset-update") {
      sets++;
      const np = m.ipset.namedPort;
      const key = np ? `${m.ipset.selector}\u0000${np.protocol}:${np.name}` : m.ipset.selector;
      assert.deepEqual(m.members, naive.members.get(key), `members of ${key}`);
    }
  }
  assert.equal(endpoints, naive.policiesOf.size, "local endpoints");
  assert.equal(sets, naive.members.size, "IP sets");
}

// ---- the run ------------------------------------------------------------------------------

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  const gc = forceGc();
  const loadStart = os.loadavg()[0]!;

  // Small scale: the naive baseline and our graph, like for like.
  const small = makeCluster(SMALL, 0xca1c);
  checkStoredForm(small);
  ctx.log(
    `small scale: ${fmt(small.length)} resources (${fmt(SMALL.endpoints)} endpoints, ${fmt(SMALL.policies)} policies)`,
  );
  const smallSyncs: number[] = [];
  let smallMessages: DataplaneMessage[] = [];
  for (let r = 1; r <= RUNS; r++) {
    const s = fullSync(small);
    smallSyncs.push(s.seconds);
    smallMessages = s.messages;
    ctx.log(
      `small/graph: full sync ${r}/${RUNS}: ${s.seconds.toFixed(3)} s, ${fmt(s.messages.length)} messages`,
    );
  }
  const naiveRuns: number[] = [];
  let naive: NaiveResult | undefined;
  for (let r = 1; r <= RUNS; r++) {
    naive = undefined;
    gc();
    const start = performance.now();
    naive = naiveFullSync(small);
    naiveRuns.push((performance.now() - start) / 1000);
    ctx.log(`small/naive: full sync ${r}/${RUNS}: ${naiveRuns.at(-1)!.toFixed(2)} s`);
    await yieldToEventLoop();
  }
  checkAgreement(smallMessages, naive!);
  ctx.log("small scale: graph and naive agree on every local endpoint's policies and every set");
  naive = undefined;
  smallMessages = [];

  // Full scale. Each run builds the cluster afresh and lets go of it after
  // the sync: an agent keeps only what the graph holds (the syncer keeps
  // resource versions, not resources), so RSS is measured without the inputs.
  let resources = makeCluster(FULL, 0xca1c);
  gc();
  const rssInputs = process.memoryUsage().rss / 2 ** 20;
  ctx.log(
    `full scale: ${fmt(resources.length)} resources (${fmt(FULL.endpoints)} endpoints, ${fmt(FULL.policies)} policies)`,
  );
  const syncs: number[] = [];
  const syncsCpu: number[] = [];
  const rss: number[] = [];
  const heap: number[] = [];
  let graph: CalcGraph | undefined;
  let messages = 0;
  for (let r = 1; r <= RUNS; r++) {
    graph = undefined;
    if (resources.length === 0) resources = makeCluster(FULL, 0xca1c);
    gc();
    await yieldToEventLoop();
    const s = fullSync(resources);
    resources = [];
    graph = s.graph;
    messages = s.messages.length;
    syncs.push(s.seconds);
    syncsCpu.push(s.cpuSeconds);
    gc();
    const mem = process.memoryUsage();
    rss.push(mem.rss / 2 ** 20);
    heap.push(mem.heapUsed / 2 ** 20);
    ctx.log(
      `full/graph: full sync ${r}/${RUNS}: ${s.seconds.toFixed(2)} s (cpu ${s.cpuSeconds.toFixed(2)} s), ` +
        `${fmt(messages)} messages, rss ${fmt(rss.at(-1)!)} MiB`,
    );
  }
  const stats = graph!.stats();
  ctx.log(`full/graph: ${JSON.stringify(stats)}`);
  resources = makeCluster(FULL, 0xca1c);

  // Sustained endpoint label updates on the last graph.
  const endpoints = resources.filter((r) => r.kind === "WorkloadEndpoint");
  resources = [];
  const local: number[] = [];
  const remote: number[] = [];
  endpoints.forEach((e, i) =>
    ((e.spec as { node: string }).node === HOSTNAME ? local : remote).push(i),
  );
  const gen = new Gen(0x0bd);
  const rates: number[] = [];
  const ratesCpu: number[] = [];
  let updateMessages = 0;
  for (let r = 1; r <= RUNS; r++) {
    const updates = makeUpdates(endpoints, local, remote, UPDATES_PER_RUN, gen);
    updateMessages = 0;
    const cpuStart = cpuSeconds();
    const start = performance.now();
    for (const resource of updates) {
      graph!.onUpdates([{ type: "put", resource }]);
      updateMessages += graph!.flush().length;
    }
    rates.push(UPDATES_PER_RUN / ((performance.now() - start) / 1000));
    ratesCpu.push(UPDATES_PER_RUN / (cpuSeconds() - cpuStart));
    ctx.log(
      `full/graph: updates ${r}/${RUNS}: ${fmt(rates.at(-1)!)} updates/s ` +
        `(per cpu s ${fmt(ratesCpu.at(-1)!)}), ${fmt(updateMessages)} messages`,
    );
    await yieldToEventLoop();
  }

  const baselineMeasured = median(naiveRuns);
  const smallSync = median(smallSyncs);
  return {
    full_sync_s: round(median(syncs), 2),
    full_sync_cpu_s: round(median(syncsCpu), 2),
    rss_mb: Math.round(rss[0]!),
    heap_used_mb: Math.round(median(heap)),
    rss_inputs_mb: Math.round(rssInputs),
    updates_per_s: Math.round(median(rates)),
    updates_per_cpu_s: Math.round(median(ratesCpu)),
    baseline_full_sync_s: round(baselineMeasured / BASELINE_SCALE, 1),
    baseline_scale: BASELINE_SCALE,
    baseline_measured_s: round(baselineMeasured, 2),
    small_full_sync_s: round(smallSync, 3),
    ratio: round(baselineMeasured / smallSync, 1),
    endpoints: FULL.endpoints,
    local_endpoints: stats.localEndpoints,
    namespaces: FULL.namespaces,
    policies: FULL.policies,
    active_policies: stats.activePolicies,
    ipsets: stats.ipsets,
    first_flush_messages: messages,
    update_mode: `each update put and flushed alone; ${LOCAL_UPDATE_SHARE * 100}% local endpoints`,
    rss_mode: "after the first full sync, inputs released, forced GC",
    runs: RUNS,
    load_avg: `${loadStart.toFixed(1)} → ${os.loadavg()[0]!.toFixed(1)}`,
  };
}
