// Shared pieces of the BGP end-to-end tests (src/bgp-e2e/*.test.ts): every
// topology comes from the lab (labUp / labDown, src/lab); this file only
// reads kernels and BIRD, changes resources, restarts a host's agent the way
// `lab up` started it, and runs a long TCP flow between two workloads.
//
// Nothing here touches the machine's own network namespace: every command
// runs with `ip -n <lab namespace>` or inside `ip netns exec <lab namespace>`.
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { lookupKind } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { validateResource } from "../api/validate.js";
import { labDown, openLabStore, restartAgent as restartLabAgent } from "../lab/lab.js";
import type { LabInfo } from "../lab/lab.js";
import { delay, pidAlive, run } from "../lab/lab-os.js";
import { labPaths, readState } from "../lab/lab-state.js";
import type { LabPaths } from "../lab/lab-state.js";
import type { KernelRoute } from "../lab/route-coverage.js";
import type { HostPlan } from "../lab/topology.js";
import { TwillError } from "../util/errors.js";

const FLOW_MAIN = fileURLToPath(new URL("./tcp-flow-main.js", import.meta.url));

/** Why these tests cannot run here (undefined: they can). */
export function e2eUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const bin of [
    "/usr/bin/etcd",
    "/usr/sbin/bird",
    "/usr/sbin/birdc",
    "/usr/lib/frr/zebra",
    "/usr/lib/frr/bgpd",
    "/usr/bin/traceroute",
  ]) {
    if (!existsSync(bin)) return `needs ${bin}`;
  }
  return undefined;
}

