// The lab's topology model: from a handful of options, every namespace,
// link, address, AS number, route and BGP neighbor of a lab. Pure: no I/O,
// no clocks. lab.ts turns the plan into namespaces and processes,
// render-ip-batch.ts into iproute2 commands, render-frr.ts into router
// configuration, lab-resources.ts into projectcalico.org/v3 resources.
//
// Names: every namespace is `twl-<lab>-<short>` (lab names are [a-z0-9],
// shorts are [a-z0-9] too), so `twl-<lab>-` finds exactly one lab's
// namespaces, leftovers included. Interface names are per namespace and
// short (h12, fab0, spine0), never derived from the lab name, so they stay
// far below the kernel's 15 characters.
//
// Address plan (s = site 1..2, r = rack within the site, k = rack number
// across sites, g = host number across sites, i = host within its rack):
//
//   management    172.30.0.0/16   etcd members 172.30.0.11-13, host g 172.30.1.0+g
//   rack/fabric   10.s.r.0/24     router .1, host i .(10+i)      fd00:s:r::/64
//   spine-ToR     10.s.(100+r).0/24  spine .1, ToR .2            fd00:s:(100+r)::/64
//   plain machine 10.s.200.0/24   router .1, plain .10           fd00:s:200::/64
//   site link     10.0.0.0/24     site 1 .1, site 2 .2           fd00::/64
//   workloads     IPPool 10.65.0.0/16 (/26 blocks), fd00:65::/48 (/122 blocks)
//
// Racks: leaf-spine always; reflectors with racks > 1 (ToRs and a spine
// wired as leaf-spine, hosts in the reflectors' AS; a reflector in each of
// the site's first two racks); flat never (one segment, fab<s> its router).
//
// AS numbers: flat and reflectors hosts 64511+s (one AS per site, iBGP among
// them); leaf-spine host g 64512+g (each host its own: hosts of one rack
// sharing an AS would drop each other's routes, which reach them through the
// ToR with that AS already in the path); ToR k 65100+k; spine or fabric
// router of site s 65000+s.
import { TwillError } from "../util/errors.js";

export const LAB_TOPOLOGIES = ["flat", "reflectors", "leaf-spine"] as const;
export type LabTopology = (typeof LAB_TOPOLOGIES)[number];

export interface LabOptions {
  /** The lab's name: 1-12 lower-case letters and digits, starting with a letter. */
  name: string;
  topology: LabTopology;
  /** Hosts per site. */
  hosts: number;
  /** Racks per site (leaf-spine, reflectors); 1 for flat. */
  racks: number;
  /** Workloads started on every host by `lab up`. */
  workloadsPerHost: number;
  /** etcd members. */
  etcd: 1 | 3;
  /** Dual stack: IPv6 on the fabric, in BGP and for workloads. */
  ipv6: boolean;
  /** Data centers, joined only by routers. */
  sites: 1 | 2;
}

export const DEFAULT_LAB_NAME = "lab";
export const NAMESPACE_PREFIX = "twl-";
export const MAX_HOSTS = 500;
export const MAX_RACKS = 50;
export const MAX_HOSTS_PER_RACK = 240;
export const MAX_WORKLOADS_PER_HOST = 100;

export const POOL_V4 = { cidr: "10.65.0.0/16", blockSize: 26 } as const;
export const POOL_V6 = { cidr: "fd00:65::/48", blockSize: 122 } as const;
export const MGMT_SUBNET = "172.30.0.0/16";
export const ETCD_CLIENT_PORT = 2379;
export const ETCD_PEER_PORT = 2380;
export const AGENT_HEALTH_PORT = 9099;
/** Cluster AS of flat and reflectors site 1 (Calico's default). */
export const CLUSTER_AS = 64512;

export const LAB_NAME_RULE = /^[a-z][a-z0-9]{0,11}$/;

