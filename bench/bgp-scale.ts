// bgp-scale: BIRD at cluster scale with the configuration the agent
// renders. Each host is a network namespace running BIRD 2 with the text
// buildBgpModel + renderBird produce for it from synthetic Nodes, one IPAM
// block per host, and the cluster's BGP resources; no agents, no etcd. All
// hosts sit on one L2 segment (a bridge in a namespace of its own).
//
//   twt-bs<id>-br   br0 ── h1 … hN (veth)        10.200.0.0/16
//   twt-bs<id>-hI   fab0 10.200.x.y/16, BIRD: block 10.128.x.y/26 (blackhole), sessions
//
// Scenarios, one after the other, each torn down before the next:
//   mesh10    10 hosts, full mesh (baseline)
//   mesh100   100 hosts, full mesh (4,950 sessions)
//   rr300     300 hosts, mesh off, h1 and h2 route reflectors (cluster
//             244.0.0.1), every host peering with both (BGPPeer
//             nodeSelector all(), peerSelector route-reflector == 'true')
//
// Timed from cold start (the first BIRD started; all are started together)
// until every host's kernel table holds a forwarding route to every other
// host's block: `ip monitor route` in every host (started before BIRD)
// notes when each table fills, and `ip route show` checks every table once
// at the end. Cold start includes starting the BIRDs (their spawn time is
// reported too: ~40 ms each on this machine, 16 at a time).
// Baselines in the same run: mesh10, and for mesh100 the time to write the
// same routes into every table directly (`ip -batch`, no BGP). Memory:
// VmRSS of every BIRD once converged (median, max).
//
// The machine: 2 cores, nofile hard limit 20000 (a reflector holds ~300
// sockets; a mesh host 99), ~5 MB per BIRD.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { BGPConfiguration } from "../src/api/schemas/bgp-configuration.js";
import type { BGPPeer } from "../src/api/schemas/bgp-peer.js";
import type { Node } from "../src/api/schemas/node.js";
import { birdPaths } from "../src/bgp/bgp-inputs.js";
import type { BgpInputs } from "../src/bgp/bgp-inputs.js";
import { buildBgpModel } from "../src/bgp/bgp-model.js";
import { renderBird } from "../src/bgp/render-bird.js";
import { bgpConfig, node, peer, pool } from "../src/bgp/testdata/bgp-fixtures.js";
import { delay, listNetns, mapLimit, run as runCommand, runOk } from "../src/lab/lab-os.js";
import { median } from "./cni-node.js";
import type { BenchContext, BenchFigures } from "./run.js";

const POOL = "10.128.0.0/16";

interface Host {
  index: number;
  name: string;
  ns: string;
  /** Fabric address with prefix length. */
  address: string;
  block: string;
  dir: string;
}

interface Scenario {
  label: string;
  hosts: number;
  reflectors: number;
}

function hostAddress(i: number): string {
  return `10.200.${Math.floor(i / 250)}.${(i % 250) + 1}/16`;
}

function hostMac(i: number): string {
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  return `02:00:00:00:${hex(Math.floor(i / 256))}:${hex(i % 256)}`;
}

/** Who host i has sessions with: everyone in a mesh; the reflectors, or (a reflector) everyone. */
function sessionPeers(s: Scenario, i: number): number[] {
  const all = Array.from({ length: s.hosts }, (_, j) => j).filter((j) => j !== i);
  if (s.reflectors === 0 || i < s.reflectors) return all;
  return all.filter((j) => j < s.reflectors);
}

function hostBlock(i: number): string {
  return `10.128.${Math.floor(i / 4)}.${(i % 4) * 64}/26`;
}

/** The Nodes, BGPConfiguration and BGPPeers of a scenario, as the datastore would hold them. */
function clusterResources(s: Scenario): {
  nodes: Node[];
  configs: BGPConfiguration[];
  peers: BGPPeer[];
} {
  const nodes = Array.from({ length: s.hosts }, (_, i) => {
    const rr = i < s.reflectors;
    return node(`h${i + 1}`, {
      v4: hostAddress(i),
      ...(rr ? { clusterId: "244.0.0.1", labels: { "route-reflector": "true" } } : {}),
    });
  });
  if (s.reflectors === 0) return { nodes, configs: [], peers: [] };
  return {
    nodes,
    configs: [bgpConfig("default", { nodeToNodeMeshEnabled: false })],
    peers: [
      peer("to-reflectors", { nodeSelector: "all()", peerSelector: "route-reflector == 'true'" }),
    ],
  };
}

