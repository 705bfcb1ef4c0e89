// BGPPeer: BGP sessions beyond the node-to-node mesh: to a router (peerIP
// and asNumber), to other twill nodes chosen by label (peerSelector, e.g.
// route reflectors), or to workloads on the node (localWorkloadSelector).
// Which nodes hold the sessions: `node`, `nodeSelector`, or every node.
//
// Calico's rules are enforced, plus two of twill's: a peer must say whom it
// peers with, and a peerIP needs an AS number (BIRD cannot open a session
// without one). BGPFilter is not a twill kind, so `filters` must be empty
// rather than silently not filtering.
import { z } from "zod";
import { kindById } from "../kinds.js";
import { parseIP } from "../ip.js";
import type { IPAddress } from "../ip.js";
import {
  asNumber,
  dnsSubdomainName,
  durationString,
  ipAddress,
  resourceSchema,
  selectorString,
} from "./common.js";
import type { KindSchema } from "./common.js";
import { bgpPasswordSchema } from "./bgp-configuration.js";

/** A peer address as written in `peerIP`: the address and, when given, the port. */
export interface PeerAddress {
  ip: IPAddress;
  /** The address without brackets or port. */
  address: string;
  port?: number;
}

/** Parses "10.0.0.1", "10.0.0.1:179", "fd00::1" or "[fd00::1]:179"; undefined when invalid. */
export function parsePeerIP(text: string): PeerAddress | undefined {
  let address = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\]:([0-9]+)$/.exec(text);
  const v4WithPort = /^([0-9.]+):([0-9]+)$/.exec(text);
  if (bracketed) {
    address = bracketed[1] ?? "";
    portText = bracketed[2];
  } else if (v4WithPort) {
    address = v4WithPort[1] ?? "";
    portText = v4WithPort[2];
  }
  const ip = parseIP(address);
  if (!ip) return undefined;
  if (bracketed && ip.family !== 6) return undefined;
  if (v4WithPort && ip.family !== 4) return undefined;
  if (portText === undefined) return { ip, address };
  const port = Number(portText);
  if (portText.length > 5 || port < 1 || port > 65535) return undefined;
  return { ip, address, port };
}

const peerIPString = () =>
  z.string().superRefine((s, ctx) => {
    if (!parsePeerIP(s)) {
      ctx.addIssue({
        code: "custom",
        message: `"${s}" is not a peer address: use an IP, "<IPv4>:<port>" or "[<IPv6>]:<port>" with a port 1-65535`,
      });
    }
  });

const bgpPeerSpecFields = z.strictObject({
  node: dnsSubdomainName()
    .optional()
    .describe(
      "The one node that holds this peering. With neither node nor nodeSelector, every node does.",
    ),
  nodeSelector: selectorString()
    .optional()
    .describe(
      "The nodes that hold this peering (a selector over Node labels). Exclusive with node.",
    ),
  peerIP: peerIPString()
    .optional()
    .describe(
      'The peer\'s address, optionally with a port: "10.0.0.1", "10.0.0.1:179" or "[fd00::1]:179". Needs asNumber.',
    ),
  asNumber: asNumber()
    .optional()
    .describe(
      "The peer's AS number (number or asdot X.Y). Required with peerIP and localWorkloadSelector.",
    ),
  peerSelector: selectorString()
    .optional()
    .describe(
      "Peer with the twill nodes this selects (e.g. route reflectors), using their own addresses and AS numbers.",
    ),
  localWorkloadSelector: selectorString()
    .optional()
    .describe(
      "Peer with the workloads on the node that this selects (a selector over workload labels). Needs asNumber.",
    ),
  localASNumber: asNumber()
    .optional()
    .describe("The AS number the node presents on this peering instead of its own."),
  keepOriginalNextHop: z
    .boolean()
    .default(false)
    .describe(
      "Announce routes with their original next hop rather than the node's own address. Deprecated by nextHopMode.",
    ),
  nextHopMode: z
    .enum(["Auto", "Self", "Keep"])
    .optional()
    .describe(
      "Next hop of announced routes: Auto (BGP's usual rules), Self (always this node) or Keep (never rewritten).",
    ),
  password: bgpPasswordSchema
    .optional()
    .describe("A password (TCP MD5) for the sessions, from a secret."),
  sourceAddress: z
    .enum(["UseNodeIP", "None"])
    .default("UseNodeIP")
    .describe(
      "Source address of the sessions: the node's BGP address (UseNodeIP) or the kernel's choice (None).",
    ),
  maxRestartTime: durationString()
    .optional()
    .describe("Graceful restart time, e.g. 120s (BIRD's default when omitted)."),
  keepaliveTime: durationString()
    .optional()
    .describe("Interval between BGP keepalives, e.g. 20s (BIRD's default when omitted)."),
  numAllowedLocalASNumbers: z
    .number()
    .int()
    .min(0)
    .max(255)
    .optional()
    .describe(
      "How many times the node's own AS may appear in a received path. Weakens loop prevention; only for designs that need it.",
    ),
  ttlSecurity: z
    .number()
    .int()
    .min(0)
    .max(255)
    .optional()
    .describe(
      "GTSM: the number of hops to the peer; packets arriving with a lower TTL are dropped. 0 turns it off.",
    ),
  reachableBy: ipAddress()
    .optional()
    .describe(
      "A gateway to reach the peer through: a host route to peerIP via this address is installed.",
    ),
  reversePeering: z
    .enum(["Auto", "Manual"])
    .optional()
    .describe(
      "For peerSelector peerings: whether the selected nodes peer back automatically (Auto) or need their own BGPPeer (Manual).",
    ),
  filters: z
    .array(z.string().describe("A BGPFilter's name."))
    .optional()
    .describe("BGPFilters to apply. twill has no BGPFilter kind, so this must be empty."),
});