/** Options with defaults filled in and checked; throws TwillError "Invalid" naming the option. */
export function resolveLabOptions(input: Partial<LabOptions> = {}): LabOptions {
  const topology = input.topology ?? "leaf-spine";
  if (!LAB_TOPOLOGIES.includes(topology)) {
    throw invalid("topology", `"${String(topology)}" is not one of ${LAB_TOPOLOGIES.join(", ")}`);
  }
  const name = input.name ?? DEFAULT_LAB_NAME;
  if (!LAB_NAME_RULE.test(name)) {
    throw invalid(
      "name",
      `"${name}" must be 1-12 lower-case letters and digits, starting with a letter (it prefixes namespace names)`,
    );
  }
  const sites = input.sites ?? 1;
  if (sites !== 1 && sites !== 2) throw invalid("sites", `${String(sites)} must be 1 or 2`);
  const etcd = input.etcd ?? 1;
  if (etcd !== 1 && etcd !== 3) throw invalid("etcd", `${String(etcd)} must be 1 or 3 members`);
  const racks = input.racks ?? (topology === "leaf-spine" ? 2 : 1);
  if (topology === "flat" && racks !== 1) {
    throw invalid(
      "racks",
      `${racks} racks: only the leaf-spine and reflectors topologies have racks`,
    );
  }
  const hosts = input.hosts ?? (topology === "leaf-spine" || racks > 1 ? 2 * racks : 3);
  whole("hosts", hosts, 1, MAX_HOSTS);
  whole("racks", racks, 1, MAX_RACKS);
  if (hosts * sites > MAX_HOSTS) {
    throw invalid("hosts", `${hosts * sites} hosts in all: at most ${MAX_HOSTS}`);
  }
  if (racks > hosts)
    throw invalid("racks", `${racks} racks for ${hosts} hosts: a rack needs a host`);
  if (Math.ceil(hosts / racks) > MAX_HOSTS_PER_RACK) {
    throw invalid(
      "hosts",
      `${hosts} hosts in ${racks} racks: at most ${MAX_HOSTS_PER_RACK} a rack`,
    );
  }
  const workloadsPerHost = input.workloadsPerHost ?? 2;
  whole("workloadsPerHost", workloadsPerHost, 0, MAX_WORKLOADS_PER_HOST);
  const ipv6 = input.ipv6 ?? false;
  return { name, topology, hosts, racks, workloadsPerHost, etcd, ipv6, sites };
}

function whole(field: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(field, `${String(value)} must be a whole number from ${min} to ${max}`);
  }
}

function invalid(field: string, message: string): TwillError {
  return new TwillError("Invalid", `lab option ${field}: ${message}`);
}

// --- The plan.

export type NamespaceRole = "mgmt" | "host" | "tor" | "spine" | "fabric" | "plain" | "workload";
export type RouterRole = "tor" | "spine" | "fabric";

export interface InterfacePlan {
  name: string;
  /** CIDRs, e.g. "10.1.1.11/24", "fd00:1:1::11/64". */
  addresses: string[];
  /** A bridge in the same namespace this interface is a port of. */
  master?: string;
}

export interface RoutePlan {
  /** "default" (IPv4), "::/0" (IPv6) or a CIDR. */
  to: string;
  via: string;
  dev: string;
}

export interface NamespacePlan {
  /** The short name users type: h1, tor2, spine1, fab1, plain1, mgmt, h1w1. */
  short: string;
  /** The network namespace: twl-<lab>-<short>. */
  name: string;
  role: NamespaceRole;
  site: number;
  /** Bridges created in this namespace (before any link is enslaved). */
  bridges: InterfacePlan[];
  /** Interfaces to configure (veth ends, whoever created them). */
  interfaces: InterfacePlan[];
  routes: RoutePlan[];
  /** sysctl key=value, set before links are created. */
  sysctls: [string, string][];
}

/** A veth pair, created from `from`'s namespace (short names). */
export interface LinkPlan {
  from: { ns: string; ifname: string };
  to: { ns: string; ifname: string };
}

