// dataplane: the agent's Linux dataplane at issue 4's scale, on the real
// kernel: 2,000 local workload endpoints, 10,000 policy rules (1,000
// policies of 10 rules) and IP sets with 50,000 members in all, fed to the
// dataplane manager (src/dataplane/dataplane.ts) as the calc's
// DataplaneMessages, programmed through the real drivers (nft -f, ip -batch,
// /proc/sys) into a network namespace the benchmark creates.
//
// The scenario (seeded): 100 namespaces of 20 pods; each namespace has 10
// NetworkPolicies of 10 rules (6 ingress: IP set + port, named-port set,
// CIDR deny, UDP 53, two IP sets + port range, ICMP; 4 egress: IP set +
// port, UDP 53, CIDR deny, CIDR minus IP set + port), each pod 5 of its
// namespace's policies and its kns profile. 200 "app == aN" sets over 38,000
// remote and the 2,000 local pods, 50 named-port sets over the pods of 50
// apps: 250 sets, ~50,000 members. Rendered: ~6,200 chains, ~79,000 rules.
//
//   bench process (machine's namespace: touches nothing there)
//     ├─ ip netns add twt-…-dp: an uplink eth0 with an address and a default
//     │  route (as a real host; see vethBatch), 2,000 veth pairs, both ends
//     │  in the namespace (host end "tw…", the other end "wp…")
//     └─ ip netns exec twt-…-dp node dist/bench/dataplane.js --worker
//          the worker is the agent's dataplane half: a LinkMonitor on
//          `ip monitor link`, the Dataplane with nftCommandKernel, ipRouteTable
//          and procSysctls, all in the namespace (/proc/sys/net is the
//          namespace's own for a process inside it)
//
// Figures (medians over ROUNDS rounds; each round starts from a clean
// kernel: no twill table, no twill routes, the interfaces' sysctls back to
// the namespace's defaults):
//   first_apply_s    the whole snapshot's messages given to a fresh Dataplane,
//                    then apply() until it resolves: render, nft transactions,
//                    global and per-interface sysctls, routes (target <= 5).
//                    first_apply_{nft,routes,sysctls}_s: time inside each
//                    driver's kernel calls.
//   endpoint_add_ms  one more endpoint (its IP set deltas, endpoint and route
//                    messages, as the calc flushes them when a pod starts;
//                    its veth created just before and seen up by the link
//                    monitor, as the CNI plugin leaves it) given to the
//                    dataplane until its nft transaction is in the kernel
//                    (`nft -f` exited 0). Median of ADDITIONS (target <= 50).
//   endpoint_apply_ms  the same until apply() resolves: sysctls, route and the
//                    endpoint's status too (they run while nft works).
//   baseline_nft_s   the floor for the first apply: the same ruleset loaded by
//                    one plain `nft -f` of its full text (rendered beforehand,
//                    not timed), into an empty namespace table.
//                    first_apply_ratio_vs_bare_nft = first_apply_s / baseline_nft_s.
//   endpoint_remove_ms  one endpoint removed (its messages undone: IP set
//                    members, endpoint, route) until its nft transaction is
//                    in the kernel; median of REMOVALS, after the rewrites.
//                    No target: recorded because nft 1.0.6 reads back every
//                    interval set's elements for a `delete element`.
//   baseline_full_rewrite_ms  the naive way to add an endpoint: rewrite the
//                    whole table in one `nft -f` (text rendered beforehand,
//                    not timed; no routes or sysctls), REWRITES times
//                    after the additions. endpoint_add_speedup_vs_full_rewrite =
//                    baseline_full_rewrite_ms / endpoint_add_ms.
//   endpoint_add_agent_cpu_ms  the CPU time of this process alone per addition
//                    (median), until apply() resolves: the agent's own share
//                    (rendering, diffing, starting nft and ip, statuses), without
//                    the children's.
//   *_cpu_*          the same in CPU time (this process and its nft and ip
//                    children, their kernel work included): what the work
//                    costs whatever else the machine is doing. On a busy
//                    machine the wall-clock figures wait for a core. The
//                    children's share is counted in 10 ms ticks, so one
//                    addition's CPU is ±10 ms; endpoint_add_cpu_ms is the
//                    median over the additions.
//
// Scale can be lowered for a quick look: DATAPLANE_ENDPOINTS, DATAPLANE_ROUNDS.
import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type {
  CompiledPolicy,
  CompiledRule,
  DataplaneMessage,
  IPSetInfo,
  LocalEndpoint,
} from "../src/calc/messages.js";
import { Dataplane } from "../src/dataplane/dataplane.js";
import { applyMessage, emptyDesiredDataplane } from "../src/dataplane/desired-state.js";
import type { DataplaneSettings } from "../src/dataplane/dataplane.js";
import { LinkMonitor, ipLinkSource } from "../src/dataplane/link-monitor.js";
import { NetnsPool, netnsUnavailable } from "../src/dataplane/netns-testkit.js";
import { nftCommandKernel } from "../src/dataplane/nft-driver.js";
import { renderFullTransaction, renderRuleset } from "../src/dataplane/render-nft.js";
import { ipRouteTable } from "../src/dataplane/route-driver.js";
import { runCommand } from "../src/dataplane/run-command.js";
import { interfaceSysctls, procSysctls } from "../src/dataplane/sysctl-driver.js";
import { Gen } from "../src/util/prng.js";
import type { BenchContext, BenchFigures } from "./run.js";

