// Host-side sysctls for workload interfaces, and global forwarding, written
// under /proc/sys of the agent's own network namespace (/proc/sys/net is per
// namespace: the writer's namespace decides).
//
// Per workload interface (the host end of its veth):
//   net/ipv4/conf/<if>/forwarding   1   route the workload's packets
//   net/ipv4/conf/<if>/rp_filter    1   strict reverse path: a source must route back here
//                                       (0 when workloads may spoof: nftables checks sources then)
//   net/ipv4/conf/<if>/proxy_arp    1   answer the workload's ARP for 169.254.1.1
//   net/ipv4/neigh/<if>/proxy_delay 0   ... at once (the default delays up to 0.8 s)
//   net/ipv6/conf/<if>/forwarding   1   (ipv6Support)
//   net/ipv6/conf/<if>/proxy_ndp    1   (ipv6Support)
//   net/ipv6/conf/<if>/accept_ra    0   (ipv6Support) a workload must not configure the host
// Global (ipForwarding Enabled):
//   net/ipv4/ip_forward 1, and net/ipv6/conf/all/forwarding 1 with ipv6Support.
//
// Each value is read first and written only when it differs. The interface
// name comes from a WorkloadEndpoint, so it is checked before it becomes
// part of a path.
//
// The real Sysctls read and write synchronously: a file under /proc/sys is
// kernel memory, and a synchronous open/read/close of one takes a few
// microseconds, while the asynchronous calls queue three or four round trips
// each through libuv's small thread pool. For the 8,000 keys of 2,000
// interfaces that was ~2.6 s against ~0.14 s (bench/dataplane.ts). Callers
// doing many in a row yield to the event loop now and then (dataplane.ts).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { TwillError } from "../util/errors.js";

/** Sysctl keys are paths below /proc/sys: "net/ipv4/conf/tw1/proxy_arp". */
export interface Sysctls {
  /** The value, trimmed; undefined when the key does not exist. */
  read(key: string): Promise<string | undefined>;
  /** TwillError "NotFound" when the key does not exist. */
  write(key: string, value: string): Promise<void>;
}

const IFACE_NAME = /^[a-zA-Z0-9_.:@+-]{1,15}$/;

export function checkInterfaceName(name: string): void {
  if (!IFACE_NAME.test(name) || name === "." || name === "..") {
    throw new TwillError("Invalid", `interface name "${name}" is not a valid Linux interface name`);
  }
}

export interface SysctlOptions {
  ipv6: boolean;
  forwarding: boolean;
  /** Strict reverse-path filtering on workload interfaces (off when spoofing may be allowed). */
  strictRpFilter: boolean;
}

export function interfaceSysctls(name: string, options: SysctlOptions): [string, string][] {
  checkInterfaceName(name);
  const out: [string, string][] = [
    [`net/ipv4/conf/${name}/forwarding`, "1"],
    [`net/ipv4/conf/${name}/rp_filter`, options.strictRpFilter ? "1" : "0"],
    [`net/ipv4/conf/${name}/proxy_arp`, "1"],
    [`net/ipv4/neigh/${name}/proxy_delay`, "0"],
  ];
  if (options.ipv6) {
    out.push(
      [`net/ipv6/conf/${name}/forwarding`, "1"],
      [`net/ipv6/conf/${name}/proxy_ndp`, "1"],
      [`net/ipv6/conf/${name}/accept_ra`, "0"],
    );
  }
  return out;
}

export function globalSysctls(options: SysctlOptions): [string, string][] {
  if (!options.forwarding) return [];
  const out: [string, string][] = [["net/ipv4/ip_forward", "1"]];
  if (options.ipv6) out.push(["net/ipv6/conf/all/forwarding", "1"]);
  return out;
}

export class SysctlDriver {
  readonly #sysctls: Sysctls;
  #options: SysctlOptions;
  readonly #configured = new Set<string>();
  #globalDone = false;

