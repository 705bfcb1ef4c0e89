// What the CNI plugin asks of the kernel, as one narrow interface: the real
// implementation drives iproute2 (iproute2.ts), the fake keeps state in
// memory (testing/fake-netlink.ts); both pass netlink-contract.ts.
//
//   host netns (the plugin's own)              workload netns (CNI_NETNS)
//   ┌───────────────────────────────┐          ┌──────────────────────────────────┐
//   │ tw1a2b3c4d5e6 ee:ee:ee:ee:ee:ee│◄──veth──►│ eth0  10.65.1.7/32  fd00::7/128   │
//   │  proxy_arp=1 proxy_delay=0    │          │ 169.254.1.1 dev eth0 scope link  │
//   │  forwarding=1 rp_filter=1     │          │ default via 169.254.1.1          │
//   │ 10.65.1.7/32 dev tw.. proto 116│          │ ::/0 via fe80::ecee:eeff:feee:eeee│
//   └───────────────────────────────┘          └──────────────────────────────────┘
//
// The workload's only gateway is 169.254.1.1, which nothing owns: the host
// answers its ARP by proxy ARP (the host needs a route covering 169.254.1.1,
// normally its default route). For IPv6 the gateway is the host side's
// link-local address, fixed by its fixed MAC (EUI-64 of ee:ee:ee:ee:ee:ee).

/**
 * The protocol number on the host routes the plugin makes: twill's own
 * (TWILL_ROUTE_PROTOCOL in src/api/schemas/felix-configuration.ts; a test
 * keeps the two equal). Not imported from there: that module builds the
 * whole FelixConfiguration schema when loaded, ~100 ms of CPU in a process
 * that lives for one CNI call.
 */
export const ROUTE_PROTOCOL = 116;

/** The MAC of every host-side workload interface. */
export const HOST_SIDE_MAC = "ee:ee:ee:ee:ee:ee";
/** The workload's IPv4 gateway (link-local, answered by proxy ARP). */
export const IPV4_GATEWAY = "169.254.1.1";
/** The workload's IPv6 gateway: the host side's link-local address (EUI-64 of HOST_SIDE_MAC). */
export const IPV6_GATEWAY = "fe80::ecee:eeff:feee:eeee";

export interface VethSpec {
  /** Host-side name, in the plugin's own network namespace. */
  hostInterface: string;
  /** The workload's network namespace (a path). */
  netns: string;
  /** The name inside the workload. */
  ifname: string;
  mtu?: number;
  /** A MAC for the workload side (runtimeConfig.mac); the kernel picks one otherwise. */
  containerMac?: string;
}

/** The workload's addresses, bare (no prefix length): one per family at most. */
export interface WorkloadAddresses {
  ipv4?: string;
  ipv6?: string;
}

export interface LinkState {
  name: string;
  mac: string;
  up: boolean;
  mtu: number;
}

export interface RouteState {
  /** Destination as a CIDR ("0.0.0.0/0" and "::/0" for default routes). */
  dst: string;
  gateway?: string;
  /** "link", "global", "host"... (absent for IPv6, which has no route scopes). */
  scope?: string;
  /** Route protocol, as a number or iproute2's name ("kernel", "boot", "116"). */
  protocol?: string;
}

export interface HostSideState {
  link: LinkState;
  routes: RouteState[];
  /** The interface's sysctls that the plugin sets, by path under /proc/sys/net/ (e.g. "ipv4/conf/X/proxy_arp"). */
  sysctls: Record<string, string>;
}

export interface WorkloadSideState {
  link: LinkState;
  /** Addresses as CIDRs, link-local ones left out. */
  addresses: string[];
  routes: RouteState[];
}

export interface Netlink {
  /**
   * Creates the veth pair: the host side in the plugin's own namespace with
   * HOST_SIDE_MAC and up, the peer directly in `netns` as `ifname` (down). TwillError
   * "AlreadyExists" when either name is taken, "NotFound" when the netns is not there.
   */
  createVeth(spec: VethSpec): Promise<void>;
  /**
   * The host side's sysctls (hostSysctls). ADD sets them before the
   * workload side comes up: with both ends up the veth has carrier.
   */
  configureHostSysctls(hostInterface: string, addresses: WorkloadAddresses): Promise<void>;
  /** Host side: link up (createVeth made it up already), a /32 (/128) route per address with twill's route protocol. */
  configureHostSide(hostInterface: string, addresses: WorkloadAddresses): Promise<void>;
  /** Workload side: link up, addresses, gateway routes. Returns the workload side's MAC. */
  configureWorkloadSide(
    netns: string,
    ifname: string,
    addresses: WorkloadAddresses,
  ): Promise<{ mac: string }>;
  /** Deletes a host interface (and so its veth peer); false when it was not there. */
  deleteHostInterface(name: string): Promise<boolean>;
  /** Deletes an interface inside a netns; false when the netns or the interface is not there. */
  deleteWorkloadInterface(netns: string, ifname: string): Promise<boolean>;
  inspectHostSide(name: string): Promise<HostSideState | undefined>;
  /** undefined when the interface is not there; TwillError "NotFound" when the netns is not. */
  inspectWorkloadSide(netns: string, ifname: string): Promise<WorkloadSideState | undefined>;
  netnsExists(netns: string): Promise<boolean>;
  /** True when `netns` is the plugin's own network namespace (never configure that as a workload). */
  isOwnNetns(netns: string): Promise<boolean>;
}

/** The host-side sysctls the plugin sets for an endpoint, path under /proc/sys/net/ → value. */
export function hostSysctls(
  hostInterface: string,
  addresses: WorkloadAddresses,
): [string, string][] {
  const out: [string, string][] = [];
  if (addresses.ipv4 !== undefined) {
    out.push(
      [`ipv4/conf/${hostInterface}/proxy_arp`, "1"],
      [`ipv4/neigh/${hostInterface}/proxy_delay`, "0"],
      [`ipv4/conf/${hostInterface}/forwarding`, "1"],
      [`ipv4/conf/${hostInterface}/rp_filter`, "1"],
    );
  }
  if (addresses.ipv6 !== undefined) {
    out.push(
      [`ipv6/conf/${hostInterface}/disable_ipv6`, "0"],
      [`ipv6/conf/${hostInterface}/accept_ra`, "0"],
      // The host side's link-local address is the workload's gateway: usable
      // at once, without waiting for duplicate address detection.
      [`ipv6/conf/${hostInterface}/accept_dad`, "0"],
      [`ipv6/conf/${hostInterface}/forwarding`, "1"],
      [`ipv6/conf/${hostInterface}/proxy_ndp`, "1"],
    );
  }
  return out;
}
