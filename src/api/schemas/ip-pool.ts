// IPPool: a range of workload addresses that IPAM splits into blocks, each
// claimed by one host and announced over BGP as one route.
//
// Invariants of a validated pool (what gets stored):
// - `cidr` is canonical text with no host bits ("10.65.0.0/16"), outside
//   the link-local ranges.
// - `blockSize` is set: 26 for IPv4 and 122 for IPv6 unless given, within
//   20-32 (IPv4) or 116-128 (IPv6), and a block fits in the pool (unless the
//   pool is disabled, as in Calico).
// - `ipipMode` and `vxlanMode` are "Never": twill routes natively and has no
//   overlay. The fields stay so that Calico manifests carrying "Never" apply
//   unchanged; anything else is refused with the reason.
import { z } from "zod";
import { kindById } from "../kinds.js";
import { formatCIDR, parseCIDR, cidrOverlaps } from "../ip.js";
import type { CIDR } from "../ip.js";
import { cidrString, resourceSchema, selectorString } from "./common.js";
import type { KindSchema } from "./common.js";

const LINK_LOCAL: readonly CIDR[] = [
  parseCIDR("169.254.0.0/16") as CIDR,
  parseCIDR("fe80::/10") as CIDR,
];

/** Smallest and largest block prefix length per family, as in Calico. */
export const BLOCK_SIZE_RANGE = { 4: { min: 20, max: 32 }, 6: { min: 116, max: 128 } } as const;
/** Block prefix length used when a pool does not give one. */
export const DEFAULT_BLOCK_SIZE = { 4: 26, 6: 122 } as const;

const ENCAP_MODES = ["Never", "Always", "CrossSubnet"] as const;

/** An overlay mode field: accepted for compatibility, only "Never" allowed. */
const encapMode = (overlay: string) =>
  z
    .enum(ENCAP_MODES)
    .superRefine((mode, ctx) => {
      if (mode !== "Never") {
        ctx.addIssue({
          code: "custom",
          message: `"${mode}" is not supported: twill routes natively and has no ${overlay} overlay; use "Never"`,
        });
      }
    })
    .default("Never");

const ALLOWED_USES = ["Workload", "Tunnel", "LoadBalancer"] as const;
type AllowedUse = (typeof ALLOWED_USES)[number];

const ipPoolSpecFields = z.strictObject({
  cidr: cidrString({ allowBareIP: true }).describe(
    "The pool's address range, e.g. 10.65.0.0/16 or fd00:65::/48. Host bits must be clear; stored in canonical form.",
  ),
  blockSize: z.number().int().optional().meta({
    description:
      "Prefix length of the blocks hosts claim from this pool: 20-32 for IPv4, 116-128 for IPv6, and no shorter than the pool's own prefix.",
    defaultText: "26 (IPv4), 122 (IPv6)",
  }),
  ipipMode: encapMode("IP-in-IP").describe(
    'IP-in-IP encapsulation. Accepted for compatibility with Calico manifests; only "Never" is allowed, since twill routes natively.',
  ),
  vxlanMode: encapMode("VXLAN").describe(
    'VXLAN encapsulation. Accepted for compatibility with Calico manifests; only "Never" is allowed, since twill routes natively.',
  ),
  natOutgoing: z
    .boolean()
    .default(false)
    .describe(
      "Masquerade traffic from workloads in this pool to destinations outside every pool to the host's address.",
    ),
  disabled: z
    .boolean()
    .default(false)
    .describe("When true, IPAM hands out no new addresses from this pool; existing ones stay."),
  disableBGPExport: z
    .boolean()
    .default(false)
    .describe("When true, the pool's blocks are not announced to BGP peers."),
  nodeSelector: selectorString()
    .default("all()")
    .describe("Which nodes may claim blocks from this pool (a selector over Node labels)."),
  namespaceSelector: selectorString()
    .optional()
    .describe(
      "Which namespaces' workloads may take addresses from this pool (a selector over namespace labels); all when omitted.",
    ),
  allowedUses: z
    .array(z.enum(ALLOWED_USES).describe("One use: Workload, Tunnel or LoadBalancer."))
    .optional()
    .meta({
      description:
        "What the pool's addresses are for: Workload and Tunnel, or LoadBalancer alone (addresses for Service load balancers).",
      default: ["Workload", "Tunnel"],
    }),
  assignmentMode: z
    .enum(["Automatic", "Manual"])
    .default("Automatic")
    .describe(
      "Automatic: IPAM picks from this pool on its own. Manual: only when a workload asks for this pool by name.",
    ),
});

type IPPoolSpecFields = z.output<typeof ipPoolSpecFields>;

