// What the BGP part of the agent needs to know, gathered from the datastore
// (resources via the syncer, this host's IPAM blocks via its IPAM host key)
// and from this host's local workloads. Pure data: bgp-model.ts turns it into
// a BgpModel, render-bird.ts turns that into BIRD 2's configuration text.
import type { BGPConfiguration } from "../api/schemas/bgp-configuration.js";
import type { BGPPeer } from "../api/schemas/bgp-peer.js";
import type { IPPool } from "../api/schemas/ip-pool.js";
import type { Node } from "../api/schemas/node.js";
import type { BgpTimers } from "./bgp-model.js";

export interface BgpInputs {
  /** This host's Node name. */
  nodeName: string;
  /** Every Node resource in the cluster (this one included). */
  nodes: readonly Node[];
  /** BGPConfiguration resources: "default" and "node.<name>" are the ones read. */
  bgpConfigurations: readonly BGPConfiguration[];
  bgpPeers: readonly BGPPeer[];
  ipPools: readonly IPPool[];
  /** CIDRs of the IPAM blocks this host holds (its affinity), IPv4 and IPv6. */
  ownBlocks: readonly string[];
  /**
   * Addresses (no prefix length) of this host's local workloads. Those outside
   * ownBlocks but inside a pool are borrowed and announced as /32 (/128).
   */
  localWorkloadAddresses: readonly string[];
  /**
   * Values of the secrets BGP passwords refer to (BGPPeer password,
   * BGPConfiguration nodeMeshPassword): secret name → key → value. A session
   * whose non-optional secret is missing is rendered disabled.
   */
  secrets?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Route protocol of the agent's workload routes (deviceRouteProtocol); 116 when omitted. */
  workloadRouteProtocol?: number;
  /** Workload interface name prefix (interfacePrefix); "tw" when omitted. */
  workloadInterfacePrefix?: string;
  /** Prefixes accepted from peers besides the IP pools (and anything inside them). */
  acceptedPrefixes?: readonly string[];
  /** Overrides of DEFAULT_BGP_TIMERS (bgp-model.ts), e.g. for a benchmark. */
  timers?: Partial<BgpTimers>;
}

/** Where one BIRD instance keeps its files (one directory per node). */
export interface BirdPaths {
  /** Directory holding bird.conf, the control socket and the pid file. */
  dir: string;
  config: string;
  socket: string;
  pidFile: string;
}

export function birdPaths(dir: string): BirdPaths {
  return { dir, config: `${dir}/bird.conf`, socket: `${dir}/bird.ctl`, pidFile: `${dir}/bird.pid` };
}