class Fixture {
  readonly id = randomBytes(3).toString("hex");
  readonly prefix = `twt-bs${this.id}-`;
  readonly dir = mkdtempSync(join(tmpdir(), "twt-bgp-scale-"));
  readonly bridgeNs = `${this.prefix}br`;
  hosts: Host[] = [];

  /**
   * Namespaces, links and addresses; `peersOf(i)` lists the hosts host i
   * has BGP sessions with, whose MACs it gets as permanent neighbor
   * entries. Why: the kernel's ARP table is one for all namespaces, and its
   * limit (net.ipv4.neigh.default.gc_thresh3, 1024 by default) can only be
   * raised in the machine's own namespace, which the bench leaves alone; a
   * 100-host mesh needs 9,900 entries. Permanent entries do not count
   * against that limit. Next hops of routes need no entry to be installed.
   */
  async build(count: number, peersOf: (i: number) => number[]): Promise<void> {
    this.hosts = Array.from({ length: count }, (_, i) => ({
      index: i,
      name: `h${i + 1}`,
      ns: `${this.prefix}h${i + 1}`,
      address: hostAddress(i),
      block: hostBlock(i),
      dir: join(this.dir, `h${i + 1}`),
    }));
    const names = [this.bridgeNs, ...this.hosts.map((h) => h.ns)];
    await runOk("ip", ["-batch", "-"], { input: names.map((n) => `netns add ${n}\n`).join("") });
    const bridge = ["link add br0 type bridge", "link set br0 up", "link set lo up"];
    for (const h of this.hosts) {
      bridge.push(
        `link add ${h.name} type veth peer name fab0 netns ${h.ns}`,
        `link set ${h.name} master br0`,
        `link set ${h.name} up`,
      );
    }
    await runOk("ip", ["-n", this.bridgeNs, "-batch", "-"], { input: `${bridge.join("\n")}\n` });
    await mapLimit(this.hosts, 8, (h) => {
      const lines = [
        "link set lo up",
        `link set fab0 address ${hostMac(h.index)}`,
        `addr add ${h.address} dev fab0`,
        "link set fab0 up",
        ...peersOf(h.index).map(
          (j) =>
            `neigh replace ${hostAddress(j).split("/")[0] ?? ""} lladdr ${hostMac(j)} dev fab0 nud permanent`,
        ),
      ];
      return runOk("ip", ["-n", h.ns, "-batch", "-"], { input: `${lines.join("\n")}\n` });
    });
  }

  /** Writes each host's BIRD configuration as the agent would render it. */
  writeConfigs(s: Scenario): void {
    const { nodes, configs, peers } = clusterResources(s);
    const ipPools = [pool("bench", POOL)];
    for (const h of this.hosts) {
      const inputs: BgpInputs = {
        nodeName: h.name,
        nodes,
        bgpConfigurations: configs,
        bgpPeers: peers,
        ipPools,
        ownBlocks: [h.block],
        localWorkloadAddresses: [],
      };
      const paths = birdPaths(h.dir);
      mkdirSync(h.dir, { recursive: true });
      writeFileSync(paths.config, renderBird(buildBgpModel(inputs), paths));
    }
  }

  async startBirds(): Promise<void> {
    await mapLimit(this.hosts, 16, async (h) => {
      const p = birdPaths(h.dir);
      const r = await runCommand("ip", [
        "netns",
        "exec",
        h.ns,
        "bird",
        "-c",
        p.config,
        "-s",
        p.socket,
        "-P",
        p.pidFile,
      ]);
      if (r.code !== 0) throw new Error(`bird in ${h.ns} did not start: ${r.stderr}`);
    });
  }

  birdPids(): number[] {
    return this.hosts.flatMap((h) => {
      try {
        const pid = Number(readFileSync(birdPaths(h.dir).pidFile, "utf8").trim());
        return Number.isSafeInteger(pid) && pid > 0 ? [pid] : [];
      } catch {
        return [];
      }
    });
  }

  /** VmRSS of each running BIRD, in MB. */
  birdRssMb(): number[] {
    return this.birdPids().flatMap((pid) => {
      try {
        const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
        return kb === undefined ? [] : [Number(kb) / 1024];
      } catch {
        return [];
      }
    });
  }

  /** Routes with a next hop into another host's block, in a host's kernel table. */
  async forwardingBlocks(h: Host, protocol: string): Promise<number> {
    const r = await runCommand("ip", ["-4", "-n", h.ns, "route", "show", "proto", protocol], {
      timeoutMs: 30_000,
    });
    if (r.code !== 0) return -1;
    return r.stdout.split("\n").filter((l) => l.startsWith("10.128.") && l.includes(" via "))
      .length;
  }

