// Tier: an ordered group of policies. Tiers apply in `order` (lowest first);
// a tier in which some policy selected the endpoint but no rule decided ends
// with its defaultAction: Deny, or Pass to the next tier.
//
// A tier without an order comes after every tier that has one (ties by
// name); the "default" tier always sits at order 1,000,000, which cannot be
// changed. defaultAction defaults to Deny.
// Tier names are DNS-1123 labels (no dots): they prefix policy names.
import { z } from "zod";
import { kindById } from "../kinds.js";
import type { KindSchema } from "./common.js";
import { dnsLabelName, resourceSchema } from "./common.js";
import { looseCheck, looseObject } from "./rule.js";

/** The order of the default tier. */
export const DEFAULT_TIER_ORDER = 1_000_000;

export const tierSpecSchema = z.strictObject({
  order: z
    .number()
    .optional()
    .describe(
      "When the tier applies relative to others: lower first; ties go by name; none means after every tier with an order. The default tier's is 1000000.",
    ),
  defaultAction: z
    .enum(["Deny", "Pass"])
    .default("Deny")
    .describe(
      "What happens when policies in the tier select an endpoint but none of their rules decide: Deny or Pass.",
    ),
});

export const tierSchema = resourceSchema(kindById("Tier"), tierSpecSchema.prefault({}), {
  name: dnsLabelName(),
}).superRefine(
  ...looseCheck((tier, ctx) => {
    const name = looseObject(tier["metadata"])?.["name"];
    const order = looseObject(tier["spec"])?.["order"];
    if (name === "default" && typeof order === "number" && order !== DEFAULT_TIER_ORDER) {
      ctx.addIssue({
        code: "custom",
        path: ["spec", "order"],
        message: `the default tier's order must be ${DEFAULT_TIER_ORDER}, got ${order}`,
      });
    }
  }),
);

export type TierSpec = z.output<typeof tierSpecSchema>;
export type Tier = z.output<typeof tierSchema>;

export const tierKind: KindSchema = {
  schema: tierSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "Tier",
    metadata: { name: "security" },
    spec: { order: 100, defaultAction: "Deny" },
  },
};