const WORKER_FLAG = "--worker";
const ENDPOINTS = Number(process.env["DATAPLANE_ENDPOINTS"] ?? 2000);
const ROUNDS = Number(process.env["DATAPLANE_ROUNDS"] ?? 3);
const ADDITIONS = 15;
/** Removals timed after the additions (of the first REMOVALS added endpoints). */
const REMOVALS = 5;
const REWRITES = 3;

// ---------------------------------------------------------------------------
// The scenario: what the calc would send for one busy host. Pure and seeded.

export interface ScenarioScale {
  endpoints: number;
  namespaces: number;
  policiesPerNamespace: number;
  /** Policies each endpoint gets (of its namespace's). */
  policiesPerEndpoint: number;
  apps: number;
  /** Apps whose pods have the named port http (tcp 8080): named-port sets. */
  namedPortApps: number;
  /** Endpoints elsewhere in the cluster, members of the sets. */
  remoteEndpoints: number;
  additions: number;
}

export const ISSUE_SCALE: ScenarioScale = {
  endpoints: 2000,
  namespaces: 100,
  policiesPerNamespace: 10,
  policiesPerEndpoint: 5,
  apps: 200,
  namedPortApps: 50,
  remoteEndpoints: 38_000,
  additions: ADDITIONS,
};

export interface Scenario {
  /** The first flush after the snapshot: ipsets → policies → profiles → endpoints → routes → in-sync. */
  snapshot: DataplaneMessage[];
  /** One flush per added endpoint. */
  additions: DataplaneMessage[][];
  /** Host-side interface of every endpoint, the additions' last. */
  interfaces: string[];
  policies: number;
  rules: number;
  ipsets: number;
  members: number;
}

/** The host-side interface name of local endpoint `i` (as the CNI plugin: prefix + hash). */
export function interfaceName(i: number): string {
  return `tw${new Gen(0x7711 + i).hex(11)}`;
}

const v4 = (block: number, k: number) =>
  `10.${block + Math.floor(k / 65536)}.${Math.floor(k / 256) % 256}.${k % 256}/32`;

