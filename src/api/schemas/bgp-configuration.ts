// BGPConfiguration: the cluster's BGP settings ("default") and per-node
// overrides ("node.<node name>").
//
// As in Calico, a node's resource may override only logSeverityScreen,
// listenPort and prefixAdvertisements (with the communities they name);
// everything else is cluster-wide and is refused on a node's resource, with
// the reason, instead of being silently ignored. Defaults (AS 64512, the
// node-to-node mesh on, port 179, log level Info) are filled in only on
// "default": filling them in on a node's resource would override the
// cluster's values.
import { z } from "zod";
import { kindById } from "../kinds.js";
import { parseIP } from "../ip.js";
import {
  asNumber,
  configNameNode,
  dnsSubdomainName,
  durationString,
  ipAddress,
  maskedCidrString,
  nodeScopedConfigName,
  resourceSchema,
} from "./common.js";
import type { KindSchema } from "./common.js";

/** Calico's defaults for the cluster-wide BGPConfiguration. */
export const BGP_CONFIGURATION_DEFAULTS = {
  logSeverityScreen: "Info",
  nodeToNodeMeshEnabled: true,
  asNumber: 64512,
  listenPort: 179,
} as const;

/** Fields a node's BGPConfiguration ("node.<name>") may set. */
export const PER_NODE_BGP_FIELDS = [
  "logSeverityScreen",
  "listenPort",
  "prefixAdvertisements",
  "communities",
] as const;

const STANDARD_COMMUNITY = /^(\d+):(\d+)$/;
const LARGE_COMMUNITY = /^(\d+):(\d+):(\d+)$/;

/** Why `value` is not a BGP community ("aa:nn" of 16-bit or "aa:nn:mm" of 32-bit numbers), or undefined. */
export function communityValueProblem(value: string): string | undefined {
  const std = STANDARD_COMMUNITY.exec(value);
  if (std) {
    return std.slice(1).every((n) => Number(n) <= 65535)
      ? undefined
      : `community "${value}": a standard community is two 16-bit numbers (0-65535), "aa:nn"`;
  }
  const large = LARGE_COMMUNITY.exec(value);
  if (large) {
    return large.slice(1).every((n) => Number(n) <= 4294967295)
      ? undefined
      : `community "${value}": a large community is three 32-bit numbers (0-4294967295), "aa:nn:mm"`;
  }
  return `"${value}" is not a community: use "aa:nn" (standard) or "aa:nn:mm" (large)`;
}

/** A reference to a key of a Kubernetes-style Secret holding a BGP password. */
export const bgpPasswordSchema = z.strictObject({
  secretKeyRef: z
    .strictObject({
      name: z.string().min(1).describe("The secret's name."),
      key: z.string().min(1).describe("The key within the secret whose value is the password."),
      optional: z
        .boolean()
        .optional()
        .describe("When true, a missing secret or key means no password."),
    })
    .describe("Where the password is kept."),
});

const LOG_LEVELS = ["Trace", "Debug", "Info", "Warning", "Error", "Fatal"] as const;

const cidrBlocks = () =>
  z
    .array(
      z.strictObject({
        cidr: maskedCidrString({ allowBareIP: true }).describe("A range, e.g. 10.96.0.0/12."),
      }),
    )
    .optional();

const familyAddress = (family: 4 | 6) =>
  ipAddress().superRefine((s, ctx) => {
    const ip = parseIP(s);
    if (ip && ip.family !== family) {
      ctx.addIssue({ code: "custom", message: `"${s}" is not an IPv${family} address` });
    }
  });

// `defaultText` too: zod leaves `default` out of the JSON Schema of transforming fields (asNumber).
const withDefault = <T extends z.ZodType>(schema: T, value: unknown, description: string) =>
  schema.optional().meta({ description, default: value, defaultText: JSON.stringify(value) });