export interface HostPlan {
  /** Short name = Node name: h1, h2, ... */
  name: string;
  ns: string;
  index: number;
  site: number;
  /** Rack number across sites (leaf-spine, reflectors with racks); undefined otherwise. */
  rack: number | undefined;
  /** Management address (CIDR) for etcd and health checks. */
  mgmt: string;
  /** Fabric address with its subnet: the Node's BGP address. */
  ipv4: string;
  ipv6: string | undefined;
  gateway4: string;
  gateway6: string | undefined;
  asNumber: number;
  routeReflector: boolean;
  labels: Record<string, string>;
}

export interface BgpNeighborPlan {
  address: string;
  asNumber: number;
  description: string;
  family: 4 | 6;
}

export interface RouterPlan {
  name: string;
  ns: string;
  role: RouterRole;
  site: number;
  /** Rack number across sites (ToRs). */
  rack: number | undefined;
  asNumber: number;
  routerId: string;
  neighbors: BgpNeighborPlan[];
}

export interface PlainPlan {
  name: string;
  ns: string;
  site: number;
  ipv4: string;
  ipv6: string | undefined;
  /** The router it sits behind. */
  router: string;
}

export interface WorkloadPlan {
  /** Short name: h<g>w<j>. Also the CNI container ID's suffix. */
  name: string;
  ns: string;
  host: string;
  labels: Record<string, string>;
}

export interface EtcdMemberPlan {
  name: string;
  address: string;
  clientUrl: string;
  peerUrl: string;
}

export interface LabPlan {
  options: LabOptions;
  /** "twl-<lab>-": every namespace of the lab starts with it. */
  prefix: string;
  namespaces: NamespacePlan[];
  links: LinkPlan[];
  hosts: HostPlan[];
  routers: RouterPlan[];
  plains: PlainPlan[];
  workloads: WorkloadPlan[];
  etcd: EtcdMemberPlan[];
  /** What agents, the CNI plugin and the CLI inside the lab use. */
  etcdEndpoints: string[];
}

export function labPrefix(name: string): string {
  return `${NAMESPACE_PREFIX}${name}-`;
}

export function namespaceName(lab: string, short: string): string {
  return `${labPrefix(lab)}${short}`;
}

/** IPv4 dotted quad from a 32-bit number. */
function v4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
}

const MGMT_ETCD_BASE = (172 * 2 ** 24 + 30 * 2 ** 16) >>> 0; // 172.30.0.0
const MGMT_HOST_BASE = MGMT_ETCD_BASE + 256; // 172.30.1.0

const APPS = ["web", "db", "cache", "api"] as const;

/** Labels of workload `index` (1-based) on a host: tenants alternate a, b; apps cycle. */
export function defaultWorkloadLabels(index: number): Record<string, string> {
  return {
    tenant: index % 2 === 1 ? "a" : "b",
    app: APPS[(index - 1) % APPS.length] ?? "web",
  };
}

/** The plan of workload `index` on `host` (add-workload uses it for the next index). */
export function planWorkload(
  lab: string,
  host: string,
  index: number,
  labels: Record<string, string> = defaultWorkloadLabels(index),
): WorkloadPlan {
  const name = `${host}w${index}`;
  return { name, ns: namespaceName(lab, name), host, labels: { ...labels } };
}

/** Sizes of `racks` racks holding `hosts` hosts, as even as can be (first racks fuller). */
export function rackSizes(hosts: number, racks: number): number[] {
  const base = Math.floor(hosts / racks);
  const extra = hosts % racks;
  return Array.from({ length: racks }, (_, r) => base + (r < extra ? 1 : 0));
}

/** True when the lab has ToR routers and a spine: leaf-spine, and reflectors with racks > 1. */
export function hasRacks(options: Pick<LabOptions, "topology" | "racks">): boolean {
  return (
    options.topology === "leaf-spine" || (options.topology === "reflectors" && options.racks > 1)
  );
}