  /**
   * Follows every host's kernel table (`ip monitor route`, one per host,
   * started before BIRD) and notes when each first holds a forwarding route
   * to every other block. Event-driven, so the times are exact to a few ms.
   */
  watchFibs(): FibWatch {
    const want = this.hosts.length - 1;
    const doneAt = new Map<string, number>();
    const children: ChildProcess[] = [];
    for (const h of this.hosts) {
      const have = new Set<string>();
      const child = spawn("ip", ["-n", h.ns, "monitor", "route"], {
        stdio: ["ignore", "pipe", "ignore"],
      });
      children.push(child);
      createInterface({ input: child.stdout }).on("line", (line) => {
        const deleted = line.startsWith("Deleted ");
        const text = deleted ? line.slice(8) : line;
        if (!text.startsWith("10.128.") || !text.includes(" via ")) return;
        const dst = text.split(" ")[0] ?? "";
        if (deleted) have.delete(dst);
        else have.add(dst);
        if (have.size >= want && !doneAt.has(h.name)) doneAt.set(h.name, performance.now());
      });
    }
    return {
      ready: () => delay(500),
      doneAt,
      stop: () => {
        for (const c of children) c.kill("SIGTERM");
      },
    };
  }

  /**
   * Until every host's table is full (by `watch`), then checks every table
   * once more by `ip route show`; the time since t0 when the last one
   * filled, and the median host's.
   */
  async waitFibsFull(
    watch: FibWatch,
    t0: number,
    timeoutMs: number,
  ): Promise<{ seconds: number; medianHostS: number }> {
    const want = this.hosts.length - 1;
    while (watch.doneAt.size < this.hosts.length) {
      if (performance.now() - t0 > timeoutMs) {
        const pending = this.hosts.filter((h) => !watch.doneAt.has(h.name)).slice(0, 5);
        const counts = await mapLimit(pending, 5, (h) => this.forwardingBlocks(h, "bird"));
        throw new Error(
          `${this.hosts.length - watch.doneAt.size} hosts still incomplete after ${timeoutMs / 1000} s (e.g. ${pending
            .map((h, i) => `${h.name}: ${counts[i]}/${want}`)
            .join(", ")})`,
        );
      }
      await delay(50);
    }
    await this.checkFibs("bird");
    const times = [...watch.doneAt.values()].map((t) => (t - t0) / 1000);
    return { seconds: Math.max(...times), medianHostS: median(times) };
  }

  /**
   * Throws unless every host has a forwarding route of `protocol` to every
   * other block. A host found short is looked at again a few times (on a
   * loaded machine a read can be cut short) before that counts.
   */
  async checkFibs(protocol: string): Promise<void> {
    const want = this.hosts.length - 1;
    let short = this.hosts;
    for (let attempt = 0; attempt < 10 && short.length > 0; attempt++) {
      if (attempt > 0) await delay(500);
      const counts = await mapLimit(short, 8, (h) => this.forwardingBlocks(h, protocol));
      short = short.filter((_, i) => (counts[i] ?? 0) < want);
    }
    if (short.length > 0) {
      const count = await this.forwardingBlocks(short[0]!, protocol);
      throw new Error(
        `${short.length} hosts lack routes (${protocol}), e.g. ${short[0]?.name}: ${count}/${want}`,
      );
    }
  }

