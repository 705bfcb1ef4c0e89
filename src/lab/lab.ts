// The lab: a whole data center on one machine, in network namespaces.
// `labUp` builds it from a plan (topology.ts), `labDown` removes it (also
// after a crash), and the rest serve `twill lab status|exec|apply|
// add-workload`, tests, benchmarks and the demo (`restartAgent` restarts one
// host's agent the way `lab up` started it).
//
// labUp, step by step (each step reported through onProgress):
//
//   network    every namespace (ip -batch), then per namespace in parallel:
//              sysctls + bridges + veths (round 1), addresses/routes (round 2)
//   etcd   ─┐  etcd members in the mgmt namespace; also on a unix socket in
//            │  the state dir, the one way in from the machine (no network
//            │  link); then the lab's resources (lab-resources.ts)
//   routers ─┘  zebra + bgpd on every ToR, spine and fabric router
//   agents     `twill agent` in every host namespace (it runs BIRD), until
//              each answers /readyz on its management address
//   workloads  the real CNI plugin, run in the host's namespace as a
//              runtime would, for every workload namespace (each a pod
//              "default/<workload>" to the plugin, as the kubelet says)
//   bgp        until every BGP session is established and every host and
//              router has a route of its own to every workload
//
// The lab never links to the machine's own network namespace and installs
// no route out of itself: every `ip` command runs with `-n <lab ns>` or
// inside `ip netns exec <lab ns>`.
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { validateResource } from "../api/validate.js";
import { EtcdHttpBackend } from "../cni/etcd-http-backend.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { TwillError } from "../util/errors.js";
import { etcdEndpointsFlag, labResources } from "./lab-resources.js";
import {
  delay,
  listNetns,
  mapLimit,
  neighbourTableHint,
  netnsPids,
  pidAlive,
  pidsMentioning,
  processCmdline,
  run,
  runLogged,
  runOk,
  signal as sendSignal,
  spawnInNetns,
  unixGet,
} from "./lab-os.js";
import {
  DEFAULT_STATE_ROOT,
  STATE_VERSION,
  labPaths,
  labsOnDisk,
  readState,
  writeState,
} from "./lab-state.js";
import type { LabPaths, LabState, WorkloadRecord } from "./lab-state.js";
import { renderFrr } from "./render-frr.js";
import {
  renderConfigure,
  renderCreate,
  renderHostNft,
  renderNetnsAdd,
  renderNetnsDelete,
  sysctlArgs,
} from "./render-ip-batch.js";
import { uncovered } from "./route-coverage.js";
import type { KernelRoute } from "./route-coverage.js";
import {
  AGENT_HEALTH_PORT,
  DEFAULT_LAB_NAME,
  labOfNamespace,
  labPrefix,
  planLab,
  planWorkload,
  resolveLabOptions,
} from "./topology.js";
import type { HostPlan, LabOptions, LabPlan, RouterPlan, WorkloadPlan } from "./topology.js";

/** dist/src/bin/twill.js and dist/src/cni/main.cjs, next to this file once built. */
export const TWILL_MAIN = fileURLToPath(new URL("../bin/twill.js", import.meta.url));
export const CNI_MAIN = fileURLToPath(new URL("../cni/main.cjs", import.meta.url));
const FRR_DIR = "/usr/lib/frr";
const CNI_NETWORK = "twill-lab";
/** The Kubernetes namespace of the lab's workloads (attached as pods). */
export const LAB_POD_NAMESPACE = "default";

export interface LabProgress {
  step: string;
  state: "start" | "done";
  /** What the step built or found, on "done". */
  detail?: string;
  /** Since labUp began. */
  elapsedMs: number;
  /** How long the step took, on "done". */
  stepMs?: number;
}

export interface LabSettings {
  /** Where state dirs live (default /var/run/twill/lab). */
  stateRoot?: string;
}

export interface LabUpSettings extends LabSettings {
  signal?: AbortSignal;
  onProgress?: (p: LabProgress) => void;
  /** Leave a lab that failed half-way in place for inspection (default: remove it). */
  keepOnFailure?: boolean;
  /** Wait for BGP sessions and routes to every workload (default true). */
  waitForBgp?: boolean;
  /** Bound of each wait: agents ready, a CNI ADD, BGP converged (default 60000 ms). */
  timeoutMs?: number;
}

export interface BgpSession {
  /** The host or router holding the session. */
  speaker: string;
  /** Peer address, or BIRD's protocol name when that is all there is. */
  peer: string;
  state: string;
  established: boolean;
}

export interface LabInfo {
  name: string;
  stateDir: string;
  options: LabOptions;
  plan: LabPlan;
  /** etcd as seen inside the lab (management segment). */
  etcdEndpoints: string[];
  /** etcd's unix sockets, reachable from the machine (`unix:///...`). */
  etcdSockets: string[];
  workloads: WorkloadRecord[];
  /** Sessions at the end of labUp (when it waited for BGP). */
  sessions: BgpSession[];
  elapsedMs: number;
}

function rootOf(settings: LabSettings): string {
  return settings.stateRoot ?? DEFAULT_STATE_ROOT;
}

/** The lab's name: the one given, else the only lab there is, else "lab". */
export async function resolveLabName(
  given: string | undefined,
  settings: LabSettings = {},
): Promise<string> {
  if (given !== undefined) return given;
  const names = await listLabs(settings);
  return names.length === 1 ? (names[0] ?? DEFAULT_LAB_NAME) : DEFAULT_LAB_NAME;
}

