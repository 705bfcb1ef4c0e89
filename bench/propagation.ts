// propagation: how long after a workload is created on host A can a
// workload on host B open a TCP connection to it, under policy that allows
// it. Timed from the start of the CNI ADD on A (the real plugin, as a
// runtime runs it, with the policy wait on) to the first completed TCP
// handshake from B's workload, which retries every few ms from the moment
// the ADD returned the address.
//
//   lab flat, 2 hosts, full mesh, FRR fabric router, agents + BIRD (src/lab)
//   h1: new workload pN (bench=server)      h2: client (bench=client)
//   h1: a local client too (bench=client)   policy: clients may reach servers
//                                           on TCP 8080, nothing else
//
// For B to connect, three things must have reached B: the route to A's
// block (BGP, only when the ADD claimed a new block), the new address in the
// IP set behind B's egress rule (etcd watch → B's agent → nftables) and,
// on A, the new endpoint's own policy (the ADD's policy wait covers that).
//
// Baseline in the same run: the same ADD and the same connect loop from a
// client on host A itself (no BGP, no second agent).
//
// Two series: 50 workloads from the lab's default pool (/26 blocks, so only
// the first ADD claims a block and needs a new BGP announcement), then 20
// from a pool with /30 blocks (a new block every few ADDs), so that the
// new-block path has samples of its own. Figures over the 50: median_ms,
// p99_ms (targets 100 and 250); the new-block ADDs of both series separately.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { applyResources, globalPolicy, kernelRoutes } from "../src/bgp-e2e/e2e-kit.js";
import { CNI_MAIN, labAddWorkload, labDown, labUp } from "../src/lab/lab.js";
import { run as runCommand, runOk } from "../src/lab/lab-os.js";
import { etcdEndpointsFlag } from "../src/lab/lab-resources.js";
import { POOL_V4 } from "../src/lab/topology.js";
import type { HostPlan } from "../src/lab/topology.js";
import { startResponder } from "../src/netcheck/netcheck.js";
import { median, percentile } from "./cni-node.js";
import type { BenchContext, BenchFigures } from "./run.js";

const REACH_MAIN = fileURLToPath(new URL("../src/bgp-e2e/reach-main.js", import.meta.url));
const MAIN_SERIES = Number(process.env["PROPAGATION_COUNT"] ?? 50);
const SMALL_BLOCK_SERIES = Number(process.env["PROPAGATION_SMALL_BLOCKS"] ?? 20);
const PORT = 8080;
/** A workload not reached by then counts as unreached (and is reported as such). */
const REACH_TIMEOUT_MS = 5000;
const SMALL_POOL = { name: "bench-small-blocks", cidr: "10.66.0.0/16", blockSize: 30 };

/** A reach-main.js process in a workload namespace: reach(addr) resolves at the first handshake. */
class Reacher {
  readonly #child: ChildProcess;
  readonly #pending = new Map<string, (at: number) => void>();

  constructor(ns: string) {
    this.#child = spawn("ip", ["netns", "exec", ns, process.execPath, REACH_MAIN], {
      stdio: ["pipe", "pipe", "inherit"],
    });
    createInterface({ input: this.#child.stdout! }).on("line", (line) => {
      const at = performance.now();
      const addr = /^ok (\S+)/.exec(line)?.[1];
      const done = addr === undefined ? undefined : this.#pending.get(addr);
      if (addr !== undefined && done) {
        this.#pending.delete(addr);
        done(at);
      }
    });
  }

  /** When the first handshake completed; undefined when none did within timeoutMs. */
  reach(addr: string, timeoutMs = REACH_TIMEOUT_MS): Promise<number | undefined> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(addr);
        resolve(undefined);
      }, timeoutMs);
      this.#pending.set(addr, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
      this.#child.stdin?.write(`${addr} ${PORT}\n`);
    });
  }

  close(): void {
    this.#child.stdin?.end();
  }
}

