// An in-memory Netlink for the CNI core's unit tests: it keeps the host's
// interfaces and each workload namespace's, behaves like the kernel where
// the plugin can tell (a veth pair lives and dies together, names clash,
// a missing netns is missing), offers dump() for comparisons, and fails a
// chosen operation on demand.
import { TwillError } from "../../util/errors.js";
import type {
  HostSideState,
  Netlink,
  RouteState,
  VethSpec,
  WorkloadAddresses,
  WorkloadSideState,
} from "../netlink.js";
import { HOST_SIDE_MAC, IPV4_GATEWAY, IPV6_GATEWAY, hostSysctls } from "../netlink.js";

interface FakeHostLink {
  mac: string;
  up: boolean;
  mtu: number;
  peer: { netns: string; ifname: string };
  routes: RouteState[];
  sysctls: Record<string, string>;
}

interface FakeWorkloadLink {
  mac: string;
  up: boolean;
  mtu: number;
  addresses: string[];
  routes: RouteState[];
}

export type FakeNetlinkOp = keyof Netlink;

export class FakeNetlink implements Netlink {
  /** The plugin's own namespace's path (isOwnNetns). */
  readonly ownNetns = "/proc/self/ns/net";
  #host = new Map<string, FakeHostLink>();
  #namespaces = new Map<string, Map<string, FakeWorkloadLink>>();
  #faults = new Map<FakeNetlinkOp, Error>();
  #macs = 0;
  /** Every call, in order (op and first argument). */
  readonly calls: string[] = [];

  addNetns(path: string): void {
    this.#namespaces.set(path, new Map());
  }

  removeNetns(path: string): void {
    const links = this.#namespaces.get(path);
    this.#namespaces.delete(path);
    // A veth whose peer's namespace goes away goes with it.
    for (const [name, link] of this.#host) {
      if (link.peer.netns === path && links?.has(link.peer.ifname)) this.#host.delete(name);
    }
  }

  /** Make the next call of `op` fail with `error`. */
  failNext(
    op: FakeNetlinkOp,
    error: Error = new TwillError("Internal", `injected ${op} failure`),
  ): void {
    this.#faults.set(op, error);
  }

  /** Remove a route the plugin made (to see CHECK notice). */
  dropHostRoute(hostInterface: string, dst: string): void {
    const link = this.#host.get(hostInterface);
    if (link) link.routes = link.routes.filter((r) => r.dst !== dst);
  }

  dump(): {
    host: Record<string, FakeHostLink>;
    namespaces: Record<string, Record<string, FakeWorkloadLink>>;
  } {
    const namespaces: Record<string, Record<string, FakeWorkloadLink>> = {};
    for (const [path, links] of this.#namespaces) namespaces[path] = Object.fromEntries(links);
    return { host: Object.fromEntries(this.#host), namespaces: structuredClone(namespaces) };
  }

  #enter(op: FakeNetlinkOp, arg: string): void {
    this.calls.push(`${op} ${arg}`);
    const fault = this.#faults.get(op);
    if (fault) {
      this.#faults.delete(op);
      throw fault;
    }
  }

  async createVeth(spec: VethSpec): Promise<void> {
    this.#enter("createVeth", spec.hostInterface);
    const ns = this.#namespaces.get(spec.netns);
    if (!ns) throw new TwillError("NotFound", `network namespace ${spec.netns} does not exist`);
    if (this.#host.has(spec.hostInterface)) {
      throw new TwillError(
        "AlreadyExists",
        `host interface "${spec.hostInterface}" already exists`,
      );
    }
    if (ns.has(spec.ifname)) {
      throw new TwillError(
        "AlreadyExists",
        `interface "${spec.ifname}" already exists in ${spec.netns}`,
      );
    }
    const mtu = spec.mtu ?? 1500;
    this.#host.set(spec.hostInterface, {
      mac: HOST_SIDE_MAC,
      up: true, // as `ip link add ... up`
      mtu,
      peer: { netns: spec.netns, ifname: spec.ifname },
      routes: [],
      sysctls: {},
    });
    this.#macs += 1;
    ns.set(spec.ifname, {
      mac:
        spec.containerMac ??
        `02:00:00:00:${(this.#macs >> 8).toString(16).padStart(2, "0")}:${(this.#macs & 0xff).toString(16).padStart(2, "0")}`,
      up: false,
      mtu,
      addresses: [],
      routes: [],
    });
  }