export function scenario(scale: ScenarioScale): Scenario {
  const g = new Gen(4);
  const appSet = (a: number) => `s:app == 'a${a}'`;
  const npSet = (a: number) => `n:app == 'a${a}':http`;
  const appMembers = Array.from({ length: scale.apps }, () => [] as string[]);
  const npMembers = Array.from({ length: scale.namedPortApps }, () => [] as string[]);
  const member = (app: number, cidr: string) => {
    appMembers[app]!.push(cidr);
    if (app < scale.namedPortApps) npMembers[app]!.push(`${cidr},tcp:8080`);
  };
  for (let k = 0; k < scale.remoteEndpoints; k++) member(g.int(scale.apps), v4(66, k));
  const localApps = Array.from({ length: scale.endpoints + scale.additions }, () =>
    g.int(scale.apps),
  );
  for (let i = 0; i < scale.endpoints; i++) member(localApps[i]!, v4(65, i));

  const ipsets: DataplaneMessage[] = [];
  let members = 0;
  for (let a = 0; a < scale.apps; a++) {
    const info: IPSetInfo = { id: appSet(a), kind: "net", selector: `app == "a${a}"` };
    ipsets.push({ type: "ipset-update", ipset: info, members: appMembers[a]! });
    members += appMembers[a]!.length;
  }
  for (let a = 0; a < scale.namedPortApps; a++) {
    const info: IPSetInfo = {
      id: npSet(a),
      kind: "net-port",
      selector: `app == "a${a}"`,
      namedPort: { name: "http", protocol: "tcp" },
    };
    ipsets.push({ type: "ipset-update", ipset: info, members: npMembers[a]! });
    members += npMembers[a]!.length;
  }

  const policies: DataplaneMessage[] = [];
  const nsPolicies: string[][] = [];
  let rules = 0;
  for (let n = 0; n < scale.namespaces; n++) {
    const ids: string[] = [];
    for (let p = 0; p < scale.policiesPerNamespace; p++) {
      const id = `default/ns-${n}/knp.default.pol-${p}`;
      ids.push(id);
      const rule = (r: Omit<CompiledRule, "ruleId">, dir: string, i: number): CompiledRule => ({
        ...r,
        ruleId: `${id}/${dir}/${i}`,
      });
      const inbound: CompiledRule[] = [
        {
          action: "Allow",
          protocol: 6,
          src: { ipSets: [appSet(g.int(scale.apps))] },
          dst: { ports: [{ first: 8080, last: 8080 }] },
        },
        {
          action: "Allow",
          protocol: 6,
          src: { ipSets: [appSet(g.int(scale.apps))] },
          dst: { namedPortIpSets: [npSet(g.int(scale.namedPortApps))] },
        },
        { action: "Deny", src: { nets: ["192.0.2.0/24", "198.51.100.0/24"] }, dst: {} },
        {
          action: "Allow",
          protocol: 17,
          src: { ipSets: [appSet(g.int(scale.apps))] },
          dst: { ports: [{ first: 53, last: 53 }] },
        },
        {
          action: "Allow",
          protocol: 6,
          src: { ipSets: [appSet(g.int(scale.apps)), appSet(g.int(scale.apps))] },
          dst: { ports: [{ first: 9000, last: 9100 }] },
        },
        { action: "Allow", protocol: 1, ipVersion: 4, icmp: { type: 8 }, src: {}, dst: {} },
      ].map((r, i) => rule(r as Omit<CompiledRule, "ruleId">, "ingress", i));
      const outbound: CompiledRule[] = [
        {
          action: "Allow",
          protocol: 6,
          src: {},
          dst: { ipSets: [appSet(g.int(scale.apps))], ports: [{ first: 5432, last: 5432 }] },
        },
        { action: "Allow", protocol: 17, src: {}, dst: { ports: [{ first: 53, last: 53 }] } },
        { action: "Deny", src: {}, dst: { nets: ["169.254.169.254/32"] } },
        {
          action: "Allow",
          protocol: 6,
          src: {},
          dst: {
            nets: ["10.0.0.0/8"],
            notIpSets: [appSet(g.int(scale.apps))],
            ports: [{ first: 443, last: 443 }],
          },
        },
      ].map((r, i) => rule(r as Omit<CompiledRule, "ruleId">, "egress", i));
      rules += inbound.length + outbound.length;
      const policy: CompiledPolicy = {
        id,
        tier: "default",
        name: `knp.default.pol-${p}`,
        namespace: `ns-${n}`,
        inbound,
        outbound,
      };
      policies.push({ type: "policy-update", policy });
    }
    nsPolicies.push(ids);
  }

  const profiles: DataplaneMessage[] = [];
  for (let n = 0; n < scale.namespaces; n++) {
    const allow: CompiledRule = { action: "Allow", src: {}, dst: {}, ruleId: "" };
    profiles.push({
      type: "profile-update",
      profile: {
        id: `kns.ns-${n}`,
        inbound: [{ ...allow, ruleId: `kns.ns-${n}/ingress/0` }],
        outbound: [{ ...allow, ruleId: `kns.ns-${n}/egress/0` }],
      },
    });
  }

  const endpoint = (i: number): LocalEndpoint => {
    const n = i % scale.namespaces;
    const mine = nsPolicies[n]!;
    const chosen = new Set<string>();
    while (chosen.size < Math.min(scale.policiesPerEndpoint, mine.length)) chosen.add(g.pick(mine));
    const ids = [...chosen].sort();
    return {
      id: `workload/ns-${n}/pod-${i}`,
      kind: "workload",
      name: `node--1-k8s-pod--${i}-eth0`,
      namespace: `ns-${n}`,
      interfaceName: interfaceName(i),
      ipv4Nets: [v4(65, i)],
      ipv6Nets: [],
      allowSpoofedSourcePrefixes: [],
      tiers: [{ name: "default", defaultAction: "Deny", ingress: ids, egress: ids }],
      forwardTiers: [],
      preDnatTiers: [],
      untrackedTiers: [],
      profileIds: [`kns.ns-${n}`],
      missingProfiles: [],
    };
  };
  const endpoints: DataplaneMessage[] = [];
  const routes: DataplaneMessage[] = [];
  for (let i = 0; i < scale.endpoints; i++) {
    const ep = endpoint(i);
    endpoints.push({ type: "endpoint-update", endpoint: ep });
    routes.push({
      type: "route-update",
      route: { dst: ep.ipv4Nets[0]!, interfaceName: ep.interfaceName, endpointId: ep.id },
    });
  }
  const additions: DataplaneMessage[][] = [];
  for (let j = 0; j < scale.additions; j++) {
    const i = scale.endpoints + j;
    const ep = endpoint(i);
    const app = localApps[i]!;
    const cidr = ep.ipv4Nets[0]!;
    const flush: DataplaneMessage[] = [
      { type: "ipset-delta", id: appSet(app), added: [cidr], removed: [] },
    ];
    if (app < scale.namedPortApps) {
      flush.push({ type: "ipset-delta", id: npSet(app), added: [`${cidr},tcp:8080`], removed: [] });
    }
    flush.push(
      { type: "endpoint-update", endpoint: ep },
      {
        type: "route-update",
        route: { dst: cidr, interfaceName: ep.interfaceName, endpointId: ep.id },
      },
    );
    additions.push(flush);
  }
  return {
    snapshot: [...ipsets, ...policies, ...profiles, ...endpoints, ...routes, { type: "in-sync" }],
    additions,
    interfaces: Array.from({ length: scale.endpoints + scale.additions }, (_, i) =>
      interfaceName(i),
    ),
    policies: policies.length,
    rules,
    ipsets: ipsets.length,
    members,
  };
}