type BGPPeerSpecFields = z.output<typeof bgpPeerSpecFields>;

function checkPeer(spec: BGPPeerSpecFields, ctx: z.core.$RefinementCtx<BGPPeerSpecFields>): void {
  // Runs even when some fields failed; fields are only tested for presence.
  const has = (v: unknown) => v !== undefined && v !== "";
  const issue = (path: string, message: string) =>
    ctx.addIssue({ code: "custom", path: [path], message });
  if (has(spec.node) && has(spec.nodeSelector)) {
    issue("node", "node and nodeSelector are exclusive: name one node or select nodes, not both");
  }
  const targets = (["peerIP", "peerSelector", "localWorkloadSelector"] as const).filter((f) =>
    has(spec[f]),
  );
  if (targets.length === 0) {
    ctx.addIssue({
      code: "custom",
      path: [],
      message:
        "a peer needs one of peerIP, peerSelector or localWorkloadSelector to say whom to peer with",
    });
  } else if (targets.length > 1) {
    issue(targets[1] ?? "peerIP", `${targets.join(" and ")} are exclusive: give exactly one`);
  }
  const asn = spec.asNumber;
  if (has(spec.peerSelector) && asn !== undefined && asn !== 0) {
    issue(
      "asNumber",
      "asNumber must be empty with peerSelector: the selected nodes' own AS numbers are used",
    );
  }
  for (const f of ["peerIP", "localWorkloadSelector"] as const) {
    if (has(spec[f]) && !has(spec.peerSelector) && (asn === undefined || asn === 0)) {
      issue("asNumber", `asNumber is required with ${f}: the peer's AS number (1-4294967295)`);
    }
  }
  if (has(spec.reachableBy)) {
    if (!has(spec.peerIP)) {
      issue("reachableBy", "reachableBy needs peerIP: it is the gateway towards that address");
    } else if (typeof spec.peerIP === "string" && typeof spec.reachableBy === "string") {
      const peer = parsePeerIP(spec.peerIP);
      const via = parseIP(spec.reachableBy);
      if (peer && via && peer.ip.family !== via.family) {
        issue(
          "reachableBy",
          `reachableBy "${spec.reachableBy}" is IPv${via.family} but peerIP "${spec.peerIP}" is IPv${peer.ip.family}`,
        );
      }
    }
  }
  if (spec.keepOriginalNextHop === true && has(spec.nextHopMode)) {
    issue(
      "keepOriginalNextHop",
      "keepOriginalNextHop is deprecated and cannot be true when nextHopMode is set",
    );
  }
  if (Array.isArray(spec.filters) && spec.filters.length > 0) {
    issue(
      "filters",
      "twill does not implement BGPFilter: remove filters (routes would otherwise go unfiltered)",
    );
  }
}

export const bgpPeerSpecSchema = bgpPeerSpecFields
  .superRefine(checkPeer, { when: () => true })
  .describe("Who peers with whom, and how.");

export type BGPPeerSpec = z.output<typeof bgpPeerSpecSchema>;

export const bgpPeerSchema = resourceSchema(kindById("BGPPeer"), bgpPeerSpecSchema);

export type BGPPeer = z.output<typeof bgpPeerSchema>;

export const bgpPeerKind: KindSchema = {
  schema: bgpPeerSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "BGPPeer",
    metadata: { name: "rack-a-tor" },
    spec: {
      nodeSelector: "rack == 'a'",
      peerIP: "10.0.1.1",
      asNumber: 65001,
      password: { secretKeyRef: { name: "bgp-secrets", key: "rack-a" } },
    },
  },
};
