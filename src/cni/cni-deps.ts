// Everything the CNI core needs from the outside world, passed in as one
// object: the kernel (Netlink), the datastore (opened on demand, since
// VERSION needs none), other plugins (a delegated IPAM), the host's name,
// a clock and a log. main.ts wires the real ones; tests pass fakes.
import type { ResourceStore } from "../datastore/resource-store.js";
import type { Ipam } from "../ipam/ipam.js";
import type { Netlink } from "./netlink.js";

/** Where the datastore is: config fields with TWILL_ETCD_* fallbacks applied. */
export interface DatastoreOptions {
  endpoints: string[];
  tls?: { ca?: string; cert?: string; key?: string };
  username?: string;
  password?: string;
  prefix?: string;
}

export interface CniDatastore {
  store: ResourceStore;
  ipam: Ipam;
  close(): Promise<void>;
}

export interface PluginRun {
  stdout: string;
  exitCode: number;
}

export interface CniDeps {
  netlink: Netlink;
  openDatastore(options: DatastoreOptions): Promise<CniDatastore>;
  /**
   * Runs the plugin `type` found in one of `dirs` (CNI_PATH) with `env` and
   * `stdin`, as a runtime would. TwillError "NotFound" when it is in none.
   */
  execPlugin(
    type: string,
    dirs: readonly string[],
    env: Record<string, string | undefined>,
    stdin: string,
  ): Promise<PluginRun>;
  /**
   * Takes this host's IPAM turn (host-lock.ts): resolves with its release,
   * or undefined when going on without it. Absent: no turn-taking.
   */
  lockIpam?(): Promise<(() => Promise<void>) | undefined>;
  /** This machine's host name (the default node name). */
  hostname(): string;
  /** ms since the epoch. */
  now(): number;
  /** One structured log line (to stderr: the runtime shows it when the plugin fails). */
  log(entry: Record<string, unknown>): void;
}