/** Labs with a state dir or with namespaces left. */
export async function listLabs(settings: LabSettings = {}): Promise<string[]> {
  const names = new Set(labsOnDisk(rootOf(settings)));
  for (const ns of await listNetns()) {
    const lab = labOfNamespace(ns);
    if (lab !== undefined) names.add(lab);
  }
  return [...names].sort();
}

// --- labUp.

export async function labUp(
  input: Partial<LabOptions>,
  settings: LabUpSettings = {},
): Promise<LabInfo> {
  const options = resolveLabOptions(input);
  const plan = planLab(options);
  const paths = labPaths(rootOf(settings), options.name);
  const started = performance.now();
  const { signal } = settings;
  const timeoutMs = settings.timeoutMs ?? 60_000;

  const leftovers = (await listNetns()).filter((n) => n.startsWith(plan.prefix));
  if (existsSync(paths.dir) || leftovers.length > 0) {
    throw new TwillError(
      "AlreadyExists",
      `lab "${options.name}" already exists (${existsSync(paths.dir) ? paths.dir : `${leftovers.length} namespaces ${plan.prefix}*`}): run 'twill lab down --name ${options.name}' first`,
    );
  }

  const state: LabState = {
    version: STATE_VERSION,
    name: options.name,
    options,
    stateDir: paths.dir,
    createdAt: new Date().toISOString(),
    status: "building",
    processes: [],
    workloads: [],
  };
  for (const dir of [paths.dir, paths.logs, paths.etcd, paths.bin]) {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  }
  // FRR daemons run as "frr" and need to reach their dirs under ours.
  chmodSync(rootOf(settings), 0o755);
  chmodSync(paths.dir, 0o755);
  writeState(paths, state);
  writeWrappers(paths);

  const progress = (p: Omit<LabProgress, "elapsedMs">): void =>
    settings.onProgress?.({ ...p, elapsedMs: performance.now() - started });
  const step = async <T>(
    name: string,
    fn: () => Promise<{ value: T; detail: string }>,
  ): Promise<T> => {
    if (signal?.aborted) throw new TwillError("Aborted", "lab up was aborted");
    const t0 = performance.now();
    progress({ step: name, state: "start" });
    const { value, detail } = await fn();
    progress({ step: name, state: "done", detail, stepMs: performance.now() - t0 });
    return value;
  };
  let saving = Promise.resolve();
  const save = (): Promise<void> => {
    saving = saving.then(() => writeState(paths, state));
    return saving;
  };

  try {
    await step("network", async () => {
      await buildLabNetwork(plan, { dir: paths.dir });
      const links = plan.links.length;
      return {
        value: undefined,
        detail: `${plan.namespaces.length} namespaces, ${links} links, ${plan.hosts.length} hosts, ${plan.routers.length} routers`,
      };
    });
    await Promise.all([
      step("etcd", async () => {
        await startEtcd(plan, paths, state, signal);
        await save();
        const written = await writeResources(plan, paths);
        return {
          value: undefined,
          detail: `${plan.etcd.length} member${plan.etcd.length > 1 ? "s" : ""}, ${written} resources`,
        };
      }),
      step("routers", async () => {
        await mapLimit(plan.routers, 4, (r) => startRouter(r, paths, state));
        await save();
        return { value: undefined, detail: `${plan.routers.map((r) => r.name).join(", ")} (FRR)` };
      }),
    ]);
    await step("agents", async () => {
      for (const host of plan.hosts) startAgent(plan, host, paths, state);
      await save();
      await waitAgentsReady(plan, paths, state, { timeoutMs, signal });
      return { value: undefined, detail: `${plan.hosts.length} ready` };
    });
    await step("workloads", async () => {
      await mapLimit(plan.workloads, 4, async (w) => {
        const record = await addWorkloadTo(plan, paths, w, { timeoutMs, signal });
        state.workloads.push(record);
        await save();
      });
      state.workloads.sort(
        (a, b) => workloadOrder(a.name) - workloadOrder(b.name) || a.name.localeCompare(b.name),
      );
      return {
        value: undefined,
        detail: `${state.workloads.length} attached through the CNI plugin`,
      };
    });
    let sessions: BgpSession[] = [];
    if (settings.waitForBgp ?? true) {
      sessions = await step("bgp", async () => {
        const s = await waitConverged(plan, paths, state.workloads, { timeoutMs, signal });
        return {
          value: s,
          detail: `${s.filter((x) => x.established).length} sessions established, routes to every workload everywhere`,
        };
      });
    }
    state.status = "up";
    await save();
    return { ...labInfoOf(plan, paths, state), sessions, elapsedMs: performance.now() - started };
  } catch (err) {
    state.status = "failed";
    await save().catch(() => undefined);
    if (!settings.keepOnFailure) await labDown(options.name, settings).catch(() => undefined);
    throw err;
  }
}

function workloadOrder(name: string): number {
  const m = /^h(\d+)w(\d+)$/.exec(name);
  return m ? Number(m[1]) * 10_000 + Number(m[2]) : 0;
}

function labInfoOf(plan: LabPlan, paths: LabPaths, state: LabState): LabInfo {
  return {
    name: plan.options.name,
    stateDir: paths.dir,
    options: plan.options,
    plan,
    etcdEndpoints: plan.etcdEndpoints,
    etcdSockets: plan.etcd.map((m) => `unix://${paths.etcdSocket(m.name)}`),
    workloads: state.workloads,
    sessions: [],
    elapsedMs: 0,
  };
}