/** Route lines of `ip monitor route` in a namespace, with their arrival time. */
function monitorRoutes(ns: string): { lines: { at: number; line: string }[]; stop(): void } {
  const lines: { at: number; line: string }[] = [];
  const child = spawn("ip", ["-n", ns, "monitor", "route"], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  createInterface({ input: child.stdout }).on("line", (line) =>
    lines.push({ at: performance.now(), line }),
  );
  return { lines, stop: () => child.kill("SIGTERM") };
}

async function blackholes(host: HostPlan): Promise<Set<string>> {
  return new Set(
    (await kernelRoutes(host.ns)).filter((r) => r.type === "blackhole").map((r) => r.dst),
  );
}

function contains(cidr: string, address: string): boolean {
  const [net, len] = cidr.split("/");
  const value = (a: string) => a.split(".").reduce((acc, x) => acc * 256 + Number(x), 0);
  const size = 2 ** (32 - Number(len));
  return Math.floor(value(net ?? "") / size) === Math.floor(value(address) / size);
}

interface Sample {
  series: "default" | "small-blocks";
  /** ADD start → first handshake from host B; undefined: not reached within REACH_TIMEOUT_MS. */
  remoteMs: number | undefined;
  /** ADD start → first handshake from host A (baseline). */
  localMs: number | undefined;
  addMs: number;
  /** ADD's end → first handshake from host B: what is left once A is done. */
  afterAddMs: number | undefined;
  newBlock: boolean;
  /** ADD start → the block's route in host B's kernel (new blocks only). */
  routeAtBMs?: number;
}

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  if (process.getuid?.() !== 0) throw new Error("propagation needs root (network namespaces)");
  const name = `bp${randomBytes(3).toString("hex")}`;
  const root = mkdtempSync(join(tmpdir(), "twt-propagation-"));
  const reachers: Reacher[] = [];
  let monitor: ReturnType<typeof monitorRoutes> | undefined;
  try {
    const lab = await labUp(
      { name, topology: "flat", hosts: 2, workloadsPerHost: 0 },
      { stateRoot: root, timeoutMs: 60_000 },
    );
    const [hostA, hostB] = lab.plan.hosts;
    if (!hostA || !hostB) throw new Error("the lab has fewer than two hosts");
    ctx.log(
      `lab ${name} up in ${(lab.elapsedMs / 1000).toFixed(1)} s: ${hostA.name} (A), ${hostB.name} (B), fab1`,
    );
    await applyResources(lab, [
      globalPolicy("bench-server", {
        selector: "bench == 'server'",
        types: ["Ingress", "Egress"],
        ingress: [
          {
            action: "Allow",
            protocol: "TCP",
            source: { selector: "bench == 'client'" },
            destination: { ports: [PORT] },
          },
        ],
        egress: [],
      }),
      globalPolicy("bench-client", {
        selector: "bench == 'client'",
        types: ["Ingress", "Egress"],
        ingress: [],
        egress: [
          {
            action: "Allow",
            protocol: "TCP",
            destination: { selector: "bench == 'server'", ports: [PORT] },
          },
        ],
      }),
    ]);
    const remote = await labAddWorkload(name, hostB.name, {
      stateRoot: root,
      labels: { bench: "client" },
    });
    const remoteReacher = new Reacher(remote.ns);
    reachers.push(remoteReacher);
    // The baseline's client on A comes after the first sample, so that the
    // first ADD on A claims A's first block, as in a real cluster.
    let localReacher: Reacher | undefined;
    monitor = monitorRoutes(hostB.ns);

    const samples: Sample[] = [];
    const measure = async (i: number, series: Sample["series"]): Promise<void> => {
      const ns = `twl-${name}-p${i}`;
      await runOk("ip", ["netns", "add", ns]);
      await runOk("ip", ["-n", ns, "link", "set", "lo", "up"]);
      // Listening before the ADD: the workload's server is up as soon as it has an address.
      const responder = await startResponder(ns, { tcpPorts: [PORT], udpPorts: [] });
      try {
        const before = await blackholes(hostA);
        const netconf = {
          cniVersion: "1.0.0",
          name: "twill-lab",
          type: "twill",
          nodename: hostA.name,
          etcd_endpoints: etcdEndpointsFlag(lab.plan),
          labels: { bench: "server" },
          ipam: {
            type: "twill-ipam",
            assign_ipv4: "true",
            assign_ipv6: "false",
            ipv4_pools: [series === "small-blocks" ? SMALL_POOL.cidr : POOL_V4.cidr],
          },
          policy: { waitForProgrammed: true, timeoutSeconds: 30 },
        };
        const t0 = performance.now();
        const add = await runCommand(
          "nsenter",
          [`--net=/var/run/netns/${hostA.ns}`, process.execPath, CNI_MAIN],
          {
            input: JSON.stringify(netconf),
            env: {
              PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
              CNI_COMMAND: "ADD",
              CNI_CONTAINERID: `${name}-p${i}`,
              CNI_NETNS: `/var/run/netns/${ns}`,
              CNI_IFNAME: "eth0",
              CNI_PATH: "/opt/cni/bin",
            },
            timeoutMs: 60_000,
          },
        );
        const tAdd = performance.now();
        if (add.code !== 0) throw new Error(`CNI ADD p${i} failed: ${add.stdout} ${add.stderr}`);
        const result = JSON.parse(add.stdout) as { ips?: { address?: string }[] };
        const address = result.ips?.[0]?.address?.split("/")[0];
        if (address === undefined)
          throw new Error(`CNI ADD p${i} returned no address: ${add.stdout}`);
        const [tRemote, tLocal] = await Promise.all([
          remoteReacher.reach(address),
          localReacher?.reach(address),
        ]);
        const block = [...(await blackholes(hostA))].find((b) => contains(b, address));
        const newBlock = block !== undefined && !before.has(block);
        const sample: Sample = {
          series,
          remoteMs: tRemote === undefined ? undefined : tRemote - t0,
          localMs: tLocal === undefined ? undefined : tLocal - t0,
          addMs: tAdd - t0,
          afterAddMs: tRemote === undefined ? undefined : tRemote - tAdd,
          newBlock,
        };
        if (newBlock && block !== undefined) {
          const seen = monitor?.lines.find(
            (l) => l.at >= t0 && !l.line.startsWith("Deleted") && l.line.startsWith(`${block} `),
          );
          if (seen) sample.routeAtBMs = seen.at - t0;
        }
        samples.push(sample);
        if (newBlock) {
          ctx.log(
            `  p${i} ${address}: new block ${block}: B reached it after ${sample.remoteMs?.toFixed(0) ?? "NEVER"} ms (ADD ${sample.addMs.toFixed(0)} ms, route at B after ${sample.routeAtBMs?.toFixed(0) ?? "?"} ms)`,
          );
        }
      } finally {
        await responder.stop();
      }
    };

    const reached = (
      list: readonly Sample[],
      key: "remoteMs" | "localMs" | "afterAddMs",
    ): number[] => list.flatMap((x) => (x[key] === undefined ? [] : [x[key]]));
    for (let i = 0; i < MAIN_SERIES; i++) {
      await measure(i, "default");
      if (localReacher === undefined) {
        const local = await labAddWorkload(name, hostA.name, {
          stateRoot: root,
          labels: { bench: "client" },
        });
        localReacher = new Reacher(local.ns);
        reachers.push(localReacher);
      }
      if ((i + 1) % 10 === 0) {
        const s = reached(samples, "remoteMs");
        ctx.log(
          `${i + 1}/${MAIN_SERIES}: median ${median(s).toFixed(0)} ms, p99 ${percentile(s, 99).toFixed(0)} ms (ADD alone: median ${median(samples.map((x) => x.addMs)).toFixed(0)} ms)`,
        );
      }
    }
    // The small-block pool only now: until here every address came from the lab's pool.
    await applyResources(lab, [
      {
        apiVersion: "projectcalico.org/v3",
        kind: "IPPool",
        metadata: { name: SMALL_POOL.name },
        spec: { cidr: SMALL_POOL.cidr, blockSize: SMALL_POOL.blockSize, nodeSelector: "all()" },
      },
    ]);
    for (let i = 0; i < SMALL_BLOCK_SERIES; i++) await measure(MAIN_SERIES + i, "small-blocks");

    const main = samples.filter((s) => s.series === "default");
    const fresh = samples.filter((s) => s.newBlock);
    const reused = samples.filter((s) => !s.newBlock);
    const ms = (list: readonly number[], fn: (l: readonly number[]) => number): number | string =>
      list.length === 0 ? "n/a" : Math.round(fn(list));
    const p = (q: number) => (l: readonly number[]) => percentile([...l], q);
    const med = (l: readonly number[]) => median([...l]);
    const max = (l: readonly number[]) => Math.max(...l);
    const remoteMain = reached(main, "remoteMs");
    const localMain = reached(main, "localMs");
    const routeAtB = fresh.flatMap((s) => (s.routeAtBMs === undefined ? [] : [s.routeAtBMs]));
    const figures: BenchFigures = {
      workloads: main.length,
      median_ms: ms(remoteMain, med),
      p90_ms: ms(remoteMain, p(90)),
      p99_ms: ms(remoteMain, p(99)),
      max_ms: ms(remoteMain, max),
      unreached: main.length - remoteMain.length,
      add_median_ms: ms(
        main.map((s) => s.addMs),
        med,
      ),
      after_add_median_ms: ms(reached(main, "afterAddMs"), med),
      after_add_p99_ms: ms(reached(main, "afterAddMs"), p(99)),
      new_blocks_in_main: main.filter((s) => s.newBlock).length,
      baseline_local_median_ms: ms(localMain, med),
      baseline_local_p99_ms: ms(localMain, p(99)),
      ratio_vs_local: Number((med(remoteMain) / med(localMain)).toFixed(2)),
      reused_block_median_ms: ms(reached(reused, "remoteMs"), med),
      small_block_workloads: samples.length - main.length,
      new_block_count: fresh.length,
      new_block_unreached: fresh.length - reached(fresh, "remoteMs").length,
      new_block_median_ms: ms(reached(fresh, "remoteMs"), med),
      new_block_max_ms: ms(reached(fresh, "remoteMs"), max),
      new_block_after_add_median_ms: ms(reached(fresh, "afterAddMs"), med),
      new_block_local_median_ms: ms(reached(fresh, "localMs"), med),
      new_block_route_at_b_median_ms: ms(routeAtB, med),
    };
    ctx.log(
      `over ${main.length}: median ${figures["median_ms"]} ms, p99 ${figures["p99_ms"]} ms, ${figures["unreached"]} unreached (local baseline median ${figures["baseline_local_median_ms"]} ms); ${fresh.length} new-block ADDs: median ${figures["new_block_median_ms"]} ms, ${figures["new_block_unreached"]} unreached within ${REACH_TIMEOUT_MS / 1000} s`,
    );
    return figures;
  } finally {
    for (const r of reachers) r.close();
    monitor?.stop();
    await labDown(name, { stateRoot: root });
    rmSync(root, { recursive: true, force: true });
  }
}
