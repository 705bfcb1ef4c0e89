// A lab's state on disk: what `lab up` built, written as it goes, so that
// `lab status`, `lab exec` and the other commands find the lab, and `lab
// down` removes it even after a crash half-way through `lab up`.
//
//   <root>/<name>/            root: /var/run/twill/lab by default
//     state.json              LabState, rewritten atomically after each step
//     logs/<proc>.log         etcd, agents, FRR daemons
//     etcd/                   data dirs and client sockets (etcd<m>:2379)
//     bird/<host>/            each agent's BIRD dir (config, control socket)
//     frr/<router>/           each router's config, vty sockets, pid files
//     bin/                    twill, twill-cni: wrappers for `lab exec`
//
// The plan is not stored: it is computed again from the options (planLab
// is deterministic). Workloads added later are stored with their labels.
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TwillError } from "../util/errors.js";
import type { LabOptions } from "./topology.js";

export const DEFAULT_STATE_ROOT = "/var/run/twill/lab";
export const STATE_VERSION = 1;

export interface ProcessRecord {
  /** What it is: "etcd m1", "agent h1", "zebra tor1", "bgpd tor1". */
  name: string;
  ns: string;
  pid: number;
}

export interface WorkloadRecord {
  name: string;
  ns: string;
  host: string;
  labels: Record<string, string>;
  containerId: string;
  /** Addresses without prefix length. */
  ipv4?: string;
  ipv6?: string;
}

export interface LabState {
  version: number;
  name: string;
  options: LabOptions;
  stateDir: string;
  createdAt: string;
  status: "building" | "up" | "failed";
  processes: ProcessRecord[];
  workloads: WorkloadRecord[];
}

export interface LabPaths {
  dir: string;
  state: string;
  logs: string;
  etcd: string;
  bin: string;
  log(name: string): string;
  bird(host: string): string;
  frr(router: string): string;
  /** etcd member m's client socket (unix), reachable from any namespace. */
  etcdSocket(member: string): string;
}

export function labPaths(root: string, name: string): LabPaths {
  const dir = join(root, name);
  return {
    dir,
    state: join(dir, "state.json"),
    logs: join(dir, "logs"),
    etcd: join(dir, "etcd"),
    bin: join(dir, "bin"),
    log: (n) => join(dir, "logs", `${n}.log`),
    bird: (host) => join(dir, "bird", host),
    frr: (router) => join(dir, "frr", router),
    // etcd wants host:port even for unix sockets and makes the socket at
    // that relative path in its working directory (etcd/).
    etcdSocket: (member) => join(dir, "etcd", `etcd-${member}:${2379}`),
  };
}

export function readState(paths: LabPaths): LabState | undefined {
  let text: string;
  try {
    text = readFileSync(paths.state, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  try {
    const state = JSON.parse(text) as LabState;
    if (state.version !== STATE_VERSION) {
      throw new Error(`version ${String(state.version)}, expected ${STATE_VERSION}`);
    }
    return state;
  } catch (err) {
    throw new TwillError("Invalid", `lab state ${paths.state} is unreadable: ${String(err)}`, {
      cause: err,
    });
  }
}

/** Writes the state file atomically (a reader never sees half of it). */
export function writeState(paths: LabPaths, state: LabState): void {
  mkdirSync(paths.dir, { recursive: true, mode: 0o755 });
  const tmp = `${paths.state}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(tmp, paths.state);
}

/** Names of labs with a state dir under `root`. */
export function labsOnDisk(root: string): string[] {
  try {
    return readdirSync(root, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name)
      .sort();
  } catch {
    return [];
  }
}