/** Wrappers so `twill lab exec <host> -- twill ...` finds twill. */
function writeWrappers(paths: LabPaths): void {
  const sh = (target: string): string =>
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(target)} "$@"\n`;
  writeFileSync(`${paths.bin}/twill`, sh(TWILL_MAIN), { mode: 0o755 });
}

/**
 * The lab's network alone (labUp's first step): every namespace of the
 * plan (workloads' included, with `lo` up), bridges, veths, addresses and
 * routes; with `hostNft` (default true) each host's `inet twill_lab` table.
 * No daemon. Benchmarks use it to build the same fabric without twill.
 */
export async function buildLabNetwork(
  plan: LabPlan,
  options: { dir: string; hostNft?: boolean },
): Promise<void> {
  const names = [...plan.namespaces.map((n) => n.name), ...plan.workloads.map((w) => w.ns)];
  await runOk("ip", ["-batch", "-"], { input: renderNetnsAdd(names) });
  const hostNft = options.hostNft ?? true;
  const nftFile = `${options.dir}/host.nft`;
  if (hostNft) writeFileSync(nftFile, renderHostNft());
  // Round 1: sysctls (before links, so new interfaces inherit the defaults),
  // bridges and veths, one shell per namespace. The mgmt namespace goes
  // last: a host's ICMP errors to its workloads (traceroute's first hop)
  // come from the address of its lowest-numbered interface, which must be
  // fab0, created before mgmt0, and not the management address.
  const round1 = async (ns: (typeof plan.namespaces)[number]): Promise<void> => {
    const nft = hostNft && ns.role === "host" ? ` && nft -f ${nftFile}` : "";
    await runOk(
      "ip",
      [
        "netns",
        "exec",
        ns.name,
        "sh",
        "-c",
        `sysctl -q -w "$@" >/dev/null && ip -batch -${nft}`,
        "sh",
        ...sysctlArgs(ns),
      ],
      { input: renderCreate(plan, ns) },
    );
  };
  await mapLimit(
    plan.namespaces.filter((n) => n.role !== "mgmt"),
    8,
    round1,
  );
  await mapLimit(
    plan.namespaces.filter((n) => n.role === "mgmt"),
    1,
    round1,
  );
  // Round 2: addresses, links up, routes.
  await mapLimit(plan.namespaces, 8, (ns) =>
    runOk("ip", ["-n", ns.name, "-batch", "-"], { input: renderConfigure(ns) }),
  );
  await mapLimit(plan.workloads, 8, (w) => runOk("ip", ["-n", w.ns, "link", "set", "lo", "up"]));
}

// --- etcd.

async function startEtcd(
  plan: LabPlan,
  paths: LabPaths,
  state: LabState,
  signal: AbortSignal | undefined,
): Promise<void> {
  const mgmt = plan.namespaces.find((n) => n.role === "mgmt");
  if (!mgmt) throw new TwillError("Internal", "lab plan has no mgmt namespace");
  const cluster = plan.etcd.map((m) => `${m.name}=${m.peerUrl}`).join(",");
  // One member has no one to wait for: short timers elect it in ~50 ms. Three
  // share two cores with everything else: give elections room.
  const timers =
    plan.etcd.length === 1
      ? ["--heartbeat-interval=10", "--election-timeout=100"]
      : ["--heartbeat-interval=100", "--election-timeout=1000"];
  for (const m of plan.etcd) {
    const args = [
      `--name=${m.name}`,
      `--data-dir=${paths.etcd}/${m.name}`,
      `--listen-client-urls=${m.clientUrl},unix://etcd-${m.name}:2379`,
      `--advertise-client-urls=${m.clientUrl}`,
      `--listen-peer-urls=${m.peerUrl}`,
      `--initial-advertise-peer-urls=${m.peerUrl}`,
      `--initial-cluster=${cluster}`,
      "--initial-cluster-state=new",
      `--initial-cluster-token=twl-${plan.options.name}`,
      ...timers,
      "--logger=zap",
      "--log-outputs=stderr",
      "--log-level=warn",
    ];
    const pid = spawnInNetns(mgmt.name, "etcd", args, {
      logFile: paths.log(`etcd-${m.name}`),
      cwd: paths.etcd,
    });
    state.processes.push({ name: `etcd ${m.name}`, ns: mgmt.name, pid });
  }
  const deadline = performance.now() + 15_000;
  for (const m of plan.etcd) {
    for (;;) {
      if (signal?.aborted) throw new TwillError("Aborted", "lab up was aborted");
      const record = state.processes.find((p) => p.name === `etcd ${m.name}`);
      if (record && !pidAlive(record.pid)) {
        throw new TwillError(
          "Unavailable",
          `etcd member ${m.name} exited during start-up:\n${tail(paths.log(`etcd-${m.name}`))}`,
        );
      }
      try {
        const res = await unixGet(paths.etcdSocket(m.name), "/health");
        if ((JSON.parse(res.body) as { health?: unknown }).health === "true") break;
      } catch {
        // Not listening yet.
      }
      if (performance.now() > deadline) {
        throw new TwillError(
          "Timeout",
          `etcd member ${m.name} not healthy after 15 s:\n${tail(paths.log(`etcd-${m.name}`))}`,
        );
      }
      await delay(30, signal);
    }
  }
}

/** A store on the lab's etcd through its unix sockets (from the machine). */
export function openLabStore(info: Pick<LabInfo, "etcdSockets">): {
  store: ResourceStore;
  close(): Promise<void>;
} {
  const backend = new EtcdHttpBackend({ endpoints: info.etcdSockets, timeoutMs: 5000 });
  return { store: new ResourceStore(backend), close: () => backend.close() };
}