  async configureHostSysctls(hostInterface: string, addresses: WorkloadAddresses): Promise<void> {
    this.#enter("configureHostSysctls", hostInterface);
    const link = this.#host.get(hostInterface);
    if (!link) throw new TwillError("Internal", `no interface "${hostInterface}"`);
    for (const [path, value] of hostSysctls(hostInterface, addresses)) link.sysctls[path] = value;
  }

  async configureHostSide(hostInterface: string, addresses: WorkloadAddresses): Promise<void> {
    this.#enter("configureHostSide", hostInterface);
    const link = this.#host.get(hostInterface);
    if (!link) throw new TwillError("Internal", `no interface "${hostInterface}"`);
    link.up = true;
    if (addresses.ipv4 !== undefined) {
      link.routes.push({ dst: `${addresses.ipv4}/32`, scope: "link", protocol: "116" });
    }
    if (addresses.ipv6 !== undefined)
      link.routes.push({ dst: `${addresses.ipv6}/128`, protocol: "116" });
  }

  async configureWorkloadSide(
    netns: string,
    ifname: string,
    addresses: WorkloadAddresses,
  ): Promise<{ mac: string }> {
    this.#enter("configureWorkloadSide", `${netns} ${ifname}`);
    const link = this.#namespaces.get(netns)?.get(ifname);
    if (!link) throw new TwillError("Internal", `no interface "${ifname}" in ${netns}`);
    link.up = true;
    if (addresses.ipv4 !== undefined) {
      link.addresses.push(`${addresses.ipv4}/32`);
      link.routes.push(
        { dst: `${IPV4_GATEWAY}/32`, scope: "link" },
        { dst: "0.0.0.0/0", gateway: IPV4_GATEWAY, scope: "global" },
      );
    }
    if (addresses.ipv6 !== undefined) {
      link.addresses.push(`${addresses.ipv6}/128`);
      link.routes.push({ dst: "::/0", gateway: IPV6_GATEWAY });
    }
    return { mac: link.mac };
  }

  async deleteHostInterface(name: string): Promise<boolean> {
    this.#enter("deleteHostInterface", name);
    const link = this.#host.get(name);
    if (!link) return false;
    this.#host.delete(name);
    this.#namespaces.get(link.peer.netns)?.delete(link.peer.ifname);
    return true;
  }

  async deleteWorkloadInterface(netns: string, ifname: string): Promise<boolean> {
    this.#enter("deleteWorkloadInterface", `${netns} ${ifname}`);
    const ns = this.#namespaces.get(netns);
    if (!ns?.has(ifname)) return false;
    ns.delete(ifname);
    for (const [name, link] of this.#host) {
      if (link.peer.netns === netns && link.peer.ifname === ifname) this.#host.delete(name);
    }
    return true;
  }

  async inspectHostSide(name: string): Promise<HostSideState | undefined> {
    this.#enter("inspectHostSide", name);
    const link = this.#host.get(name);
    if (!link) return undefined;
    return {
      link: { name, mac: link.mac, up: link.up, mtu: link.mtu },
      routes: structuredClone(link.routes),
      sysctls: { ...link.sysctls },
    };
  }

  async inspectWorkloadSide(netns: string, ifname: string): Promise<WorkloadSideState | undefined> {
    this.#enter("inspectWorkloadSide", `${netns} ${ifname}`);
    const ns = this.#namespaces.get(netns);
    if (!ns) throw new TwillError("NotFound", `network namespace ${netns} does not exist`);
    const link = ns.get(ifname);
    if (!link) return undefined;
    return {
      link: { name: ifname, mac: link.mac, up: link.up, mtu: link.mtu },
      addresses: [...link.addresses],
      routes: structuredClone(link.routes),
    };
  }

  async netnsExists(netns: string): Promise<boolean> {
    return this.#namespaces.has(netns);
  }

  async isOwnNetns(netns: string): Promise<boolean> {
    return netns === this.ownNetns;
  }
}
