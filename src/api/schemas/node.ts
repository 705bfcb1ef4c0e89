// Node: one host running twill. The agent creates and updates its own Node
// (addresses, BGP identity); operators add labels and BGP roles (AS number,
// route reflector cluster ID).
//
// Calico's tunnel fields (IP-in-IP, VXLAN, WireGuard) are accepted so that
// Nodes exported from Calico apply unchanged; twill has no tunnels and ignores
// them. `status` is accepted for the same reason (Calico writes it).
import { z } from "zod";
import { kindById } from "../kinds.js";
import { asNumber, cidrString, dnsSubdomainName, ipAddress, resourceSchema } from "./common.js";
import type { KindSchema } from "./common.js";
import { parseIP } from "../ip.js";

const MAC = /^[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}$/;

/** An address of one family. */
const familyAddress = (family: 4 | 6) =>
  ipAddress().superRefine((s, ctx) => {
    const ip = parseIP(s);
    if (ip && ip.family !== family) {
      ctx.addIssue({ code: "custom", message: `"${s}" is not an IPv${family} address` });
    }
  });

const macAddress = () =>
  z.string().superRefine((s, ctx) => {
    if (!MAC.test(s)) ctx.addIssue({ code: "custom", message: `"${s}" is not a MAC address` });
  });

const ignored = (description: string) => ({ description, ignored: true });

const nodeBGPSchema = z
  .strictObject({
    asNumber: asNumber()
      .optional()
      .describe("This node's AS number; the cluster's (BGPConfiguration default) when omitted."),
    ipv4Address: cidrString({ allowBareIP: true, family: 4 })
      .optional()
      .describe(
        'The node\'s IPv4 address with its subnet, e.g. "10.0.1.5/24": the BGP router ID and the source of its IPv4 sessions.',
      ),
    ipv6Address: cidrString({ allowBareIP: true, family: 6 })
      .optional()
      .describe(
        'The node\'s IPv6 address with its subnet, e.g. "fd00:1::5/64", for IPv6 BGP sessions.',
      ),
    routeReflectorClusterID: familyAddress(4)
      .optional()
      .describe(
        "Makes this node a route reflector for the given cluster ID (written like an IPv4 address, e.g. 244.0.0.1).",
      ),
    ipv4IPIPTunnelAddr: familyAddress(4)
      .optional()
      .meta(
        ignored(
          "Calico's IP-in-IP tunnel address. Recognised; twill has no tunnels and ignores it.",
        ),
      ),
  })
  .superRefine((bgp, ctx) => {
    if (Object.values(bgp).every((v) => v === undefined)) {
      ctx.addIssue({
        code: "custom",
        message: "bgp must not be empty: omit it, or give at least one field",
      });
    }
  });

const nodeAddressSchema = z.strictObject({
  address: cidrString({ allowBareIP: true }).describe(
    'An address the node can be reached at, with or without a prefix length ("10.0.1.5" or "10.0.1.5/24").',
  ),
  type: z
    .enum(["CalicoNodeIP", "InternalIP", "ExternalIP"])
    .optional()
    .describe(
      "Where the address came from: the node's own (CalicoNodeIP), or the orchestrator's internal/external IP.",
    ),
});

export const nodeSpecSchema = z
  .strictObject({
    bgp: nodeBGPSchema
      .optional()
      .describe("The node's BGP identity; omit when the node does not speak BGP."),
    addresses: z
      .array(nodeAddressSchema)
      .optional()
      .describe("Addresses the node can be reached at."),
    orchRefs: z
      .array(
        z.strictObject({
          orchestrator: z.string().min(1).describe('The orchestrator, e.g. "k8s".'),
          nodeName: z.string().optional().describe("The node's name in that orchestrator."),
        }),
      )
      .optional()
      .describe("The names this node has in orchestrators."),
    interfaces: z
      .array(
        z.strictObject({
          name: z.string().optional().describe("The interface's name."),
          addresses: z
            .array(cidrString({ allowBareIP: true }).describe("An address on the interface."))
            .optional()
            .describe("The interface's addresses."),
        }),
      )
      .optional()
      .describe("The node's network interfaces and their addresses, as the agent last saw them."),
    ipv4VXLANTunnelAddr: familyAddress(4)
      .optional()
      .meta(
        ignored(
          "Calico's IPv4 VXLAN tunnel address. Recognised; twill has no tunnels and ignores it.",
        ),
      ),
    ipv6VXLANTunnelAddr: familyAddress(6)
      .optional()
      .meta(
        ignored(
          "Calico's IPv6 VXLAN tunnel address. Recognised; twill has no tunnels and ignores it.",
        ),
      ),
    vxlanTunnelMACAddr: macAddress()
      .optional()
      .meta(
        ignored("Calico's IPv4 VXLAN tunnel MAC. Recognised; twill has no tunnels and ignores it."),
      ),
    vxlanTunnelMACAddrV6: macAddress()
      .optional()
      .meta(
        ignored("Calico's IPv6 VXLAN tunnel MAC. Recognised; twill has no tunnels and ignores it."),
      ),
    wireguard: z
      .strictObject({
        interfaceIPv4Address: familyAddress(4)
          .optional()
          .describe("The IPv4 WireGuard interface address."),
        interfaceIPv6Address: familyAddress(6)
          .optional()
          .describe("The IPv6 WireGuard interface address."),
      })
      .optional()
      .meta(
        ignored(
          "Calico's WireGuard settings. Recognised; twill does not encrypt and ignores them.",
        ),
      ),
  })
  .describe("The node's addresses and BGP identity.");

export type NodeSpec = z.output<typeof nodeSpecSchema>;

export const nodeStatusSchema = z
  .strictObject({
    wireguardPublicKey: z.string().optional().describe("Calico's IPv4 WireGuard public key."),
    wireguardPublicKeyV6: z.string().optional().describe("Calico's IPv6 WireGuard public key."),
    podCIDRs: z
      .array(cidrString().describe("One range."))
      .optional()
      .describe("The orchestrator's pod ranges for this node."),
  })
  .meta(ignored("Status written by Calico. Recognised; twill ignores it."));

export const nodeSchema = resourceSchema(kindById("Node"), nodeSpecSchema, {
  name: dnsSubdomainName(),
  specOptional: true,
}).extend({ status: nodeStatusSchema.optional() });

export type Node = z.output<typeof nodeSchema>;

export const nodeKind: KindSchema = {
  schema: nodeSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "Node",
    metadata: { name: "host-1", labels: { rack: "a", "route-reflector": "true" } },
    spec: {
      bgp: {
        ipv4Address: "10.0.1.5/24",
        ipv6Address: "fd00:1::5/64",
        asNumber: 64512,
        routeReflectorClusterID: "244.0.0.1",
      },
      addresses: [{ address: "10.0.1.5/24", type: "CalicoNodeIP" }],
      orchRefs: [{ orchestrator: "k8s", nodeName: "host-1" }],
    },
  },
};