  constructor(sysctls: Sysctls, options: SysctlOptions) {
    this.#sysctls = sysctls;
    this.#options = options;
  }

  configure(options: SysctlOptions): void {
    const o = this.#options;
    if (
      options.ipv6 === o.ipv6 &&
      options.forwarding === o.forwarding &&
      options.strictRpFilter === o.strictRpFilter
    ) {
      return;
    }
    this.#options = options;
    this.#configured.clear();
    this.#globalDone = false;
  }

  async #ensure(pairs: readonly [string, string][]): Promise<number> {
    let written = 0;
    for (const [key, value] of pairs) {
      const current = await this.#sysctls.read(key);
      if (current === undefined) {
        throw new TwillError("NotFound", `sysctl ${key.replace(/\//g, ".")} does not exist`);
      }
      if (current !== value) {
        await this.#sysctls.write(key, value);
        written++;
      }
    }
    return written;
  }

  /** Global forwarding; once, until configure() changes the options. Returns the number of writes. */
  async ensureGlobal(): Promise<number> {
    if (this.#globalDone) return 0;
    const n = await this.#ensure(globalSysctls(this.#options));
    this.#globalDone = true;
    return n;
  }

  /** The interface's sysctls; "NotFound" when it has gone. Returns the number of writes. */
  async configureInterface(name: string): Promise<number> {
    if (this.#configured.has(name)) return 0;
    const n = await this.#ensure(interfaceSysctls(name, this.#options));
    this.#configured.add(name);
    return n;
  }

  isConfigured(name: string): boolean {
    return this.#configured.has(name);
  }

  /** The interface went away (or was re-created): configure it again when it is back. */
  forget(name: string): void {
    this.#configured.delete(name);
  }
}

/** The real sysctls: files under /proc/sys (`root` for tests); synchronous I/O, see the header. */
export function procSysctls(root = "/proc/sys"): Sysctls {
  return {
    async read(key) {
      try {
        return readFileSync(join(root, key), "utf8").trim();
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new TwillError(
          "Unavailable",
          `cannot read sysctl ${key}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    },
    async write(key, value) {
      try {
        writeFileSync(join(root, key), value);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code === "ENOENT" ? "NotFound" : "Unavailable";
        throw new TwillError(
          code,
          `cannot write sysctl ${key}=${value}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    },
  };
}

export interface FakeSysctls extends Sysctls {
  readonly values: Map<string, string>;
  /** Create the per-interface keys of `name` with the kernel's defaults. */
  addInterface(name: string): void;
  removeInterface(name: string): void;
  readonly writes: string[];
}

/** Sysctls in memory; interface keys exist only for interfaces added. */
export function fakeSysctls(): FakeSysctls {
  const values = new Map<string, string>([
    ["net/ipv4/ip_forward", "0"],
    ["net/ipv6/conf/all/forwarding", "0"],
  ]);
  const writes: string[] = [];
  const defaults = (name: string): [string, string][] => [
    [`net/ipv4/conf/${name}/forwarding`, "0"],
    [`net/ipv4/conf/${name}/rp_filter`, "0"],
    [`net/ipv4/conf/${name}/proxy_arp`, "0"],
    [`net/ipv4/neigh/${name}/proxy_delay`, "80"],
    [`net/ipv6/conf/${name}/forwarding`, "0"],
    [`net/ipv6/conf/${name}/proxy_ndp`, "0"],
    [`net/ipv6/conf/${name}/accept_ra`, "1"],
  ];
  return {
    values,
    writes,
    addInterface(name) {
      for (const [k, v] of defaults(name)) values.set(k, v);
    },
    removeInterface(name) {
      for (const [k] of defaults(name)) values.delete(k);
    },
    async read(key) {
      return values.get(key);
    },
    async write(key, value) {
      if (!values.has(key))
        throw new TwillError("NotFound", `cannot write sysctl ${key}=${value}: no such file`);
      values.set(key, value);
      writes.push(`${key}=${value}`);
    },
  };
}
