// The registry: one schema (and one example) per kind. validate.ts and
// gen-docs.ts read it; each kind's file owns its schema and types.
import type { KindId } from "../kinds.js";
import type { KindSchema } from "./common.js";
import { bgpConfigurationKind } from "./bgp-configuration.js";
import { bgpPeerKind } from "./bgp-peer.js";
import { clusterInformationKind } from "./cluster-information.js";
import { felixConfigurationKind } from "./felix-configuration.js";
import { hostEndpointKind } from "./host-endpoint.js";
import { ipamConfigurationKind } from "./ipam-configuration.js";
import { ipPoolKind } from "./ip-pool.js";
import { ipReservationKind } from "./ip-reservation.js";
import { k8sNetworkPolicyKind } from "./k8s-network-policy.js";
import { globalNetworkPolicyKind, networkPolicyKind } from "./network-policy.js";
import { globalNetworkSetKind, networkSetKind } from "./network-set.js";
import { nodeKind } from "./node.js";
import { profileKind } from "./profile.js";
import { tierKind } from "./tier.js";
import { workloadEndpointKind } from "./workload-endpoint.js";

export const SCHEMAS: Record<KindId, KindSchema> = {
  Node: nodeKind,
  WorkloadEndpoint: workloadEndpointKind,
  HostEndpoint: hostEndpointKind,
  Profile: profileKind,
  Tier: tierKind,
  GlobalNetworkPolicy: globalNetworkPolicyKind,
  NetworkPolicy: networkPolicyKind,
  GlobalNetworkSet: globalNetworkSetKind,
  NetworkSet: networkSetKind,
  IPPool: ipPoolKind,
  IPReservation: ipReservationKind,
  IPAMConfiguration: ipamConfigurationKind,
  BGPConfiguration: bgpConfigurationKind,
  BGPPeer: bgpPeerKind,
  FelixConfiguration: felixConfigurationKind,
  ClusterInformation: clusterInformationKind,
  "NetworkPolicy.networking.k8s.io": k8sNetworkPolicyKind,
};