/** The stored spec: every default filled in, `cidr` canonical. */
export type IPPoolSpec = Omit<IPPoolSpecFields, "blockSize" | "allowedUses"> & {
  blockSize: number;
  allowedUses: AllowedUse[];
};

// Runs even when some fields failed (so every error is reported at once):
// each field is type-checked before use, and a bad one is left to its own error.
function checkPool(spec: IPPoolSpecFields, ctx: z.core.$RefinementCtx<IPPoolSpecFields>): void {
  const cidr =
    typeof spec.cidr === "string" ? parseCIDR(spec.cidr, { allowBareIP: true }) : undefined;
  if (!cidr) return; // already reported by the field
  if (cidr.hostBitsSet) {
    ctx.addIssue({
      code: "custom",
      path: ["cidr"],
      message: `"${spec.cidr}" has host bits set: the pool's network is "${formatCIDR(cidr)}"`,
    });
  }
  for (const ll of LINK_LOCAL) {
    if (cidrOverlaps(ll, cidr)) {
      ctx.addIssue({
        code: "custom",
        path: ["cidr"],
        message: `"${spec.cidr}" overlaps the link-local range ${formatCIDR(ll)}, which twill uses between workloads and their host`,
      });
    }
  }
  const range = BLOCK_SIZE_RANGE[cidr.family];
  const blockSize = spec.blockSize ?? DEFAULT_BLOCK_SIZE[cidr.family];
  const blockSizeValid = typeof blockSize === "number" && Number.isInteger(blockSize); // else reported by the field
  if (blockSizeValid && (blockSize < range.min || blockSize > range.max)) {
    ctx.addIssue({
      code: "custom",
      path: ["blockSize"],
      message: `block size ${blockSize} is out of range for an IPv${cidr.family} pool: use ${range.min}-${range.max}`,
    });
  } else if (blockSizeValid && spec.disabled !== true && cidr.prefixLength > blockSize) {
    ctx.addIssue({
      code: "custom",
      path: ["blockSize"],
      message: `pool "${spec.cidr}" is smaller than one /${blockSize} block: use a block size of at least ${cidr.prefixLength} or a larger pool`,
    });
  }
  const uses = Array.isArray(spec.allowedUses) ? spec.allowedUses : [];
  const seen = new Set<string>();
  uses.forEach((use, i) => {
    if (seen.has(use)) {
      ctx.addIssue({
        code: "custom",
        path: ["allowedUses", i],
        message: `"${use}" is listed twice`,
      });
    }
    seen.add(use);
  });
  if (seen.has("LoadBalancer")) {
    if (seen.size > 1) {
      ctx.addIssue({
        code: "custom",
        path: ["allowedUses"],
        message: `LoadBalancer cannot be combined with ${[...seen].filter((u) => u !== "LoadBalancer").join(" or ")} in one pool`,
      });
    }
    if (spec.disableBGPExport === true) {
      ctx.addIssue({
        code: "custom",
        path: ["disableBGPExport"],
        message: "a LoadBalancer pool exists to be announced: disableBGPExport must be false",
      });
    }
    if (typeof spec.nodeSelector === "string" && spec.nodeSelector !== "all()") {
      ctx.addIssue({
        code: "custom",
        path: ["nodeSelector"],
        message: `a LoadBalancer pool is used by every node: nodeSelector must be "all()", got "${spec.nodeSelector}"`,
      });
    }
  }
}

export const ipPoolSpecSchema = ipPoolSpecFields
  .superRefine(checkPool, { when: () => true })
  .transform((spec): IPPoolSpec => {
    const cidr = parseCIDR(spec.cidr, { allowBareIP: true }) as CIDR;
    const allowedUses: AllowedUse[] =
      spec.allowedUses && spec.allowedUses.length > 0
        ? [...spec.allowedUses]
        : ["Workload", "Tunnel"];
    return {
      ...spec,
      cidr: formatCIDR(cidr),
      blockSize: spec.blockSize ?? DEFAULT_BLOCK_SIZE[cidr.family],
      allowedUses,
    };
  })
  .describe("The pool's range and how its addresses are handed out and routed.");

export const ipPoolSchema = resourceSchema(kindById("IPPool"), ipPoolSpecSchema);

export type IPPool = z.output<typeof ipPoolSchema>;

export const ipPoolKind: KindSchema = {
  schema: ipPoolSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "IPPool",
    metadata: { name: "rack-a-v4" },
    spec: {
      cidr: "10.65.0.0/16",
      blockSize: 26,
      natOutgoing: true,
      nodeSelector: "rack == 'a'",
    },
  },
};