async function writeResources(plan: LabPlan, paths: LabPaths): Promise<number> {
  const { store, close } = openLabStore({
    etcdSockets: plan.etcd.map((m) => `unix://${paths.etcdSocket(m.name)}`),
  });
  try {
    const resources = labResources(plan);
    for (const r of resources) {
      const checked = validateResource(r);
      if (!checked.ok) {
        throw new TwillError(
          "Internal",
          `lab resource ${r.kind} "${r.metadata.name}" is invalid: ${checked.errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`,
        );
      }
      await store.apply(checked.resource);
    }
    return resources.length;
  } finally {
    await close();
  }
}

// --- Routers.

async function startRouter(router: RouterPlan, paths: LabPaths, state: LabState): Promise<void> {
  const dir = paths.frr(router.name);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const config = renderFrr(router, { logDir: dir });
  writeFileSync(`${dir}/zebra.conf`, config.zebra);
  writeFileSync(`${dir}/bgpd.conf`, config.bgpd);
  await runOk("chown", ["-R", "frr:frr", dir]);
  for (const daemon of ["zebra", "bgpd"] as const) {
    const code = await runLogged(
      "ip",
      [
        "netns",
        "exec",
        router.ns,
        `${FRR_DIR}/${daemon}`,
        "-d",
        "-u",
        "frr",
        "-g",
        "frr",
        "-A",
        "127.0.0.1",
        "--vty_socket",
        dir,
        "-z",
        `${dir}/zserv.api`,
        "-i",
        `${dir}/${daemon}.pid`,
        "-f",
        `${dir}/${daemon}.conf`,
      ],
      { logFile: paths.log(`${daemon}-${router.name}`) },
    );
    if (code !== 0) {
      throw new TwillError(
        "Unavailable",
        `${daemon} on ${router.name} did not start (exit ${code}):\n${tail(paths.log(`${daemon}-${router.name}`))}`,
      );
    }
    const pid = await readPidFile(`${dir}/${daemon}.pid`);
    state.processes.push({ name: `${daemon} ${router.name}`, ns: router.ns, pid });
  }
}

async function readPidFile(file: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    try {
      const pid = Number(readFileSync(file, "utf8").trim());
      if (Number.isSafeInteger(pid) && pid > 0) return pid;
    } catch {
      // Not written yet.
    }
    await delay(20);
  }
  throw new TwillError("Unavailable", `no pid in ${file}`);
}

// --- Agents.

/** The `twill agent` arguments for a lab host (after the global --etcd-endpoints). */
export function agentArgs(host: HostPlan, birdDir: string): string[] {
  const args = [
    "agent",
    "--node-name",
    host.name,
    "--node-ipv4",
    host.ipv4,
    "--as-number",
    String(host.asNumber),
    "--bird-dir",
    birdDir,
    "--health-host",
    host.mgmt.split("/")[0] ?? "",
    "--health-port",
    String(AGENT_HEALTH_PORT),
  ];
  if (host.ipv6 !== undefined) args.push("--node-ipv6", host.ipv6);
  return args;
}

/** Starts `twill agent` in a host's namespace (log appended to agent-<host>.log); its pid. */
function spawnAgent(plan: LabPlan, host: HostPlan, paths: LabPaths): number {
  const birdDir = paths.bird(host.name);
  mkdirSync(birdDir, { recursive: true, mode: 0o755 });
  return spawnInNetns(
    host.ns,
    process.execPath,
    [TWILL_MAIN, "--etcd-endpoints", etcdEndpointsFlag(plan), ...agentArgs(host, birdDir)],
    { logFile: paths.log(`agent-${host.name}`) },
  );
}

function startAgent(plan: LabPlan, host: HostPlan, paths: LabPaths, state: LabState): void {
  const pid = spawnAgent(plan, host, paths);
  state.processes.push({ name: `agent ${host.name}`, ns: host.ns, pid });
}

/**
 * Restarts a host's agent, as a service manager would: SIGTERM to the
 * running one (SIGKILL after 15 s), then `twill agent` again with the
 * arguments `lab up` gave it, recorded in the state file; resolves once it
 * answers /readyz. BIRD is left alone (the new agent adopts it). Returns
 * the new pid. A recorded pid counts only while its command line names the
 * lab's state dir (it may belong to someone else after a reboot).
 */