/** A lab name of our own (b + 6 hex) and a temporary state root; remove() takes both down. */
export function testLab(): { name: string; root: string; remove(): Promise<void> } {
  const name = `b${randomBytes(3).toString("hex")}`;
  const root = mkdtempSync(join(tmpdir(), "twt-bgpe2e-"));
  return {
    name,
    root,
    remove: async () => {
      await labDown(name, { stateRoot: root });
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Where a running lab keeps its files (BIRD dirs, logs, state). */
export function pathsOf(lab: LabInfo): LabPaths {
  return labPaths(dirname(lab.stateDir), lab.name);
}

/** `ip -j route show [exact cidr]` in a namespace (IPv4). */
export async function kernelRoutes(ns: string, cidr?: string): Promise<KernelRoute[]> {
  const args = ["-4", "-j", "-n", ns, "route", "show", ...(cidr === undefined ? [] : [cidr])];
  const r = await run("ip", args, { timeoutMs: 5000 });
  if (r.code !== 0) throw new TwillError("Unavailable", `ip ${args.join(" ")}: ${r.stderr.trim()}`);
  return r.stdout.trim() === "" ? [] : (JSON.parse(r.stdout) as KernelRoute[]);
}

/** The next hops of a route: its gateway, or the gateways of its multipath next hops, sorted. */
export function nextHops(route: KernelRoute | undefined): string[] {
  if (route === undefined) return [];
  if (route.gateway !== undefined) return [route.gateway];
  return (route.nexthops ?? []).flatMap((n) => (n.gateway === undefined ? [] : [n.gateway])).sort();
}

/** The IPAM block a host announces for a workload: its blackhole route holding the address. */
export async function blockOf(host: HostPlan, address: string): Promise<string> {
  const routes = await kernelRoutes(host.ns);
  const octets = address.split(".").map(Number);
  const inside = (cidr: string): boolean => {
    const [net, len] = cidr.split("/");
    const n = (net ?? "").split(".").map(Number);
    const bits = Number(len);
    const value = (o: number[]) => o.reduce((acc, x) => acc * 256 + (x ?? 0), 0);
    const size = 2 ** (32 - bits);
    return Math.floor(value(octets) / size) === Math.floor(value(n) / size);
  };
  const block = routes.find((r) => r.type === "blackhole" && r.dst.includes("/") && inside(r.dst));
  if (block === undefined) {
    throw new TwillError(
      "NotFound",
      `host ${host.name} has no blackhole block route holding ${address}`,
    );
  }
  return block.dst;
}

/** A host's fabric address without its prefix length. */
export function hostAddress(host: HostPlan): string {
  return host.ipv4.split("/")[0] ?? "";
}

/** Polls `check` every intervalMs until it returns a value, or throws after timeoutMs with its last reason. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | string>,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = performance.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const result = await check();
    if (typeof result !== "string") return result;
    if (performance.now() > deadline) throw new TwillError("Timeout", `${what}: ${result}`);
    await delay(options.intervalMs ?? 100);
  }
}

// --- Resources.

/** Validates and applies resources through the lab's etcd (as `twill apply` would). */
export async function applyResources(lab: LabInfo, resources: readonly unknown[]): Promise<void> {
  const { store, close } = openLabStore(lab);
  try {
    for (const r of resources) {
      const checked = validateResource(r);
      if (!checked.ok) {
        throw new TwillError(
          "Invalid",
          `resource ${JSON.stringify(r)}: ${checked.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
        );
      }
      await store.apply(checked.resource);
    }
  } finally {
    await close();
  }
}

export async function deleteResource(lab: LabInfo, kind: string, name: string): Promise<void> {
  const info = lookupKind(kind);
  if (info === undefined) throw new TwillError("Invalid", `no kind ${kind}`);
  const { store, close } = openLabStore(lab);
  try {
    await store.delete(info, name);
  } finally {
    await close();
  }
}

export async function getResource(lab: LabInfo, kind: string, name: string): Promise<Resource> {
  const info = lookupKind(kind);
  if (info === undefined) throw new TwillError("Invalid", `no kind ${kind}`);
  const { store, close } = openLabStore(lab);
  try {
    return await store.get(info, name);
  } finally {
    await close();
  }
}

export function globalPolicy(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name },
    spec,
  };
}

// --- BIRD and agents.

export interface BirdPeer {
  name: string;
  neighbor: string | undefined;
  established: boolean;
}

/** BGP protocols of a host's BIRD with their neighbor address (`birdc show protocols all`). */
export async function birdPeers(paths: LabPaths, host: HostPlan): Promise<BirdPeer[]> {
  const r = await run(
    "birdc",
    ["-s", `${paths.bird(host.name)}/bird.ctl`, "show", "protocols", "all"],
    {
      timeoutMs: 5000,
    },
  );
  if (r.code !== 0)
    throw new TwillError("Unavailable", `birdc on ${host.name}: ${r.stdout}${r.stderr}`);
  const peers: BirdPeer[] = [];
  let current: BirdPeer | undefined;
  for (const line of r.stdout.split("\n")) {
    const head = /^(\S+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s*(.*)$/.exec(line);
    if (head && !line.startsWith(" ")) {
      current = undefined;
      if (head[2] === "BGP") {
        current = {
          name: head[1] ?? "",
          neighbor: undefined,
          established: /^Established/.test(head[3] ?? ""),
        };
        peers.push(current);
      }
      continue;
    }
    const neighbor = /^\s+Neighbor address:\s+(\S+)/.exec(line);
    if (current && neighbor) current.neighbor = neighbor[1];
  }
  return peers;
}

/** The pid in a host's BIRD pid file, while that BIRD runs. */
export function birdPid(paths: LabPaths, host: HostPlan): number | undefined {
  let text: string;
  try {
    text = readFileSync(`${paths.bird(host.name)}/bird.pid`, "utf8");
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  return Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid) ? pid : undefined;
}

/** Until every BGP session of the host's BIRD is established. */
export async function waitSessionsUp(
  paths: LabPaths,
  host: HostPlan,
  timeoutMs = 30_000,
): Promise<BirdPeer[]> {
  return waitFor(
    `BGP sessions of ${host.name} established`,
    async () => {
      const peers = await birdPeers(paths, host).catch((err: Error) => err.message);
      if (typeof peers === "string") return peers;
      const down = peers.filter((p) => !p.established);
      if (peers.length === 0) return "no BGP protocol";
      return down.length === 0 ? peers : `not established: ${down.map((p) => p.name).join(", ")}`;
    },
    { timeoutMs },
  );
}

/** The pid of a host's agent, as the lab recorded it. */
export function agentPid(paths: LabPaths, host: HostPlan): number | undefined {
  return readState(paths)?.processes.find((p) => p.name === `agent ${host.name}`)?.pid;
}

/**
 * Restarts a host's agent the way `lab up` started it (the lab's
 * restartAgent: SIGTERM, the same arguments, the state file updated);
 * resolves once it answers /readyz. Returns the new pid.
 */
export async function restartAgent(lab: LabInfo, host: HostPlan): Promise<number> {
  return restartLabAgent(lab.name, host.name, {
    stateRoot: dirname(lab.stateDir),
    timeoutMs: 30_000,
  });
}

// --- Watching a route.

export interface RouteWatchReport {
  /** Polls made (one `ip route show exact` each). */
  polls: number;
  /** Polls that found no forwarding route with the expected next hop, with their offset in ms. */
  missing: { atMs: number; seen: string }[];
  /** `ip monitor route` lines that deleted the prefix (catches what falls between two polls). */
  deleted: string[];
}

/**
 * Watches one prefix in one namespace: polls the kernel table every
 * intervalMs and also follows `ip monitor route`, until stop().
 */
export function watchRoute(
  ns: string,
  cidr: string,
  via: string,
  intervalMs = 50,
): { stop(): Promise<RouteWatchReport> } {
  const started = performance.now();
  const report: RouteWatchReport = { polls: 0, missing: [], deleted: [] };
  const monitor = spawn("ip", ["-n", ns, "monitor", "route"], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  createInterface({ input: monitor.stdout }).on("line", (line) => {
    if (line.startsWith("Deleted ") && `${line} `.includes(` ${cidr} `)) {
      report.deleted.push(line);
    }
  });
  let running = true;
  const loop = (async () => {
    // A steady cadence: each poll starts intervalMs after the previous one
    // started (or at once, when that one took longer).
    let due = performance.now();
    while (running) {
      await delay(Math.max(0, due - performance.now()));
      due = Math.max(due + intervalMs, performance.now());
      const routes = await kernelRoutes(ns, cidr).catch(() => []);
      report.polls++;
      const hops = routes.flatMap((r) =>
        r.type === undefined || r.type === "unicast" ? nextHops(r) : [],
      );
      if (!hops.includes(via)) {
        report.missing.push({
          atMs: Math.round(performance.now() - started),
          seen: JSON.stringify(routes),
        });
      }
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      monitor.kill("SIGTERM");
      return report;
    },
  };
}

// --- A long TCP flow between two workloads.

export interface FlowStat {
  side: "client" | "server";
  sent?: number;
  echoed?: number;
  received?: number;
  maxGapMs?: number;
  error: string | null;
}

class LineProcess {
  readonly child: ChildProcess;
  #lines: string[] = [];
  #waiters: ((line: string | undefined) => void)[] = [];
  #closed = false;
  stderr = "";

  constructor(ns: string, args: readonly string[]) {
    this.child = spawn("ip", ["netns", "exec", ns, process.execPath, FLOW_MAIN, ...args], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    this.child.stderr?.on("data", (d: Buffer) => (this.stderr += d.toString("utf8")));
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      const waiter = this.#waiters.shift();
      if (waiter) waiter(line);
      else this.#lines.push(line);
    });
    this.child.on("close", () => {
      this.#closed = true;
      for (const w of this.#waiters.splice(0)) w(undefined);
    });
    this.child.stdin?.on("error", () => undefined);
  }

  /** The next line of output (undefined once the process ended), waiting at most timeoutMs. */
  next(timeoutMs = 10_000): Promise<string | undefined> {
    const line = this.#lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(
          new TwillError(
            "Timeout",
            `no output from the flow process after ${timeoutMs} ms: ${this.stderr}`,
          ),
        );
      }, timeoutMs);
      const waiter = (l: string | undefined) => {
        clearTimeout(timer);
        resolve(l);
      };
      this.#waiters.push(waiter);
    });
  }

  send(line: string): void {
    this.child.stdin?.write(`${line}
`);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGKILL");
  }
}

export interface TcpFlow {
  /** The client's counters now. */
  stat(): Promise<FlowStat>;
  /** Stops sending, waits for every echo, closes: both ends' final counters. */
  stop(): Promise<{ client: FlowStat; server: FlowStat }>;
  /** Kills both ends (clean-up after a failure). */
  kill(): void;
}

/** Starts a TCP flow from `clientNs` to `address`:`port` served in `serverNs`; resolves once connected. */
export async function startTcpFlow(
  serverNs: string,
  clientNs: string,
  address: string,
  port: number,
): Promise<TcpFlow> {
  const server = new LineProcess(serverNs, ["server", String(port)]);
  const ready = await server.next();
  if (ready !== "ready") {
    server.kill();
    throw new TwillError("Unavailable", `flow server in ${serverNs}: ${ready ?? server.stderr}`);
  }
  const client = new LineProcess(clientNs, ["client", address, String(port)]);
  const connected = await client.next();
  if (connected !== "connected") {
    client.kill();
    server.kill();
    throw new TwillError(
      "Unavailable",
      `flow client in ${clientNs}: ${connected ?? client.stderr}`,
    );
  }
  const parse = (line: string | undefined, who: string): FlowStat => {
    if (line === undefined)
      throw new TwillError("Unavailable", `flow ${who} ended without a report`);
    return JSON.parse(line) as FlowStat;
  };
  return {
    stat: async () => {
      client.send("stat");
      return parse(await client.next(), "client");
    },
    stop: async () => {
      client.send("stop");
      const c = parse(await client.next(15_000), "client");
      const s = parse(await server.next(15_000), "server");
      return { client: c, server: s };
    },
    kill: () => {
      client.kill();
      server.kill();
    },
  };
}

/** `traceroute -n` from a namespace: the address of each hop ("*" when none answered). */
export async function traceroute(ns: string, address: string): Promise<string[]> {
  const r = await run(
    "ip",
    ["netns", "exec", ns, "traceroute", "-n", "-q", "1", "-w", "1", "-m", "8", address],
    {
      timeoutMs: 30_000,
    },
  );
  if (r.code !== 0)
    throw new TwillError("Unavailable", `traceroute from ${ns}: ${r.stderr.trim()}`);
  return r.stdout
    .split("\n")
    .slice(1)
    .map((line) => /^\s*\d+\s+(\S+)/.exec(line)?.[1])
    .filter((hop): hop is string => hop !== undefined);
}
