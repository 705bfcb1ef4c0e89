// The real Netlink: iproute2's `ip` (JSON output with -j) and util-linux's
// `nsenter` for the workload's namespace, sysctls written under /proc/sys.
//
// Namespaces. The plugin runs in the host's namespace (the runtime's), so
// host-side sysctls are files under /proc/sys/net/ of this process: /proc/sys
// resolves to the namespace of the process that opens it. Inside the
// workload every command runs under `nsenter --net=<CNI_NETNS>`; CNI_NETNS is
// a path (/var/run/netns/x, /proc/<pid>/ns/net), which `ip -n` would not take.
//
// Speed. Each process costs a few milliseconds, so the steps of one side go
// to one `ip -batch -` (or one `sh` that writes the sysctls and then execs
// it). Names that `ip -batch` could misread (quotes, '#', '\') are refused;
// they cannot name a WorkloadEndpoint anyway.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { TwillError } from "../util/errors.js";
import type {
  HostSideState,
  LinkState,
  Netlink,
  RouteState,
  VethSpec,
  WorkloadAddresses,
  WorkloadSideState,
} from "./netlink.js";
import { HOST_SIDE_MAC, IPV4_GATEWAY, IPV6_GATEWAY, hostSysctls } from "./netlink.js";

export interface Iproute2Options {
  /** The `ip` binary (default: the first of /usr/sbin/ip, /sbin/ip, /usr/bin/ip, /bin/ip, else "ip"). */
  ip?: string;
  /** The `nsenter` binary (default /usr/bin/nsenter when present, else "nsenter"). */
  nsenter?: string;
  /** Where /proc/sys/net lives (tests point it elsewhere). */
  procSysNet?: string;
  /** The route protocol number of the host routes. */
  routeProtocol: number;
  /** Deadline for each command in milliseconds (default 10000). */
  timeoutMs?: number;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function firstExisting(paths: readonly string[], fallback: string): string {
  return paths.find((p) => existsSync(p)) ?? fallback;
}

/** True for an argument that `ip -batch` reads back exactly. */
function batchSafe(arg: string): boolean {
  return /^[A-Za-z0-9_.:/@+=,-]+$/.test(arg);
}

interface RawLink {
  ifname?: string;
  address?: string;
  flags?: string[];
  mtu?: number;
  addr_info?: { family?: string; local?: string; prefixlen?: number; scope?: string }[];
}

interface RawRoute {
  dst?: string;
  gateway?: string;
  scope?: string;
  protocol?: string;
}

function parseJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new TwillError(
      "Internal",
      `${what}: ip printed something that is not JSON: ${text.slice(0, 200)}`,
      {
        cause: err,
      },
    );
  }
}

function toLink(raw: RawLink): LinkState {
  return {
    name: raw.ifname ?? "",
    mac: (raw.address ?? "").toLowerCase(),
    up: (raw.flags ?? []).includes("UP"),
    mtu: raw.mtu ?? 0,
  };
}

function toRoute(raw: RawRoute, family: 4 | 6): RouteState {
  let dst = raw.dst ?? "";
  if (dst === "default") dst = family === 4 ? "0.0.0.0/0" : "::/0";
  else if (!dst.includes("/")) dst = `${dst}/${family === 4 ? 32 : 128}`;
  const route: RouteState = { dst };
  if (raw.gateway !== undefined) route.gateway = raw.gateway;
  if (family === 4) route.scope = raw.scope ?? "global";
  if (raw.protocol !== undefined) route.protocol = raw.protocol;
  return route;
}

const NO_DEVICE = /Cannot find device|does not exist|No such device/;

export class Iproute2 implements Netlink {
  #ip: string;
  #nsenter: string;
  #proc: string;
  #proto: string;
  #timeoutMs: number;

  constructor(options: Iproute2Options) {
    this.#ip =
      options.ip ?? firstExisting(["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"], "ip");
    this.#nsenter =
      options.nsenter ?? firstExisting(["/usr/bin/nsenter", "/bin/nsenter"], "nsenter");
    this.#proc = options.procSysNet ?? "/proc/sys/net";
    this.#proto = String(options.routeProtocol);
    this.#timeoutMs = options.timeoutMs ?? 10_000;
  }

  async createVeth(spec: VethSpec): Promise<void> {
    const mtu = spec.mtu !== undefined ? ["mtu", String(spec.mtu)] : [];
    const peerMac = spec.containerMac !== undefined ? ["address", spec.containerMac] : [];
    const args = [
      "link",
      "add",
      spec.hostInterface,
      // Up from the start (it has no carrier until the workload side is up).
      "up",
      ...mtu,
      "address",
      HOST_SIDE_MAC,
      "type",
      "veth",
      "peer",
      "name",
      spec.ifname,
      ...mtu,
      ...peerMac,
      "netns",
      spec.netns,
    ];
    const res = await this.#run(this.#ip, args);
    if (res.code === 0) return;
    if (/File exists/.test(res.stderr)) {
      const host = await this.#run(this.#ip, ["link", "show", "dev", spec.hostInterface]);
      throw new TwillError(
        "AlreadyExists",
        host.code === 0
          ? `host interface "${spec.hostInterface}" already exists`
          : `interface "${spec.ifname}" already exists in ${spec.netns}`,
      );
    }
    if (/Invalid "netns" value|No such file/.test(res.stderr)) {
      throw new TwillError("NotFound", `network namespace ${spec.netns} does not exist`);
    }
    throw this.#failed("creating the veth pair", args, res);
  }