export async function restartAgent(
  name: string,
  host: string,
  settings: LabSettings & { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<number> {
  const { plan, paths, state } = loadLab(name, settings);
  const target = plan.hosts.find((h) => h.name === host);
  if (target === undefined) {
    throw new TwillError(
      "NotFound",
      `no host "${host}" in lab "${name}" (hosts: ${plan.hosts.map((h) => h.name).join(", ")})`,
    );
  }
  const key = `agent ${target.name}`;
  const old = state.processes.find((p) => p.name === key)?.pid;
  if (old !== undefined && pidAlive(old) && processCmdline(old).includes(paths.dir)) {
    sendSignal(old, "SIGTERM");
    const until = performance.now() + 15_000;
    while (pidAlive(old) && performance.now() < until) await delay(20, settings.signal);
    if (pidAlive(old)) sendSignal(old, "SIGKILL");
    while (pidAlive(old)) await delay(20, settings.signal);
  }
  const pid = spawnAgent(plan, target, paths);
  // Read again: another writer (add-workload, check) may have written meanwhile.
  const fresh = readState(paths) ?? state;
  fresh.processes = [
    ...fresh.processes.filter((p) => p.name !== key),
    { name: key, ns: target.ns, pid },
  ];
  writeState(paths, fresh);
  await waitAgentsReady(plan, paths, fresh, {
    hosts: [target],
    timeoutMs: settings.timeoutMs ?? 30_000,
    signal: settings.signal,
  });
  return pid;
}

function healthUrl(host: HostPlan, path: string): string {
  return `http://${host.mgmt.split("/")[0] ?? ""}:${AGENT_HEALTH_PORT}${path}`;
}

/** Status codes of HTTP GETs made from inside the mgmt namespace (0: no answer). */
export async function probeFromMgmt(plan: LabPlan, urls: readonly string[]): Promise<number[]> {
  if (urls.length === 0) return [];
  const mgmt = plan.namespaces.find((n) => n.role === "mgmt");
  if (!mgmt) return urls.map(() => 0);
  const script = `const urls = JSON.parse(process.argv[1]);
Promise.all(urls.map((u) => fetch(u, { signal: AbortSignal.timeout(1500) }).then((r) => r.status, () => 0)))
  .then((s) => console.log(JSON.stringify(s)));`;
  const r = await run(
    "ip",
    ["netns", "exec", mgmt.name, process.execPath, "-e", script, JSON.stringify(urls)],
    {
      timeoutMs: 10_000,
    },
  );
  try {
    const codes = JSON.parse(r.stdout) as number[];
    return urls.map((_, i) => codes[i] ?? 0);
  } catch {
    return urls.map(() => 0);
  }
}

async function waitAgentsReady(
  plan: LabPlan,
  paths: LabPaths,
  state: LabState,
  options: { timeoutMs: number; signal: AbortSignal | undefined; hosts?: readonly HostPlan[] },
): Promise<void> {
  const deadline = performance.now() + options.timeoutMs;
  let pending = [...(options.hosts ?? plan.hosts)];
  while (pending.length > 0) {
    for (const host of pending) {
      const record = state.processes.find((p) => p.name === `agent ${host.name}`);
      if (record && !pidAlive(record.pid)) {
        throw new TwillError(
          "Unavailable",
          `the agent on ${host.name} exited${neighbourTableHint()} (log ${paths.log(`agent-${host.name}`)}):\n${tail(paths.log(`agent-${host.name}`))}`,
        );
      }
    }
    const codes = await probeFromMgmt(
      plan,
      pending.map((h) => healthUrl(h, "/readyz")),
    );
    pending = pending.filter((_, i) => codes[i] !== 200);
    if (pending.length === 0) break;
    if (performance.now() > deadline) {
      throw new TwillError(
        "Timeout",
        `agents not ready after ${Math.round(options.timeoutMs / 1000)} s: ${pending.map((h) => h.name).join(", ")}${neighbourTableHint()} (logs in ${paths.logs})`,
      );
    }
    await delay(200, options.signal);
  }
}

// --- Workloads.

function cniNetconf(plan: LabPlan, w: WorkloadPlan, timeoutMs: number): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: CNI_NETWORK,
    type: "twill",
    nodename: w.host,
    etcd_endpoints: etcdEndpointsFlag(plan),
    labels: w.labels,
    ipam: {
      type: "twill-ipam",
      assign_ipv4: "true",
      assign_ipv6: plan.options.ipv6 ? "true" : "false",
    },
    policy: { waitForProgrammed: true, timeoutSeconds: Math.max(1, Math.round(timeoutMs / 1000)) },
  };
}

