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
// host's block. Checked by polling `ip route show proto bird` in hosts not
// yet complete, so the resolution is one polling round (reported).
// Baselines in the same run: mesh10, and for mesh100 the time to write the
// same routes into every table directly (`ip -batch`, no BGP). Memory:
// VmRSS of every BIRD once converged (median, max).
//
// The machine: 2 cores, nofile hard limit 20000 (a reflector holds ~300
// sockets; a mesh host 99), ~5 MB per BIRD.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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

  async build(count: number): Promise<void> {
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
    await mapLimit(this.hosts, 8, (h) =>
      runOk("ip", ["-n", h.ns, "-batch", "-"], {
        input: `link set lo up\naddr add ${h.address} dev fab0\nlink set fab0 up\n`,
      }),
    );
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
      timeoutMs: 10_000,
    });
    return r.stdout.split("\n").filter((l) => l.startsWith("10.128.") && l.includes(" via "))
      .length;
  }

  /**
   * Polls hosts not yet complete until each has a forwarding route to every
   * other block; resolves with the time since `t0` when the last one did.
   */
  async waitFibsFull(
    t0: number,
    protocol: string,
    timeoutMs: number,
  ): Promise<{ seconds: number; rounds: number }> {
    const want = this.hosts.length - 1;
    let pending = [...this.hosts];
    let rounds = 0;
    let last = 0;
    while (pending.length > 0) {
      if (performance.now() - t0 > timeoutMs) {
        const counts = await mapLimit(pending.slice(0, 5), 5, (h) =>
          this.forwardingBlocks(h, protocol),
        );
        throw new Error(
          `${pending.length} hosts still incomplete after ${timeoutMs / 1000} s (e.g. ${pending
            .slice(0, 5)
            .map((h, i) => `${h.name}: ${counts[i]}/${want}`)
            .join(", ")})`,
        );
      }
      rounds++;
      const counts = await mapLimit(pending, 8, (h) => this.forwardingBlocks(h, protocol));
      const now = performance.now();
      const before = pending.length;
      pending = pending.filter((_, i) => (counts[i] ?? 0) < want);
      if (pending.length < before) last = now;
      if (pending.length > 0) await delay(50);
    }
    // Nothing went missing meanwhile.
    const counts = await mapLimit(this.hosts, 8, (h) => this.forwardingBlocks(h, protocol));
    const short = this.hosts.filter((_, i) => (counts[i] ?? 0) < want);
    if (short.length > 0) throw new Error(`${short.length} hosts lost routes after converging`);
    return { seconds: (last - t0) / 1000, rounds };
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

interface Result {
  convergeS: number;
  rounds: number;
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
  await fx.build(s.hosts);
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
    await fx.waitFibsFull(t0, "static", 60_000); // a check, not timed: ip -batch is synchronous
    await mapLimit(fx.hosts, 8, (h) =>
      runOk("ip", ["-n", h.ns, "route", "flush", "proto", "static"]),
    );
    ctx.log(`${s.label}: static routes into every table: ${staticS.toFixed(2)} s`);
  }
  const t0 = performance.now();
  await fx.startBirds();
  const startS = (performance.now() - t0) / 1000;
  const { seconds, rounds } = await fx.waitFibsFull(t0, "bird", 300_000);
  const rss = fx.birdRssMb();
  const reflectorPids = s.reflectors;
  const rssReflector = reflectorPids > 0 ? Math.max(...rss.slice(0, reflectorPids)) : undefined;
  ctx.log(
    `${s.label}: every FIB full ${seconds.toFixed(2)} s after cold start (BIRDs started in ${startS.toFixed(2)} s, ${rounds} polling rounds); BIRD RSS median ${median(rss).toFixed(1)} MB, max ${Math.max(...rss).toFixed(1)} MB`,
  );
  const result = {
    convergeS: seconds,
    rounds,
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
      mesh_start_s: r2(mesh.startS),
      mesh_static_baseline_s: r2(mesh.staticS ?? 0),
      mesh_bird_rss_mb: r1(mesh.rssMedianMb),
      mesh_bird_rss_max_mb: r1(mesh.rssMaxMb),
      rr_hosts: rrHosts,
      rr_converge_s: r2(rr.convergeS),
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