  async configureHostSysctls(hostInterface: string, addresses: WorkloadAddresses): Promise<void> {
    for (const [path, value] of hostSysctls(hostInterface, addresses)) {
      try {
        await writeFile(`${this.#proc}/${path}`, value);
      } catch (err) {
        throw new TwillError(
          "Internal",
          `cannot set net.${path.replaceAll("/", ".")} = ${value}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
  }

  async configureHostSide(hostInterface: string, addresses: WorkloadAddresses): Promise<void> {
    // `replace`, not `add`: the agent may have programmed the same route
    // already (ADD writes the endpoint while this runs), and the address is
    // this endpoint's by IPAM, so a route to it is this interface's.
    const commands = [["link", "set", "dev", hostInterface, "up"]];
    if (addresses.ipv4 !== undefined) {
      commands.push([
        "route",
        "replace",
        `${addresses.ipv4}/32`,
        "dev",
        hostInterface,
        "scope",
        "link",
        "proto",
        this.#proto,
      ]);
    }
    if (addresses.ipv6 !== undefined) {
      commands.push([
        "route",
        "replace",
        `${addresses.ipv6}/128`,
        "dev",
        hostInterface,
        "proto",
        this.#proto,
      ]);
    }
    await this.#batch(undefined, commands, "configuring the host side");
  }

  async configureWorkloadSide(
    netns: string,
    ifname: string,
    addresses: WorkloadAddresses,
  ): Promise<{ mac: string }> {
    const commands = [["link", "set", "dev", ifname, "up"]];
    if (addresses.ipv4 !== undefined) {
      commands.push(
        ["addr", "add", `${addresses.ipv4}/32`, "dev", ifname],
        ["route", "add", IPV4_GATEWAY, "dev", ifname, "scope", "link"],
        ["route", "add", "0.0.0.0/0", "via", IPV4_GATEWAY, "dev", ifname],
      );
    }
    if (addresses.ipv6 !== undefined) {
      commands.push(
        ["addr", "add", `${addresses.ipv6}/128`, "dev", ifname, "nodad"],
        ["route", "add", "::/0", "via", IPV6_GATEWAY, "dev", ifname],
      );
    }
    commands.push(["link", "show", "dev", ifname]);
    // A container may have IPv6 switched off (Docker does so by default).
    const sysctls =
      addresses.ipv6 !== undefined ? [[`ipv6/conf/${ifname}/disable_ipv6`, "0"] as const] : [];
    const out = await this.#batch(netns, commands, "configuring the workload side", sysctls);
    const links = parseJson<RawLink[]>(out.trim().split("\n").pop() ?? "[]", "link show");
    const link = links[0];
    if (!link?.address) {
      throw new TwillError("Internal", `interface "${ifname}" in ${netns} reported no MAC address`);
    }
    return { mac: link.address.toLowerCase() };
  }

  async deleteHostInterface(name: string): Promise<boolean> {
    const args = ["link", "del", "dev", name];
    const res = await this.#run(this.#ip, args);
    if (res.code === 0) return true;
    if (NO_DEVICE.test(res.stderr)) return false;
    throw this.#failed(`deleting interface "${name}"`, args, res);
  }

  async deleteWorkloadInterface(netns: string, ifname: string): Promise<boolean> {
    if (!(await this.netnsExists(netns))) return false;
    const args = ["link", "del", "dev", ifname];
    const res = await this.#runIn(netns, args);
    if (res.code === 0) return true;
    if (NO_DEVICE.test(res.stderr) || !(await this.netnsExists(netns))) return false;
    throw this.#failed(`deleting interface "${ifname}" in ${netns}`, args, res);
  }

  async inspectHostSide(name: string): Promise<HostSideState | undefined> {
    const [link, v4, v6] = await Promise.all([
      this.#json<RawLink[]>(undefined, ["-j", "link", "show", "dev", name]),
      this.#json<RawRoute[]>(undefined, ["-j", "-4", "route", "show", "dev", name]),
      this.#json<RawRoute[]>(undefined, ["-j", "-6", "route", "show", "dev", name]),
    ]);
    const raw = link?.[0];
    if (!raw) return undefined;
    const sysctls: Record<string, string> = {};
    const paths = hostSysctls(name, { ipv4: "", ipv6: "" }).map(([p]) => p);
    await Promise.all(
      paths.map(async (p) => {
        try {
          sysctls[p] = (await readFile(`${this.#proc}/${p}`, "utf8")).trim();
        } catch {
          // Not there (IPv6 off, or the interface went away meanwhile).
        }
      }),
    );
    return {
      link: toLink(raw),
      routes: [...(v4 ?? []).map((r) => toRoute(r, 4)), ...(v6 ?? []).map((r) => toRoute(r, 6))],
      sysctls,
    };
  }