  async teardown(): Promise<void> {
    for (const pid of this.birdPids()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
    const ours = (await listNetns()).filter((n) => n.startsWith(this.prefix));
    if (ours.length > 0) {
      await runCommand("ip", ["-force", "-batch", "-"], {
        input: ours.map((n) => `netns del ${n}\n`).join(""),
      });
    }
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true });
    this.hosts = [];
  }

  async remove(): Promise<void> {
    await this.teardown();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

interface FibWatch {
  /** Resolves once the monitors have had time to subscribe. */
  ready(): Promise<void>;
  /** Host name → when its table first held every other block. */
  doneAt: Map<string, number>;
  stop(): void;
}

interface Result {
  convergeS: number;
  medianHostS: number;
  startS: number;
  rssMedianMb: number;
  rssMaxMb: number;
  rssReflectorMb: number | undefined;
}

async function runScenario(
  ctx: BenchContext,
  fx: Fixture,
  s: Scenario,
  staticBaseline: boolean,
): Promise<Result & { staticS?: number }> {
  const tBuild = performance.now();
  await fx.build(s.hosts, (i) => sessionPeers(s, i));
  fx.writeConfigs(s);
  ctx.log(
    `${s.label}: ${s.hosts} namespaces and configurations in ${((performance.now() - tBuild) / 1000).toFixed(1)} s`,
  );
  let staticS: number | undefined;
  if (staticBaseline) {
    // The same routes written straight into every table, no BGP: the floor.
    const t0 = performance.now();
    await mapLimit(fx.hosts, 8, (h) => {
      const gateway = (i: number) => hostAddress(i).split("/")[0] ?? "";
      const lines = fx.hosts
        .filter((o) => o !== h)
        .map((o) => `route add ${o.block} via ${gateway(o.index)} dev fab0 proto static\n`);
      return runOk("ip", ["-n", h.ns, "-batch", "-"], { input: lines.join("") });
    });
    staticS = (performance.now() - t0) / 1000;
    await fx.checkFibs("static"); // not timed: ip -batch is synchronous
    await mapLimit(fx.hosts, 8, (h) =>
      runOk("ip", ["-n", h.ns, "route", "flush", "proto", "static"]),
    );
    ctx.log(`${s.label}: static routes into every table: ${staticS.toFixed(2)} s`);
  }
  const watch = fx.watchFibs();
  await watch.ready();
  const t0 = performance.now();
  let converged: { seconds: number; medianHostS: number };
  let startS: number;
  try {
    await fx.startBirds();
    startS = (performance.now() - t0) / 1000;
    converged = await fx.waitFibsFull(watch, t0, 120_000);
  } finally {
    watch.stop();
  }
  const { seconds, medianHostS } = converged;
  const rss = fx.birdRssMb();
  const reflectorPids = s.reflectors;
  const rssReflector = reflectorPids > 0 ? Math.max(...rss.slice(0, reflectorPids)) : undefined;
  ctx.log(
    `${s.label}: every FIB full ${seconds.toFixed(2)} s after cold start (median host ${medianHostS.toFixed(2)} s; starting every BIRD took ${startS.toFixed(2)} s); BIRD RSS median ${median(rss).toFixed(1)} MB, max ${Math.max(...rss).toFixed(1)} MB`,
  );
  const result = {
    convergeS: seconds,
    medianHostS,
    startS,
    rssMedianMb: median(rss),
    rssMaxMb: Math.max(...rss),
    rssReflectorMb: rssReflector,
    ...(staticS !== undefined ? { staticS } : {}),
  };
  await fx.teardown();
  return result;
}

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  if (process.getuid?.() !== 0) throw new Error("bgp-scale needs root (network namespaces)");
  const meshHosts = Number(process.env["BGP_SCALE_MESH"] ?? 100);
  const rrHosts = Number(process.env["BGP_SCALE_RR"] ?? 300);
  const fx = new Fixture();
  const r1 = (x: number) => Number(x.toFixed(1));
  const r2 = (x: number) => Number(x.toFixed(2));
  try {
    const base = await runScenario(ctx, fx, { label: "mesh10", hosts: 10, reflectors: 0 }, false);
    const mesh = await runScenario(
      ctx,
      fx,
      { label: `mesh${meshHosts}`, hosts: meshHosts, reflectors: 0 },
      true,
    );
    const rr = await runScenario(
      ctx,
      fx,
      { label: `rr${rrHosts}`, hosts: rrHosts, reflectors: 2 },
      false,
    );
    return {
      mesh_hosts: meshHosts,
      mesh_converge_s: r2(mesh.convergeS),
      mesh_converge_median_host_s: r2(mesh.medianHostS),
      mesh_start_s: r2(mesh.startS),
      mesh_static_baseline_s: r2(mesh.staticS ?? 0),
      mesh_bird_rss_mb: r1(mesh.rssMedianMb),
      mesh_bird_rss_max_mb: r1(mesh.rssMaxMb),
      rr_hosts: rrHosts,
      rr_converge_s: r2(rr.convergeS),
      rr_converge_median_host_s: r2(rr.medianHostS),
      rr_start_s: r2(rr.startS),
      rr_bird_rss_mb: r1(rr.rssMedianMb),
      rr_reflector_rss_mb: r1(rr.rssReflectorMb ?? 0),
      baseline_mesh10_converge_s: r2(base.convergeS),
      baseline_mesh10_bird_rss_mb: r1(base.rssMedianMb),
      mesh_ratio_vs_mesh10: r1(mesh.convergeS / base.convergeS),
      rss_ratio_vs_mesh10: r2(mesh.rssMedianMb / base.rssMedianMb),
    };
  } finally {
    await fx.remove();
  }
}