const bgpConfigurationSpecFields = z.strictObject({
  logSeverityScreen: withDefault(
    z.enum(LOG_LEVELS),
    BGP_CONFIGURATION_DEFAULTS.logSeverityScreen,
    "How much BIRD and the BGP supervisor log: Trace, Debug, Info, Warning, Error or Fatal.",
  ),
  nodeToNodeMeshEnabled: withDefault(
    z.boolean(),
    BGP_CONFIGURATION_DEFAULTS.nodeToNodeMeshEnabled,
    "Every node peers with every other node. Turn off when route reflectors or top-of-rack routers carry the routes. Cluster-wide only.",
  ),
  asNumber: withDefault(
    asNumber(),
    BGP_CONFIGURATION_DEFAULTS.asNumber,
    "The AS number of nodes that do not set their own (number or asdot X.Y). Cluster-wide only.",
  ),
  listenPort: withDefault(
    z.number().int().min(1).max(65535),
    BGP_CONFIGURATION_DEFAULTS.listenPort,
    "The TCP port BIRD listens on for BGP.",
  ),
  bindMode: z
    .enum(["None", "NodeIP"])
    .optional()
    .describe(
      "Where BIRD listens: on every address (None, the behaviour when omitted) or only on the node's BGP address (NodeIP). Cluster-wide only.",
    ),
  serviceClusterIPs: cidrBlocks().describe(
    "Service cluster IP ranges to announce from every node. Cluster-wide only.",
  ),
  serviceExternalIPs: cidrBlocks().describe(
    "Service external IP ranges to announce; an external IP is announced only inside one of these. Cluster-wide only.",
  ),
  serviceLoadBalancerIPs: cidrBlocks().describe(
    "Service load balancer IP ranges to announce; a load balancer IP is announced only inside one of these. Cluster-wide only.",
  ),
  serviceLoadBalancerAggregation: z
    .enum(["Enabled", "Disabled"])
    .optional()
    .describe(
      "Whether load balancer IPs are announced as their ranges (Enabled) or one by one (Disabled). Cluster-wide only.",
    ),
  communities: z
    .array(
      z.strictObject({
        name: dnsSubdomainName().describe(
          "A name for the community, used in prefixAdvertisements.",
        ),
        value: z
          .string()
          .superRefine((v, ctx) => {
            const p = communityValueProblem(v);
            if (p) ctx.addIssue({ code: "custom", message: p });
          })
          .describe(
            'The community: "aa:nn" (standard, 16-bit parts) or "aa:nn:mm" (large, 32-bit parts).',
          ),
      }),
    )
    .optional()
    .describe("Named BGP communities, for use in prefixAdvertisements."),
  prefixAdvertisements: z
    .array(
      z.strictObject({
        cidr: maskedCidrString({ allowBareIP: true }).describe(
          "The announced range these communities apply to.",
        ),
        communities: z
          .array(z.string().describe("A community's name from communities, or a literal value."))
          .min(1)
          .describe(
            "Communities to attach when announcing the range: names from communities or literal values.",
          ),
      }),
    )
    .optional()
    .describe("Communities to attach to announcements of particular ranges."),
  nodeMeshPassword: bgpPasswordSchema
    .optional()
    .describe(
      "A password (TCP MD5) for the node-to-node mesh sessions. Cluster-wide only; needs the mesh on.",
    ),
  nodeMeshMaxRestartTime: durationString()
    .optional()
    .describe(
      "Graceful restart time for mesh sessions, e.g. 120s (BIRD's default when omitted). Cluster-wide only; needs the mesh on.",
    ),
  ignoredInterfaces: z
    .array(
      z
        .string()
        .regex(
          /^[a-zA-Z0-9_.*-]{1,15}$/,
          "an interface name or pattern: 1-15 of letters, digits, '_', '.', '-', '*'",
        )
        .refine((s) => s !== "*", 'ignoring every interface ("*") is not allowed')
        .describe("An interface name; '*' matches any characters."),
    )
    .optional()
    .describe("Interfaces whose device routes BIRD must not pick up. Cluster-wide only."),
  localWorkloadPeeringIPV4: familyAddress(4)
    .optional()
    .describe(
      "The IPv4 address workloads on a node use to peer with that node. Cluster-wide only.",
    ),
  localWorkloadPeeringIPV6: familyAddress(6)
    .optional()
    .describe(
      "The IPv6 address workloads on a node use to peer with that node. Cluster-wide only.",
    ),
});