export const BENCH_SETTINGS: DataplaneSettings = {
  render: {
    interfacePrefix: "tw",
    defaultEndpointToHostAction: "Drop",
    failsafeInbound: [],
    failsafeOutbound: [],
    natOutgoingPools: [],
    allPools: [],
    logPrefix: "twill-packet",
  },
  routeProtocol: 116,
  ipv6: false,
  forwarding: true,
  allowSourceSpoofing: false,
  routeSyncDisabled: false,
};

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

// ---------------------------------------------------------------------------
// The parent: namespace, veths, the worker, cleanup.

/**
 * `ip -batch` lines for a host namespace: first an uplink with an address
 * and a default route, as every real host has (the kernel picks a new
 * route's preferred source from the first interface with an address: with
 * none at all it searches all 4,000 interfaces for every route), then veth
 * pairs named after `interfaces`, both ends up.
 */
export function vethBatch(interfaces: readonly string[]): string {
  const lines: string[] = [
    "link add eth0 type veth peer name eth0p",
    "link set eth0 up",
    "link set eth0p up",
    "addr add 198.18.0.1/24 dev eth0",
    "route add default via 198.18.0.2 dev eth0",
  ];
  for (const name of interfaces) {
    const peer = `wp${name.slice(2)}`;
    lines.push(`link add ${name} type veth peer name ${peer}`);
    lines.push(`link set ${name} up`, `link set ${peer} up`);
  }
  return `${lines.join("\n")}\n`;
}

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  const why = netnsUnavailable();
  if (why) throw new Error(`dataplane benchmark ${why}`);
  const scale = { ...ISSUE_SCALE, endpoints: ENDPOINTS };
  // The additions' veths appear later, one before each addition (the worker).
  const interfaces = scenario(scale).interfaces.slice(0, scale.endpoints);
  const pool = new NetnsPool();
  try {
    const ns = await pool.create("dp");
    const t0 = performance.now();
    const r = await ns.try("ip", ["-batch", "-"], {
      input: vethBatch(interfaces),
      timeoutMs: 600_000,
    });
    if (r.code !== 0) throw new Error(`creating veths failed: ${r.stderr.slice(0, 500)}`);
    ctx.log(
      `namespace ${ns.name}: ${interfaces.length} veth pairs in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    const child = ns.spawn(process.execPath, [
      fileURLToPath(import.meta.url),
      WORKER_FLAG,
      String(ENDPOINTS),
    ]);
    let result: BenchFigures | undefined;
    let stderr = "";
    let buffered = "";
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    child.stdout?.on("data", (d: Buffer) => {
      buffered += d.toString("utf8");
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.startsWith("{")) result = JSON.parse(line) as BenchFigures;
        else if (line !== "") ctx.log(line);
      }
    });
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    if (code !== 0 || !result)
      throw new Error(`worker failed (exit ${code}): ${stderr.slice(-2000)}`);
    return result;
  } finally {
    await pool.cleanup();
  }
}

// ---------------------------------------------------------------------------
// The worker, inside the namespace.

function out(line: string): void {
  process.stdout.write(`${line}\n`);
}

/**
 * CPU time used so far by this process and its finished children (nft, ip:
 * their kernel work counts as their system time), in ms. Children's time
 * comes from /proc/self/stat in clock ticks (10 ms): sum many before dividing.
 */
function cpuMs(): number {
  const own = process.cpuUsage();
  const stat = readFileSync("/proc/self/stat", "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After the command: state is field 3; cutime and cstime are fields 16 and 17.
  const ticks = Number(fields[13]) + Number(fields[14]);
  return (own.user + own.system) / 1000 + ticks * 10;
}

async function timed<T>(f: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await f();
  return [v, performance.now() - t];
}

async function nftFile(text: string): Promise<void> {
  const r = await runCommand("nft", ["-f", "-"], { input: text, timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`nft -f failed: ${r.stderr.slice(0, 1000)}`);
}

async function must(file: string, args: string[]): Promise<string> {
  const r = await runCommand(file, args, { timeoutMs: 300_000 });
  if (r.code !== 0) throw new Error(`${file} ${args.join(" ")} failed: ${r.stderr.slice(0, 500)}`);
  return r.stdout;
}

/** Back to a clean kernel: no table, no twill routes, sysctls as the namespace had them. */
async function resetKernel(defaults: ReadonlyMap<string, string>): Promise<void> {
  await runCommand("nft", ["delete", "table", "inet", "twill"]);
  await must("ip", ["route", "flush", "proto", String(BENCH_SETTINGS.routeProtocol)]);
  const entries = [...defaults];
  for (let i = 0; i < entries.length; i += 256) {
    await Promise.all(entries.slice(i, i + 256).map(([k, v]) => writeFile(`/proc/sys/${k}`, v)));
  }
}

async function worker(endpoints: number): Promise<void> {
  const scale = { ...ISSUE_SCALE, endpoints };
  const sc = scenario(scale);
  out(
    `scenario: ${endpoints} endpoints, ${sc.policies} policies, ${sc.rules} rules, ${sc.ipsets} IP sets, ${sc.members} members`,
  );
  // What the kernel gave the interfaces, to return to before each round.
  const defaults = new Map<string, string>();
  const keys = [
    "net/ipv4/ip_forward",
    ...sc.interfaces
      .slice(0, endpoints)
      .flatMap((name) =>
        interfaceSysctls(name, { ipv6: false, forwarding: true, strictRpFilter: true }).map(
          ([k]) => k,
        ),
      ),
  ];
  for (const k of keys) defaults.set(k, (await readFile(`/proc/sys/${k}`, "utf8")).trim());

  const stop = new AbortController();
  let dp: Dataplane | undefined;
  const links = new LinkMonitor(ipLinkSource(runCommand), {
    refreshIntervalMs: 0,
    onChange: (name, link) => dp?.onLinkChange(name, link),
  });
  const linksRunning = await links.start(stop.signal);
  // When the last nft transaction was in the kernel.
  let nftCommitted = 0;
  // Time spent in each driver's kernel calls (they overlap when run together).
  const spent = { nft: 0, routes: 0, sysctls: 0 };
  const clocked =
    <A extends unknown[], R>(what: keyof typeof spent, f: (...a: A) => Promise<R>) =>
    async (...a: A): Promise<R> => {
      const t = performance.now();
      try {
        return await f(...a);
      } finally {
        spent[what] += performance.now() - t;
      }
    };
  const nft = nftCommandKernel(runCommand);
  const routes = ipRouteTable(runCommand);
  const sysctls = procSysctls();
  const deps = {
    nft: {
      list: clocked("nft", nft.list),
      run: clocked("nft", async (script: string, signal?: AbortSignal) => {
        await nft.run(script, signal);
        nftCommitted = performance.now();
      }),
    },
    routes: { list: clocked("routes", routes.list), apply: clocked("routes", routes.apply) },
    sysctls: { read: clocked("sysctls", sysctls.read), write: clocked("sysctls", sysctls.write) },
    isUp: (name: string) => links.isUp(name),
  };

  const firsts: number[] = [];
  const firstCpu: number[] = [];
  const phases: { nft: number; routes: number; sysctls: number }[] = [];
  const bareNft: number[] = [];
  const bareCpu: number[] = [];
  const fullText = renderFullTransaction(
    renderRuleset(sc.snapshot.reduce(applyMessage, emptyDesiredDataplane()), BENCH_SETTINGS.render),
  );
  out(
    `full ruleset text: ${(fullText.length / 1e6).toFixed(1)} MB, ${fullText.split("\n").length} lines`,
  );
  try {
    for (let r = 0; r < ROUNDS; r++) {
      await resetKernel(defaults);
      const bareCpu0 = cpuMs();
      const [, bare] = await timed(() => nftFile(fullText));
      bareNft.push(bare);
      bareCpu.push(cpuMs() - bareCpu0);
      await resetKernel(defaults);
      dp = new Dataplane(deps, BENCH_SETTINGS);
      const d = dp;
      spent.nft = spent.routes = spent.sysctls = 0;
      const cpu0 = cpuMs();
      const [result, ms] = await timed(async () => {
        d.onMessages(sc.snapshot);
        return d.apply();
      });
      const programmed = [...result.endpoints.values()].filter((e) => e.state === "programmed");
      if (programmed.length !== endpoints) {
        const bad = [...result.endpoints.values()].find((e) => e.state !== "programmed");
        throw new Error(
          `${programmed.length}/${endpoints} endpoints programmed; e.g. ${JSON.stringify(bad)}`,
        );
      }
      firsts.push(ms);
      firstCpu.push(cpuMs() - cpu0);
      phases.push({ ...spent });
      out(
        `round ${r + 1}/${ROUNDS}: first apply ${(ms / 1000).toFixed(2)} s (nft ${result.nft.wrote} ${(result.nft.bytes / 1e6).toFixed(1)} MB in ${(spent.nft / 1000).toFixed(2)} s, ${result.routes.changed} routes in ${(spent.routes / 1000).toFixed(2)} s, ${result.sysctlWrites} sysctl writes in ${(spent.sysctls / 1000).toFixed(2)} s); bare nft -f ${(bare / 1000).toFixed(2)} s`,
      );
    }

    // Additions on the last round's dataplane: as when a pod starts, the
    // CNI plugin's veth is there and up first, then its endpoint's messages.
    const d = dp!;
    const adds: number[] = [];
    const applies: number[] = [];
    const addCpus: number[] = [];
    const agentCpus: number[] = [];
    let rewriteCpu = 0;
    const rewrites: number[] = [];
    for (const [j, flush] of sc.additions.entries()) {
      const name = sc.interfaces[endpoints + j]!;
      await must("ip", ["link", "add", name, "type", "veth", "peer", "name", `wp${name.slice(2)}`]);
      await must("ip", ["link", "set", name, "up"]);
      await must("ip", ["link", "set", `wp${name.slice(2)}`, "up"]);
      for (let waited = 0; !links.isUp(name); waited++) {
        if (waited > 5000) throw new Error(`the link monitor never saw ${name} up`);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      const cpu0 = cpuMs();
      const own0 = process.cpuUsage();
      const start = performance.now();
      const [result, ms] = await timed(async () => {
        d.onMessages(flush);
        return d.apply();
      });
      const own = process.cpuUsage(own0);
      agentCpus.push((own.user + own.system) / 1000);
      addCpus.push(cpuMs() - cpu0);
      const committed = nftCommitted - start;
      const ep = flush.find((m) => m.type === "endpoint-update");
      const id = ep?.type === "endpoint-update" ? ep.endpoint.id : "";
      if (result.endpoints.get(id)?.state !== "programmed") {
        throw new Error(
          `added endpoint ${id} not programmed: ${JSON.stringify(result.endpoints.get(id))}`,
        );
      }
      adds.push(committed);
      applies.push(ms);
      out(
        `addition ${j + 1}/${sc.additions.length}: in the kernel after ${committed.toFixed(1)} ms, apply done after ${ms.toFixed(1)} ms (nft ${result.nft.wrote} ${result.nft.bytes} bytes, ${addCpus.at(-1)?.toFixed(0)} ms CPU, ${agentCpus.at(-1)?.toFixed(1)} ms of it this process)`,
      );
    }
    // The naive way to add the last endpoint: the whole table again (text
    // made beforehand), after the additions: the kernel frees a replaced
    // table's objects in the background, which would slow what follows.
    const text = renderFullTransaction(renderRuleset(d.desired, BENCH_SETTINGS.render));
    for (let k = 0; k < REWRITES; k++) {
      const rewriteCpu0 = cpuMs();
      const [, rewrite] = await timed(() => nftFile(text));
      rewrites.push(rewrite);
      rewriteCpu += cpuMs() - rewriteCpu0;
      out(`full rewrite ${k + 1}/${REWRITES}: ${rewrite.toFixed(0)} ms`);
    }
    // Removals, as when a pod is deleted: the endpoint's messages undone
    // (its IP set members, the endpoint, its route); the veth stays, as the
    // agent may well see the endpoint go before the plugin's DEL removes it.
    const removes: number[] = [];
    const removeCpus: number[] = [];
    for (const [j, flush] of sc.additions.slice(0, REMOVALS).entries()) {
      const undo: DataplaneMessage[] = flush.map((m) =>
        m.type === "ipset-delta"
          ? { type: "ipset-delta", id: m.id, added: m.removed, removed: m.added }
          : m.type === "endpoint-update"
            ? { type: "endpoint-remove", id: m.endpoint.id }
            : m.type === "route-update"
              ? { type: "route-remove", dst: m.route.dst }
              : m,
      );
      const cpu0 = cpuMs();
      const start = performance.now();
      const [result] = await timed(async () => {
        d.onMessages(undo);
        return d.apply();
      });
      removeCpus.push(cpuMs() - cpu0);
      removes.push(nftCommitted - start);
      out(
        `removal ${j + 1}/${REMOVALS}: in the kernel after ${removes.at(-1)?.toFixed(1)} ms (nft ${result.nft.wrote} ${result.nft.bytes} bytes, ${removeCpus.at(-1)?.toFixed(0)} ms CPU)`,
      );
    }
    const first = median(firsts) / 1000;
    const bare = median(bareNft) / 1000;
    const add = median(adds);
    const rewrite = median(rewrites);
    out(
      JSON.stringify({
        endpoints,
        policies: sc.policies,
        rules: sc.rules,
        ipsets: sc.ipsets,
        ipset_members: sc.members,
        rounds: ROUNDS,
        first_apply_s: round(first, 2),
        first_apply_cpu_s: round(median(firstCpu) / 1000, 2),
        first_apply_nft_s: round(median(phases.map((p) => p.nft)) / 1000, 2),
        first_apply_routes_s: round(median(phases.map((p) => p.routes)) / 1000, 2),
        first_apply_sysctls_s: round(median(phases.map((p) => p.sysctls)) / 1000, 2),
        baseline_nft_s: round(bare, 2),
        baseline_nft_cpu_s: round(median(bareCpu) / 1000, 2),
        first_apply_ratio_vs_bare_nft: round(first / bare, 2),
        first_apply_cpu_ratio_vs_bare_nft: round(median(firstCpu) / median(bareCpu), 2),
        endpoint_add_ms: round(add, 1),
        endpoint_add_max_ms: round(Math.max(...adds), 1),
        endpoint_apply_ms: round(median(applies), 1),
        endpoint_add_cpu_ms: round(median(addCpus), 1),
        endpoint_add_agent_cpu_ms: round(median(agentCpus), 1),
        baseline_full_rewrite_ms: round(rewrite, 0),
        endpoint_add_speedup_vs_full_rewrite: round(rewrite / add, 1),
        baseline_full_rewrite_cpu_ms: round(rewriteCpu / REWRITES, 0),
        endpoint_remove_ms: round(median(removes), 1),
        endpoint_remove_cpu_ms: round(median(removeCpus), 1),
      }),
    );
  } finally {
    stop.abort();
    await linksRunning.done;
    await runCommand("nft", ["delete", "table", "inet", "twill"]);
  }
}

// Run as the worker only when this very file is the program (the other
// benchmark imports this one's exports).
if (process.argv[2] === WORKER_FLAG && process.argv[1] === fileURLToPath(import.meta.url)) {
  worker(Number(process.argv[3])).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
