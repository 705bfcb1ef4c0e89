// Builders for BGP tests: resources go through their real schemas, so they
// carry the defaults and canonical forms the agent sees from the datastore.
import { bgpConfigurationSchema } from "../../api/schemas/bgp-configuration.js";
import type { BGPConfiguration } from "../../api/schemas/bgp-configuration.js";
import { bgpPeerSchema } from "../../api/schemas/bgp-peer.js";
import type { BGPPeer } from "../../api/schemas/bgp-peer.js";
import { ipPoolSchema } from "../../api/schemas/ip-pool.js";
import type { IPPool } from "../../api/schemas/ip-pool.js";
import { nodeSchema } from "../../api/schemas/node.js";
import type { Node } from "../../api/schemas/node.js";
import type { BgpInputs } from "../bgp-inputs.js";

const API = "projectcalico.org/v3";

export interface NodeOptions {
  v4?: string;
  v6?: string;
  as?: number;
  clusterId?: string;
  labels?: Record<string, string>;
}

export function node(name: string, o: NodeOptions = {}): Node {
  const bgp: Record<string, unknown> = {};
  if (o.v4 !== undefined) bgp["ipv4Address"] = o.v4;
  if (o.v6 !== undefined) bgp["ipv6Address"] = o.v6;
  if (o.as !== undefined) bgp["asNumber"] = o.as;
  if (o.clusterId !== undefined) bgp["routeReflectorClusterID"] = o.clusterId;
  return nodeSchema.parse({
    apiVersion: API,
    kind: "Node",
    metadata: { name, labels: o.labels ?? {} },
    spec: Object.keys(bgp).length > 0 ? { bgp } : {},
  });
}

export function pool(name: string, cidr: string, spec: Record<string, unknown> = {}): IPPool {
  return ipPoolSchema.parse({
    apiVersion: API,
    kind: "IPPool",
    metadata: { name },
    spec: { cidr, ...spec },
  });
}

export function peer(name: string, spec: Record<string, unknown>): BGPPeer {
  return bgpPeerSchema.parse({ apiVersion: API, kind: "BGPPeer", metadata: { name }, spec });
}

export function bgpConfig(name: string, spec: Record<string, unknown>): BGPConfiguration {
  return bgpConfigurationSchema.parse({
    apiVersion: API,
    kind: "BGPConfiguration",
    metadata: { name },
    spec,
  });
}

/** A three-node rack on 10.0.0.0/24 (and fd00::/64), one IPv4 pool. */
export function baseInputs(more: Partial<BgpInputs> = {}): BgpInputs {
  return {
    nodeName: "host-1",
    nodes: [
      node("host-1", { v4: "10.0.0.1/24" }),
      node("host-2", { v4: "10.0.0.2/24" }),
      node("host-3", { v4: "10.0.0.3/24" }),
    ],
    bgpConfigurations: [],
    bgpPeers: [],
    ipPools: [pool("default-v4", "10.65.0.0/16")],
    ownBlocks: ["10.65.0.0/26"],
    localWorkloadAddresses: ["10.65.0.2"],
    ...more,
  };
}
