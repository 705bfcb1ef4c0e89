// GlobalNetworkSet and NetworkSet: labelled lists of CIDRs, so that rule
// selectors can match addresses outside the cluster (or groups of them) the
// way they match endpoints. A NetworkSet is visible to the policies of its
// namespace; a GlobalNetworkSet to every policy.
//
// Calico reserves the label projectcalico.org/namespace (it carries an
// endpoint's namespace in selectors), so a network set may not set it.
import { z } from "zod";
import { kindById } from "../kinds.js";
import type { KindSchema } from "./common.js";
import { cidrString, resourceSchema } from "./common.js";
import type { Loose } from "./rule.js";
import { looseCheck, looseObject } from "./rule.js";

const RESERVED_NAMESPACE_LABEL = "projectcalico.org/namespace";

const networkSetSpecShape = {
  nets: z
    .array(cidrString({ allowBareIP: true }))
    .optional()
    .describe("The networks in the set: CIDRs or single addresses, IPv4 and IPv6 may be mixed."),
};

/** Rejects the label Calico reserves for namespaces. */
function checkReservedLabel(resource: Loose, ctx: z.RefinementCtx): void {
  const labels = looseObject(looseObject(resource["metadata"])?.["labels"]);
  if (labels && RESERVED_NAMESPACE_LABEL in labels) {
    ctx.addIssue({
      code: "custom",
      path: ["metadata", "labels", RESERVED_NAMESPACE_LABEL],
      message: `the label "${RESERVED_NAMESPACE_LABEL}" is reserved: Calico sets it from an endpoint's namespace`,
    });
  }
}

export const globalNetworkSetSpecSchema = z.strictObject(networkSetSpecShape);

export const globalNetworkSetSchema = resourceSchema(
  kindById("GlobalNetworkSet"),
  globalNetworkSetSpecSchema,
  {
    specOptional: true,
  },
).superRefine(...looseCheck(checkReservedLabel));

export type GlobalNetworkSetSpec = z.output<typeof globalNetworkSetSpecSchema>;
export type GlobalNetworkSet = z.output<typeof globalNetworkSetSchema>;

export const globalNetworkSetKind: KindSchema = {
  schema: globalNetworkSetSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkSet",
    metadata: { name: "office-networks", labels: { role: "office" } },
    spec: { nets: ["198.51.100.0/24", "203.0.113.17", "2001:db8:100::/48"] },
  },
};

export const networkSetSpecSchema = z.strictObject(networkSetSpecShape);

export const networkSetSchema = resourceSchema(kindById("NetworkSet"), networkSetSpecSchema, {
  specOptional: true,
}).superRefine(...looseCheck(checkReservedLabel));

export type NetworkSetSpec = z.output<typeof networkSetSpecSchema>;
export type NetworkSet = z.output<typeof networkSetSchema>;

export const networkSetKind: KindSchema = {
  schema: networkSetSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "NetworkSet",
    metadata: { name: "payment-gateways", namespace: "shop", labels: { role: "payments" } },
    spec: { nets: ["192.0.2.0/28"] },
  },
};