/** Runs the CNI plugin in the workload's host namespace, as a runtime does. */
async function cni(
  plan: LabPlan,
  w: WorkloadPlan,
  command: "ADD" | "DEL",
  options: { timeoutMs: number; signal?: AbortSignal | undefined },
): Promise<Record<string, unknown>> {
  const hostNs = plan.hosts.find((h) => h.name === w.host)?.ns;
  if (hostNs === undefined)
    throw new TwillError("NotFound", `no host "${w.host}" in lab "${plan.options.name}"`);
  const r = await run("nsenter", [`--net=/var/run/netns/${hostNs}`, process.execPath, CNI_MAIN], {
    input: JSON.stringify(cniNetconf(plan, w, options.timeoutMs)),
    env: {
      PATH: process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin",
      CNI_COMMAND: command,
      CNI_CONTAINERID: `${plan.options.name}-${w.name}`,
      // A Kubernetes pod "default/<workload>", as the kubelet would name it:
      // Kubernetes NetworkPolicies (which select k8s pods only) apply too.
      CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=${LAB_POD_NAMESPACE};K8S_POD_NAME=${w.name}`,
      CNI_NETNS: `/var/run/netns/${w.ns}`,
      CNI_IFNAME: "eth0",
      CNI_PATH: "/opt/cni/bin",
    },
    timeoutMs: options.timeoutMs + 5000,
    ...(options.signal !== undefined ? { signal: options.signal } : {}),
  });
  let out: Record<string, unknown> = {};
  try {
    out = r.stdout.trim() === "" ? {} : (JSON.parse(r.stdout) as Record<string, unknown>);
  } catch {
    out = {};
  }
  if (r.code !== 0) {
    const msg =
      typeof out["msg"] === "string" ? out["msg"] : r.stderr.trim().split("\n").slice(-3).join(" ");
    const details = typeof out["details"] === "string" ? `: ${out["details"]}` : "";
    throw new TwillError(
      "Unavailable",
      `CNI ${command} of ${w.name} on ${w.host} failed: ${msg}${details}`,
    );
  }
  return out;
}

async function addWorkloadTo(
  plan: LabPlan,
  _paths: LabPaths,
  w: WorkloadPlan,
  options: { timeoutMs: number; signal?: AbortSignal | undefined },
): Promise<WorkloadRecord> {
  const result = await cni(plan, w, "ADD", options);
  const record: WorkloadRecord = {
    name: w.name,
    ns: w.ns,
    host: w.host,
    labels: w.labels,
    containerId: `${plan.options.name}-${w.name}`,
  };
  for (const ip of (result["ips"] as { address?: string }[] | undefined) ?? []) {
    const address = ip.address?.split("/")[0];
    if (address === undefined) continue;
    if (address.includes(":")) record.ipv6 ??= address;
    else record.ipv4 ??= address;
  }
  return record;
}

/** Adds a workload to a running lab: a new namespace on `host`, attached through the CNI plugin. */
export async function labAddWorkload(
  name: string,
  host: string,
  settings: LabSettings & { labels?: Record<string, string>; timeoutMs?: number } = {},
): Promise<WorkloadRecord> {
  const { plan, paths, state } = loadLab(name, settings);
  if (!plan.hosts.some((h) => h.name === host)) {
    throw new TwillError(
      "NotFound",
      `no host "${host}" in lab "${name}" (hosts: ${plan.hosts.map((h) => h.name).join(", ")})`,
    );
  }
  const used = state.workloads
    .filter((w) => w.host === host)
    .map((w) => Number(/w(\d+)$/.exec(w.name)?.[1] ?? 0));
  const index = Math.max(0, ...used) + 1;
  const w = planWorkload(name, host, index, settings.labels);
  await runOk("ip", ["netns", "add", w.ns]);
  try {
    await runOk("ip", ["-n", w.ns, "link", "set", "lo", "up"]);
    const record = await addWorkloadTo(plan, paths, w, { timeoutMs: settings.timeoutMs ?? 30_000 });
    // Read again: another add-workload may have written meanwhile.
    const fresh = readState(paths) ?? state;
    fresh.workloads.push(record);
    writeState(paths, fresh);
    return record;
  } catch (err) {
    await run("ip", ["netns", "del", w.ns]);
    throw err;
  }
}

// --- Convergence.

async function routesOf(ns: string, ipv6: boolean): Promise<KernelRoute[]> {
  const families = ipv6 ? ["-4", "-6"] : ["-4"];
  const out: KernelRoute[] = [];
  for (const f of families) {
    const r = await run("ip", [f, "-j", "-n", ns, "route", "show"]);
    if (r.code !== 0) continue;
    try {
      out.push(...(JSON.parse(r.stdout) as KernelRoute[]));
    } catch {
      // Half-written table: try again next round.
    }
  }
  return out;
}

/** BGP sessions of FRR routers (vtysh over the router's vty socket). */
export async function routerSessions(router: RouterPlan, paths: LabPaths): Promise<BgpSession[]> {
  const r = await run(
    "vtysh",
    ["--vty_socket", paths.frr(router.name), "-c", "show bgp summary json"],
    {
      timeoutMs: 5000,
    },
  );
  if (r.code !== 0) return [];
  let summary: Record<string, { peers?: Record<string, { state?: string }> }>;
  try {
    summary = JSON.parse(r.stdout) as typeof summary;
  } catch {
    return [];
  }
  const sessions: BgpSession[] = [];
  for (const af of Object.values(summary)) {
    for (const [peer, p] of Object.entries(af.peers ?? {})) {
      const state = p.state ?? "unknown";
      sessions.push({ speaker: router.name, peer, state, established: state === "Established" });
    }
  }
  return sessions;
}

/** BGP sessions of a host's BIRD, from its control socket (undefined: no BIRD socket). */
export async function birdSessions(
  host: HostPlan,
  paths: LabPaths,
): Promise<BgpSession[] | undefined> {
  const socket = `${paths.bird(host.name)}/bird.ctl`;
  if (!existsSync(socket)) return undefined;
  const r = await run("birdc", ["-s", socket, "show", "protocols"], { timeoutMs: 5000 });
  if (r.code !== 0) return undefined;
  return parseBirdProtocols(host.name, r.stdout);
}

/** BGP rows of BIRD's `show protocols`. */
export function parseBirdProtocols(speaker: string, text: string): BgpSession[] {
  const sessions: BgpSession[] = [];
  for (const line of text.split("\n")) {
    const cols = line.trim().split(/\s+/);
    if (cols[1] !== "BGP") continue;
    const info = cols.slice(5).join(" ");
    const state = info === "" ? (cols[3] ?? "unknown") : info;
    sessions.push({
      speaker,
      peer: cols[0] ?? "",
      state,
      established: /^Established/.test(info),
    });
  }
  return sessions;
}

async function allSessions(plan: LabPlan, paths: LabPaths): Promise<BgpSession[]> {
  const [routers, hosts] = await Promise.all([
    mapLimit(plan.routers, 8, (r) => routerSessions(r, paths)),
    mapLimit(plan.hosts, 8, (h) => birdSessions(h, paths)),
  ]);
  return [...routers.flat(), ...hosts.flatMap((s) => s ?? [])];
}

async function waitConverged(
  plan: LabPlan,
  paths: LabPaths,
  workloads: readonly WorkloadRecord[],
  options: { timeoutMs: number; signal: AbortSignal | undefined },
): Promise<BgpSession[]> {
  const addresses = workloads.flatMap((w) =>
    [w.ipv4, w.ipv6].filter((a): a is string => a !== undefined),
  );
  const owner = new Map<string, string>();
  for (const w of workloads) {
    if (w.ipv4 !== undefined) owner.set(w.ipv4, w.name);
    if (w.ipv6 !== undefined) owner.set(w.ipv6, w.name);
  }
  const speakers = [...plan.hosts.map((h) => ({ name: h.name, ns: h.ns })), ...plan.routers];
  const deadline = performance.now() + options.timeoutMs;
  for (;;) {
    const [sessions, missing] = await Promise.all([
      allSessions(plan, paths),
      mapLimit(speakers, 8, async (s) => ({
        name: s.name,
        missing: uncovered(await routesOf(s.ns, plan.options.ipv6), addresses),
      })),
    ]);
    const down = sessions.filter((s) => !s.established);
    const noRoute = missing.filter((m) => m.missing.length > 0);
    if (down.length === 0 && noRoute.length === 0 && sessions.length > 0) return sessions;
    if (performance.now() > deadline) {
      const parts: string[] = [];
      if (sessions.length === 0) parts.push("no BGP session found at all");
      if (down.length > 0) {
        parts.push(
          `sessions not established: ${down
            .slice(0, 8)
            .map((s) => `${s.speaker}→${s.peer} (${s.state})`)
            .join(", ")}${down.length > 8 ? ", ..." : ""}`,
        );
      }
      if (noRoute.length > 0) {
        parts.push(
          `no route: ${noRoute
            .slice(0, 6)
            .map(
              (m) =>
                `${m.name} to ${m.missing
                  .slice(0, 3)
                  .map((a) => `${a} (${owner.get(a) ?? "?"})`)
                  .join(", ")}`,
            )
            .join("; ")}`,
        );
      }
      throw new TwillError(
        "Timeout",
        `BGP not converged after ${Math.round(options.timeoutMs / 1000)} s: ${parts.join("; ")}${neighbourTableHint()} (logs in ${paths.logs})`,
      );
    }
    await delay(250, options.signal);
  }
}

// --- Finding a lab again.

interface LoadedLab {
  plan: LabPlan;
  paths: LabPaths;
  state: LabState;
}

function loadLab(name: string, settings: LabSettings): LoadedLab {
  const paths = labPaths(rootOf(settings), name);
  const state = readState(paths);
  if (!state) {
    throw new TwillError(
      "NotFound",
      `no lab "${name}" (no ${paths.state}): start one with 'twill lab up'`,
    );
  }
  return { plan: planLab(state.options), paths, state };
}

/** What a running lab is made of, from its state file. */
export function labInfo(name: string, settings: LabSettings = {}): LabInfo {
  const { plan, paths, state } = loadLab(name, settings);
  return labInfoOf(plan, paths, state);
}

export interface ExecTarget {
  ns: string;
  /** Arguments to put after the command's name (vtysh's socket, birdc's). */
  env: Record<string, string>;
  argv: string[];
}

/**
 * Where `lab exec NAME -- CMD...` runs: NAME is a host, workload, router,
 * plain machine or "mgmt". `vtysh` on a router and `birdc` on a host get
 * that daemon's control socket; `twill` is on PATH and talks to the lab's etcd.
 */
export function labExecTarget(
  name: string,
  target: string,
  command: readonly string[],
  settings: LabSettings = {},
): ExecTarget {
  const { plan, paths, state } = loadLab(name, settings);
  const known = [...plan.namespaces.map((n) => n.short), ...state.workloads.map((w) => w.name)];
  const ns =
    plan.namespaces.find((n) => n.short === target)?.name ??
    state.workloads.find((w) => w.name === target)?.ns;
  if (ns === undefined) {
    throw new TwillError("NotFound", `no "${target}" in lab "${name}": one of ${known.join(", ")}`);
  }
  const argv = [...command];
  if (plan.routers.some((r) => r.name === target) && argv[0] === "vtysh") {
    argv.splice(1, 0, "--vty_socket", paths.frr(target));
  }
  if (plan.hosts.some((h) => h.name === target) && argv[0] === "birdc") {
    argv.splice(1, 0, "-s", `${paths.bird(target)}/bird.ctl`);
  }
  return {
    ns,
    argv,
    env: {
      PATH: `${paths.bin}:${process.env["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`,
      TWILL_ETCD_ENDPOINTS: etcdEndpointsFlag(plan),
      TWILL_LAB: name,
    },
  };
}

/** `ip netns exec <mgmt> twill --etcd-endpoints <lab etcd> <args>`: the CLI against the lab's datastore. */
export function labTwillCommand(
  name: string,
  args: readonly string[],
  settings: LabSettings = {},
): string[] {
  const { plan } = loadLab(name, settings);
  const mgmt = plan.namespaces.find((n) => n.role === "mgmt");
  return [
    "ip",
    "netns",
    "exec",
    mgmt?.name ?? "",
    process.execPath,
    TWILL_MAIN,
    "--etcd-endpoints",
    etcdEndpointsFlag(plan),
    ...args,
  ];
}

// --- Status.

export interface HostStatus {
  name: string;
  site: number;
  rack: number | undefined;
  address: string;
  asNumber: number;
  agent: { pid: number | undefined; alive: boolean; live: boolean; ready: boolean };
  sessions: BgpSession[] | undefined;
}

export interface LabStatus {
  name: string;
  status: LabState["status"];
  options: LabOptions;
  createdAt: string;
  hosts: HostStatus[];
  routers: { name: string; role: string; asNumber: number; sessions: BgpSession[] }[];
  etcd: { name: string; healthy: boolean }[];
  workloads: WorkloadRecord[];
}

export async function labStatus(name: string, settings: LabSettings = {}): Promise<LabStatus> {
  const { plan, paths, state } = loadLab(name, settings);
  const urls = plan.hosts.flatMap((h) => [healthUrl(h, "/livez"), healthUrl(h, "/readyz")]);
  const [codes, routers, hostSessions, etcd] = await Promise.all([
    probeFromMgmt(plan, urls),
    mapLimit(plan.routers, 8, async (r) => ({
      name: r.name,
      role: r.role,
      asNumber: r.asNumber,
      sessions: await routerSessions(r, paths),
    })),
    mapLimit(plan.hosts, 8, (h) => hostBgpSessions(plan, h, paths)),
    Promise.all(
      plan.etcd.map(async (m) => {
        try {
          const res = await unixGet(paths.etcdSocket(m.name), "/health");
          return {
            name: m.name,
            healthy: (JSON.parse(res.body) as { health?: unknown }).health === "true",
          };
        } catch {
          return { name: m.name, healthy: false };
        }
      }),
    ),
  ]);
  const hosts = plan.hosts.map((h, i): HostStatus => {
    const pid = state.processes.find((p) => p.name === `agent ${h.name}`)?.pid;
    return {
      name: h.name,
      site: h.site,
      rack: h.rack,
      address: h.ipv4,
      asNumber: h.asNumber,
      agent: {
        pid,
        alive: pid !== undefined && pidAlive(pid),
        live: codes[2 * i] === 200,
        ready: codes[2 * i + 1] === 200,
      },
      sessions: hostSessions[i],
    };
  });
  return {
    name,
    status: state.status,
    options: state.options,
    createdAt: state.createdAt,
    hosts,
    routers,
    etcd,
    workloads: state.workloads,
  };
}

/**
 * A host's BGP sessions: `twill node status -o json` in its namespace (what
 * an operator would run), else BIRD's control socket directly.
 */
async function hostBgpSessions(
  plan: LabPlan,
  host: HostPlan,
  paths: LabPaths,
): Promise<BgpSession[] | undefined> {
  const r = await run(
    "ip",
    [
      "netns",
      "exec",
      host.ns,
      process.execPath,
      TWILL_MAIN,
      "--etcd-endpoints",
      etcdEndpointsFlag(plan),
      "node",
      "status",
      "-o",
      "json",
    ],
    {
      timeoutMs: 10_000,
      env: { ...process.env, TWILL_BIRD_DIR: paths.bird(host.name), TWILL_NODE_NAME: host.name },
    },
  );
  if (r.code === 0) {
    const parsed = parseNodeStatus(host.name, r.stdout);
    if (parsed) return parsed;
  }
  return birdSessions(host, paths);
}

/** Sessions from `twill node status -o json`: any array of objects with a state. */
export function parseNodeStatus(speaker: string, text: string): BgpSession[] | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const list =
    (doc as { sessions?: unknown; peers?: unknown } | null)?.sessions ??
    (doc as { peers?: unknown } | null)?.peers;
  if (!Array.isArray(list)) return undefined;
  return list.map((s: Record<string, unknown>) => {
    const state = String(s["state"] ?? s["info"] ?? "unknown");
    return {
      speaker,
      peer: String(s["peerAddress"] ?? s["peer"] ?? s["address"] ?? s["name"] ?? "?"),
      state,
      established: /established/i.test(state),
    };
  });
}

// --- labDown.

export interface LabDownResult {
  namespaces: number;
  processes: number;
  stateDir: boolean;
}

/**
 * Removes a lab: its processes (those recorded, those still in its
 * namespaces, and any still naming its state dir), every namespace with its
 * prefix, and its state dir. Works from any leftover state, and when there
 * is nothing left; safe to run twice or concurrently with nothing.
 */
export async function labDown(name: string, settings: LabSettings = {}): Promise<LabDownResult> {
  const paths = labPaths(rootOf(settings), name);
  const prefix = labPrefix(name);
  let state: LabState | undefined;
  try {
    state = readState(paths);
  } catch {
    state = undefined;
  }
  const namespaces = async (): Promise<string[]> =>
    (await listNetns()).filter((n) => labOfNamespace(n) === name && n.startsWith(prefix));
  const ours = async (): Promise<number[]> => {
    const pids = new Set<number>();
    for (const p of state?.processes ?? []) {
      // A recorded pid counts only while it still names our state dir: after
      // a reboot it may belong to someone else.
      if (pidAlive(p.pid) && processCmdline(p.pid).includes(paths.dir)) pids.add(p.pid);
    }
    for (const pid of await pidsMentioning(`${paths.dir}/`)) pids.add(pid);
    for (const ns of await namespaces()) for (const pid of await netnsPids(ns)) pids.add(pid);
    pids.delete(process.pid);
    return [...pids].filter((pid) => pidAlive(pid));
  };

  const killed = new Set<number>();
  // Agents restart BIRD: a few rounds until nothing of ours is left.
  for (let round = 0; round < 5; round++) {
    const pids = await ours();
    if (pids.length === 0) break;
    for (const pid of pids) {
      killed.add(pid);
      sendSignal(pid, round === 0 ? "SIGTERM" : "SIGKILL");
    }
    const until = performance.now() + (round === 0 ? 3000 : 1000);
    while (performance.now() < until && pids.some((p) => pidAlive(p))) await delay(25);
    for (const pid of pids) if (pidAlive(pid)) sendSignal(pid, "SIGKILL");
  }
  const left = await namespaces();
  if (left.length > 0)
    await run("ip", ["-force", "-batch", "-"], { input: renderNetnsDelete(left) });
  const stateDir = existsSync(paths.dir);
  rmSync(paths.dir, { recursive: true, force: true });
  return { namespaces: left.length, processes: killed.size, stateDir };
}

function tail(file: string, lines = 8): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}