/** Every namespace, link, address, route and peer of a lab; `options` must be resolved. */
export function planLab(options: LabOptions): LabPlan {
  const { name: lab, topology, sites, ipv6 } = options;
  const leafSpine = topology === "leaf-spine";
  // ToRs and a spine per site (leaf-spine's wiring), else one segment per site.
  const racked = hasRacks(options);
  const ns = new Map<string, NamespacePlan>();
  const links: LinkPlan[] = [];
  const hosts: HostPlan[] = [];
  const routers: RouterPlan[] = [];
  const plains: PlainPlan[] = [];

  const addNs = (short: string, role: NamespaceRole, site: number): NamespacePlan => {
    const forwarding = role === "host" || role === "tor" || role === "spine" || role === "fabric";
    const sysctls: [string, string][] = [
      // Addresses are added with nodad; new interfaces skip DAD as well.
      ["net.ipv6.conf.all.accept_dad", "0"],
      ["net.ipv6.conf.default.accept_dad", "0"],
    ];
    if (forwarding) {
      sysctls.push(
        ["net.ipv4.ip_forward", "1"],
        ["net.ipv6.conf.all.forwarding", "1"],
        // traceroute through the lab answers every probe, not one a second.
        ["net.ipv4.icmp_ratelimit", "0"],
        ["net.ipv6.icmp.ratelimit", "0"],
      );
    }
    const plan: NamespacePlan = {
      short,
      name: namespaceName(lab, short),
      role,
      site,
      bridges: [],
      interfaces: [],
      routes: [],
      sysctls,
    };
    ns.set(short, plan);
    return plan;
  };
  const nsOf = (short: string): NamespacePlan => {
    const plan = ns.get(short);
    if (!plan) throw new TwillError("Internal", `lab plan: no namespace "${short}"`);
    return plan;
  };
  interface End {
    ns: string;
    ifname: string;
    addresses: string[];
    master?: string;
  }
  const link = (from: End, to: End): void => {
    links.push({
      from: { ns: from.ns, ifname: from.ifname },
      to: { ns: to.ns, ifname: to.ifname },
    });
    for (const end of [from, to]) {
      const plan: InterfacePlan = { name: end.ifname, addresses: end.addresses };
      if (end.master !== undefined) plan.master = end.master;
      nsOf(end.ns).interfaces.push(plan);
    }
  };
  const dual = (a4: string, a6: string): string[] => (ipv6 ? [a4, a6] : [a4]);

  // Management: one bridge, etcd members on it, every host's mgmt0 a port.
  const mgmt = addNs("mgmt", "mgmt", 1);
  const etcd: EtcdMemberPlan[] = Array.from({ length: options.etcd }, (_, m) => {
    const address = v4(MGMT_ETCD_BASE + 11 + m);
    return {
      name: `m${m + 1}`,
      address,
      clientUrl: `http://${address}:${ETCD_CLIENT_PORT}`,
      peerUrl: `http://${address}:${ETCD_PEER_PORT}`,
    };
  });
  mgmt.bridges.push({ name: "br0", addresses: etcd.map((m) => `${m.address}/16`) });

  const coreOfSite = (s: number): string => (racked ? `spine${s}` : `fab${s}`);
  const coreAs = (s: number): number => 65000 + s;
  let g = 0;
  for (let s = 1; s <= sites; s++) {
    const core = coreOfSite(s);
    const coreNs = addNs(core, racked ? "spine" : "fabric", s);
    const coreRouter: RouterPlan = {
      name: core,
      ns: coreNs.name,
      role: racked ? "spine" : "fabric",
      site: s,
      rack: undefined,
      asNumber: coreAs(s),
      routerId: racked ? `10.${s}.101.1` : `10.${s}.1.1`,
      neighbors: [],
    };
    routers.push(coreRouter);
    const sizes = racked ? rackSizes(options.hosts, options.racks) : [options.hosts];
    let lastRackRouter = coreRouter;
    sizes.forEach((size, ri) => {
      const r = ri + 1;
      const k = (s - 1) * sizes.length + r;
      // The segment's router: the ToR, or in a lab without racks the fabric router itself.
      let segRouter: RouterPlan;
      let segNs: NamespacePlan;
      if (racked) {
        segNs = addNs(`tor${k}`, "tor", s);
        segRouter = {
          name: `tor${k}`,
          ns: segNs.name,
          role: "tor",
          site: s,
          rack: k,
          asNumber: 65100 + k,
          routerId: `10.${s}.${r}.1`,
          neighbors: [],
        };
        routers.push(segRouter);
        // Uplink to the spine.
        link(
          {
            ns: core,
            ifname: `tor${k}`,
            addresses: dual(`10.${s}.${100 + r}.1/24`, `fd00:${s}:${100 + r}::1/64`),
          },
          {
            ns: segNs.short,
            ifname: "spine0",
            addresses: dual(`10.${s}.${100 + r}.2/24`, `fd00:${s}:${100 + r}::2/64`),
          },
        );
        const spineSide: BgpNeighborPlan[] = [
          {
            address: `10.${s}.${100 + r}.1`,
            asNumber: coreRouter.asNumber,
            description: core,
            family: 4,
          },
        ];
        const torSide: BgpNeighborPlan[] = [
          {
            address: `10.${s}.${100 + r}.2`,
            asNumber: segRouter.asNumber,
            description: segRouter.name,
            family: 4,
          },
        ];
        if (ipv6) {
          spineSide.push({
            ...(spineSide[0] as BgpNeighborPlan),
            address: `fd00:${s}:${100 + r}::1`,
            family: 6,
          });
          torSide.push({
            ...(torSide[0] as BgpNeighborPlan),
            address: `fd00:${s}:${100 + r}::2`,
            family: 6,
          });
        }
        segRouter.neighbors.push(...spineSide);
        coreRouter.neighbors.push(...torSide);
      } else {
        segNs = coreNs;
        segRouter = coreRouter;
      }
      lastRackRouter = segRouter;
      segNs.bridges.push({
        name: "br0",
        addresses: dual(`10.${s}.${r}.1/24`, `fd00:${s}:${r}::1/64`),
      });
      for (let i = 1; i <= size; i++) {
        g++;
        const name = `h${g}`;
        const hostNs = addNs(name, "host", s);
        const ipv4 = `10.${s}.${r}.${10 + i}/24`;
        const ip6 = ipv6 ? `fd00:${s}:${r}::${10 + i}/64` : undefined;
        // Two reflectors per site: the first two hosts of the one segment,
        // or the first host of each of the first two racks.
        const routeReflector = topology === "reflectors" && (racked ? i === 1 && r <= 2 : i <= 2);
        const labels: Record<string, string> = { site: `site${s}` };
        if (racked) labels["rack"] = `rack${k}`;
        if (routeReflector) labels["route-reflector"] = "true";
        const host: HostPlan = {
          name,
          ns: hostNs.name,
          index: g,
          site: s,
          rack: racked ? k : undefined,
          mgmt: `${v4(MGMT_HOST_BASE + g)}/16`,
          ipv4,
          ipv6: ip6,
          gateway4: `10.${s}.${r}.1`,
          gateway6: ipv6 ? `fd00:${s}:${r}::1` : undefined,
          asNumber: leafSpine ? 64512 + g : CLUSTER_AS - 1 + s,
          routeReflector,
          labels,
        };
        hosts.push(host);
        link(
          { ns: "mgmt", ifname: name, addresses: [], master: "br0" },
          { ns: name, ifname: "mgmt0", addresses: [host.mgmt] },
        );
        link(
          { ns: segNs.short, ifname: name, addresses: [], master: "br0" },
          { ns: name, ifname: "fab0", addresses: ip6 === undefined ? [ipv4] : [ipv4, ip6] },
        );
        hostNs.routes.push({ to: "default", via: host.gateway4, dev: "fab0" });
        if (host.gateway6 !== undefined) {
          hostNs.routes.push({ to: "::/0", via: host.gateway6, dev: "fab0" });
        }
        // The segment's router peers with every host on it, as a ToR does
        // (with reflectors too: each host announces its own blocks to it, so
        // the routers can forward to workloads; hosts learn blocks from the
        // reflectors only, as a router's copy carries their own AS).
        segRouter.neighbors.push({
          address: ipv4.split("/")[0] ?? "",
          asNumber: host.asNumber,
          description: name,
          family: 4,
        });
        if (ip6 !== undefined) {
          segRouter.neighbors.push({
            address: ip6.split("/")[0] ?? "",
            asNumber: host.asNumber,
            description: name,
            family: 6,
          });
        }
      }
    });
    // A plain machine behind the site's last rack (or its fabric router).
    const plainName = `plain${s}`;
    const plainNs = addNs(plainName, "plain", s);
    const plain: PlainPlan = {
      name: plainName,
      ns: plainNs.name,
      site: s,
      ipv4: `10.${s}.200.10/24`,
      ipv6: ipv6 ? `fd00:${s}:200::10/64` : undefined,
      router: lastRackRouter.name,
    };
    plains.push(plain);
    link(
      {
        ns: lastRackRouter.name,
        ifname: "plain0",
        addresses: dual(`10.${s}.200.1/24`, `fd00:${s}:200::1/64`),
      },
      { ns: plainName, ifname: "eth0", addresses: dual(plain.ipv4, `fd00:${s}:200::10/64`) },
    );
    plainNs.routes.push({ to: "default", via: `10.${s}.200.1`, dev: "eth0" });
    if (ipv6) plainNs.routes.push({ to: "::/0", via: `fd00:${s}:200::1`, dev: "eth0" });
  }
  if (sites === 2) {
    // Two data centers joined only by their core routers.
    const [a, b] = [coreOfSite(1), coreOfSite(2)];
    link(
      { ns: a, ifname: "site0", addresses: dual("10.0.0.1/24", "fd00::1/64") },
      { ns: b, ifname: "site0", addresses: dual("10.0.0.2/24", "fd00::2/64") },
    );
    const ra = routers.find((r) => r.name === a);
    const rb = routers.find((r) => r.name === b);
    if (ra && rb) {
      ra.neighbors.push({ address: "10.0.0.2", asNumber: rb.asNumber, description: b, family: 4 });
      rb.neighbors.push({ address: "10.0.0.1", asNumber: ra.asNumber, description: a, family: 4 });
      if (ipv6) {
        ra.neighbors.push({ address: "fd00::2", asNumber: rb.asNumber, description: b, family: 6 });
        rb.neighbors.push({ address: "fd00::1", asNumber: ra.asNumber, description: a, family: 6 });
      }
    }
  }
  const workloads: WorkloadPlan[] = [];
  for (const host of hosts) {
    for (let j = 1; j <= options.workloadsPerHost; j++) {
      const w = planWorkload(lab, host.name, j);
      workloads.push(w);
    }
  }
  return {
    options,
    prefix: labPrefix(lab),
    namespaces: [...ns.values()],
    links,
    hosts,
    routers,
    plains,
    workloads,
    etcd,
    etcdEndpoints: etcd.map((m) => m.clientUrl),
  };
}

/** Which lab a namespace belongs to, from its name; undefined when none. */
export function labOfNamespace(name: string): string | undefined {
  const m = /^twl-([a-z][a-z0-9]{0,11})-[a-z0-9]+$/.exec(name);
  return m?.[1];
}

/** Looks a short name (h1, tor2, h1w1, plain1, mgmt) up in the plan. */
export function findNamespace(plan: LabPlan, short: string): NamespacePlan | undefined {
  return plan.namespaces.find((n) => n.short === short);
}