type BGPConfigurationSpecFields = z.output<typeof bgpConfigurationSpecFields>;

function checkSpec(
  spec: BGPConfigurationSpecFields,
  ctx: z.core.$RefinementCtx<BGPConfigurationSpecFields>,
): void {
  const names = new Set((spec.communities ?? []).map((c) => c.name));
  if ((spec.communities?.length ?? 0) > 0 && (spec.prefixAdvertisements?.length ?? 0) === 0) {
    ctx.addIssue({
      code: "custom",
      path: ["communities"],
      message: "communities are defined but no prefixAdvertisements use them",
    });
  }
  spec.prefixAdvertisements?.forEach((pa, i) => {
    pa.communities.forEach((c, j) => {
      if (names.has(c)) return;
      if (STANDARD_COMMUNITY.test(c) || LARGE_COMMUNITY.test(c)) {
        const p = communityValueProblem(c);
        if (p)
          ctx.addIssue({
            code: "custom",
            path: ["prefixAdvertisements", i, "communities", j],
            message: p,
          });
        return;
      }
      ctx.addIssue({
        code: "custom",
        path: ["prefixAdvertisements", i, "communities", j],
        message: `"${c}" is neither a community named in communities nor a value "aa:nn" / "aa:nn:mm"`,
      });
    });
  });
  if (spec.nodeToNodeMeshEnabled === false) {
    for (const field of ["nodeMeshPassword", "nodeMeshMaxRestartTime"] as const) {
      if (spec[field] !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: `${field} applies to the node-to-node mesh, which nodeToNodeMeshEnabled turns off`,
        });
      }
    }
  }
}

export const bgpConfigurationSpecSchema = bgpConfigurationSpecFields
  .superRefine(checkSpec)
  .prefault({})
  .describe(
    'BGP settings for the cluster (name "default") or overrides for one node (name "node.<node name>"). Defaults are filled in on "default" only.',
  );

export type BGPConfigurationSpec = z.output<typeof bgpConfigurationSpecSchema>;

const always = { when: () => true };

export const bgpConfigurationSchema = resourceSchema(
  kindById("BGPConfiguration"),
  bgpConfigurationSpecSchema,
  {
    name: nodeScopedConfigName("BGPConfiguration"),
  },
)
  .superRefine((res, ctx) => {
    // Runs even when other fields failed, so every error is reported at once.
    const name: unknown = res.metadata?.name;
    const spec: unknown = res.spec;
    if (typeof name !== "string" || configNameNode(name) === undefined) return;
    if (typeof spec !== "object" || spec === null) return;
    const allowed = new Set<string>(PER_NODE_BGP_FIELDS);
    for (const [field, value] of Object.entries(spec)) {
      if (value === undefined || allowed.has(field) || !(field in bgpConfigurationSpecFields.shape))
        continue;
      ctx.addIssue({
        code: "custom",
        path: ["spec", field],
        message: `${field} is cluster-wide: set it in the BGPConfiguration named "default"; a node's BGPConfiguration may set only ${PER_NODE_BGP_FIELDS.join(", ")}`,
      });
    }
  }, always)
  .transform((res) =>
    res.metadata.name === "default"
      ? { ...res, spec: { ...BGP_CONFIGURATION_DEFAULTS, ...res.spec } }
      : res,
  );

export type BGPConfiguration = z.output<typeof bgpConfigurationSchema>;

export const bgpConfigurationKind: KindSchema = {
  schema: bgpConfigurationSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "BGPConfiguration",
    metadata: { name: "default" },
    spec: {
      asNumber: 64512,
      nodeToNodeMeshEnabled: false,
      serviceClusterIPs: [{ cidr: "10.96.0.0/12" }],
      communities: [{ name: "rack-local", value: "64512:100" }],
      prefixAdvertisements: [{ cidr: "10.65.0.0/16", communities: ["rack-local", "64512:300:7"] }],
    },
  },
};