  async inspectWorkloadSide(netns: string, ifname: string): Promise<WorkloadSideState | undefined> {
    if (!(await this.netnsExists(netns))) {
      throw new TwillError("NotFound", `network namespace ${netns} does not exist`);
    }
    const [addr, v4, v6] = await Promise.all([
      this.#json<RawLink[]>(netns, ["-j", "addr", "show", "dev", ifname]),
      this.#json<RawRoute[]>(netns, ["-j", "-4", "route", "show", "dev", ifname]),
      this.#json<RawRoute[]>(netns, ["-j", "-6", "route", "show", "dev", ifname]),
    ]);
    const raw = addr?.[0];
    if (!raw) return undefined;
    const addresses = (raw.addr_info ?? [])
      .filter((a) => a.scope !== "link" && a.local !== undefined)
      .map((a) => `${a.local}/${a.prefixlen}`);
    return {
      link: toLink(raw),
      addresses,
      routes: [...(v4 ?? []).map((r) => toRoute(r, 4)), ...(v6 ?? []).map((r) => toRoute(r, 6))],
    };
  }

  async netnsExists(netns: string): Promise<boolean> {
    if (netns === "") return false;
    try {
      await stat(netns);
      return true;
    } catch {
      return false;
    }
  }

  async isOwnNetns(netns: string): Promise<boolean> {
    try {
      const [theirs, ours] = await Promise.all([stat(netns), stat("/proc/self/ns/net")]);
      return theirs.dev === ours.dev && theirs.ino === ours.ino;
    } catch {
      return false;
    }
  }

  /** `ip <args>` (in `netns` when given) parsed as JSON; undefined when the device is not there. */
  async #json<T>(netns: string | undefined, args: string[]): Promise<T | undefined> {
    const res =
      netns === undefined ? await this.#run(this.#ip, args) : await this.#runIn(netns, args);
    if (res.code !== 0) {
      if (NO_DEVICE.test(res.stderr)) return undefined;
      throw this.#failed("reading interface state", args, res);
    }
    return parseJson<T>(res.stdout.trim() === "" ? "[]" : res.stdout, args.join(" "));
  }

  /**
   * Runs `commands` with one `ip -batch` (inside `netns` when given), after
   * writing `sysctls` there; returns stdout. Falls back to one process per
   * command when a name would not survive batch parsing.
   */
  async #batch(
    netns: string | undefined,
    commands: string[][],
    what: string,
    sysctls: readonly (readonly [string, string])[] = [],
  ): Promise<string> {
    const odd = commands.flat().find((arg) => !batchSafe(arg));
    if (odd !== undefined) {
      throw new TwillError("Invalid", `${what}: "${odd}" cannot be passed to ip -batch`);
    }
    const input = commands.map((c) => c.join(" ")).join("\n") + "\n";
    let args: string[];
    if (netns === undefined) {
      args = [this.#ip, "-j", "-batch", "-"];
    } else if (sysctls.length === 0) {
      args = [this.#nsenter, `--net=${netns}`, this.#ip, "-j", "-batch", "-"];
    } else {
      // One shell in the namespace writes the sysctls, then becomes `ip`.
      const script = [
        "set -e",
        ...sysctls.map((_, i) => `printf %s "\${${2 * i + 3}}" > "${this.#proc}/\${${2 * i + 2}}"`),
        'exec "$1" -j -batch -',
      ].join("\n");
      const flat = sysctls.flatMap(([p, v]) => [p, v]);
      args = [this.#nsenter, `--net=${netns}`, "sh", "-c", script, "sh", this.#ip, ...flat];
    }
    const res = await this.#spawn(args[0] as string, args.slice(1), input);
    if (res.code !== 0) throw this.#failed(what, ["-batch", ...commands.flat()], res);
    return res.stdout;
  }

  #run(cmd: string, args: string[]): Promise<RunResult> {
    return this.#spawn(cmd, args);
  }

  #runIn(netns: string, args: string[]): Promise<RunResult> {
    return this.#spawn(this.#nsenter, [`--net=${netns}`, this.#ip, ...args]);
  }

  #failed(what: string, args: readonly string[], res: RunResult): TwillError {
    const stderr = res.stderr.trim().replace(/\s+/g, " ");
    return new TwillError(
      "Internal",
      `${what} failed: ip ${args.join(" ")}: ${stderr || `exit code ${res.code}`}`,
    );
  }

  #spawn(cmd: string, args: readonly string[], input?: string): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], timeout: this.#timeoutMs });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on("data", (c: Buffer) => out.push(c));
      child.stderr.on("data", (c: Buffer) => err.push(c));
      child.on("error", (e) =>
        reject(new TwillError("Internal", `cannot run ${cmd}: ${e.message}`, { cause: e })),
      );
      child.on("close", (code, signal) =>
        resolve({
          code: code ?? (signal ? 128 : 1),
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8") + (signal ? ` (killed by ${signal})` : ""),
        }),
      );
      child.stdin.on("error", () => undefined);
      child.stdin.end(input ?? "");
    });
  }
}
