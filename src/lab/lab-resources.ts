// The projectcalico.org/v3 resources a lab starts with, from its plan. Pure.
//
//   IPPool        10.65.0.0/16 blocks /26 (and fd00:65::/48 /122 with IPv6)
//   Profile       kns.default: allow everything in and out, so workloads
//                 talk before any tenant policy (the CNI plugin gives every
//                 endpoint the profile of its namespace, "default")
//   Node          one per host, with its labels (site, rack, route-reflector)
//                 and BGP identity; its agent keeps both when it registers
//   BGPConfiguration default  asNumber 64512; the node-to-node mesh only in
//                 a one-site flat lab
//   BGPPeer       how hosts reach the routers and each other:
//     flat, 1 site     the fabric router, for every host (the mesh does the rest)
//     flat, 2 sites    a mesh per site (nodeSelector = peerSelector = the site)
//                      and the site's fabric router
//     reflectors       every host of a site with the site's two reflectors
//                      (peerSelector has(route-reflector)) and with the
//                      fabric router (each host announces its own blocks
//                      there: the agent's reflectors pass on what they
//                      learned to other reflectors and clients only);
//                      with racks, with its rack's ToR instead of the
//                      fabric router (the reflector sessions are multihop
//                      iBGP across racks)
//     leaf-spine       every host of a rack with its ToR (nodeSelector rack)
import type { Resource } from "../api/resource.js";
import { CLUSTER_AS, POOL_V4, POOL_V6, hasRacks } from "./topology.js";
import type { HostPlan, LabPlan } from "./topology.js";

const API = "projectcalico.org/v3";

function resource(
  kind: string,
  name: string,
  spec: unknown,
  labels?: Record<string, string>,
): Resource {
  const metadata: Resource["metadata"] = { name };
  if (labels !== undefined) metadata.labels = { ...labels };
  return { apiVersion: API, kind, metadata, spec } as Resource;
}

/** The Node resource of a lab host. */
export function hostNode(host: HostPlan): Resource {
  const bgp: Record<string, unknown> = { ipv4Address: host.ipv4, asNumber: host.asNumber };
  if (host.ipv6 !== undefined) bgp["ipv6Address"] = host.ipv6;
  if (host.routeReflector) bgp["routeReflectorClusterID"] = `244.0.0.${host.site}`;
  return resource("Node", host.name, { bgp }, host.labels);
}

function peer(name: string, spec: Record<string, unknown>): Resource {
  return resource("BGPPeer", name, spec);
}

const address = (cidr: string): string => cidr.split("/")[0] ?? cidr;

export function labResources(plan: LabPlan): Resource[] {
  const { options } = plan;
  const out: Resource[] = [];
  out.push(
    resource("IPPool", "default-ipv4-ippool", {
      cidr: POOL_V4.cidr,
      blockSize: POOL_V4.blockSize,
      nodeSelector: "all()",
    }),
  );
  if (options.ipv6) {
    out.push(
      resource("IPPool", "default-ipv6-ippool", {
        cidr: POOL_V6.cidr,
        blockSize: POOL_V6.blockSize,
        nodeSelector: "all()",
      }),
    );
  }
  out.push(
    resource("Profile", "kns.default", {
      ingress: [{ action: "Allow" }],
      egress: [{ action: "Allow" }],
    }),
  );
  const mesh = options.topology === "flat" && options.sites === 1;
  out.push(
    resource("BGPConfiguration", "default", {
      logSeverityScreen: "Info",
      nodeToNodeMeshEnabled: mesh,
      asNumber: CLUSTER_AS,
    }),
  );
  for (const host of plan.hosts) out.push(hostNode(host));

  const routerPeers = (
    base: string,
    selector: string | undefined,
    host: HostPlan,
    asNumber: number,
  ): void => {
    const scope = selector === undefined ? {} : { nodeSelector: selector };
    out.push(peer(base, { ...scope, peerIP: host.gateway4, asNumber }));
    if (host.gateway6 !== undefined) {
      out.push(peer(`${base}-v6`, { ...scope, peerIP: host.gateway6, asNumber }));
    }
  };
  const routerAs = (name: string): number =>
    plan.routers.find((r) => r.name === name)?.asNumber ?? 0;
  const torPeers = (siteHosts: HostPlan[]): void => {
    const racks = [...new Set(siteHosts.map((h) => h.rack))];
    for (const k of racks) {
      const inRack = siteHosts.find((h) => h.rack === k);
      if (!inRack || k === undefined) continue;
      routerPeers(`lab-rack${k}-tor`, `rack == 'rack${k}'`, inRack, routerAs(`tor${k}`));
    }
  };

  for (let s = 1; s <= options.sites; s++) {
    const siteHosts = plan.hosts.filter((h) => h.site === s);
    const first = siteHosts[0];
    if (!first) continue;
    const site = `site == 'site${s}'`;
    switch (options.topology) {
      case "flat":
        if (mesh) {
          routerPeers("lab-fabric-router", undefined, first, routerAs(`fab${s}`));
        } else {
          out.push(peer(`lab-site${s}-mesh`, { nodeSelector: site, peerSelector: site }));
          routerPeers(`lab-site${s}-fabric-router`, site, first, routerAs(`fab${s}`));
        }
        break;
      case "reflectors":
        out.push(
          peer(`lab-site${s}-reflectors`, {
            nodeSelector: site,
            peerSelector: `${site} && has(route-reflector)`,
          }),
        );
        if (hasRacks(options)) torPeers(siteHosts);
        else routerPeers(`lab-site${s}-fabric-router`, site, first, routerAs(`fab${s}`));
        break;
      case "leaf-spine":
        torPeers(siteHosts);
        break;
    }
  }
  return out;
}

/** The etcd endpoints as one flag value. */
export function etcdEndpointsFlag(plan: LabPlan): string {
  return plan.etcdEndpoints.join(",");
}

/** A host's fabric address without its prefix length. */
export function hostAddress(host: HostPlan): string {
  return address(host.ipv4);
}
