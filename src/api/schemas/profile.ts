// Profile: rules and labels shared by the endpoints that list it in
// `profiles`. Profile rules apply after policy, only when no policy selected
// the endpoint for that direction. The labels in labelsToApply are added to
// each such endpoint's own (the endpoint's own win on a clash).
import { z } from "zod";
import { kindById } from "../kinds.js";
import type { KindSchema } from "./common.js";
import { labelsSchema, resourceSchema } from "./common.js";
import { rulesSchema } from "./rule.js";

export const profileSpecSchema = z.strictObject({
  ingress: rulesSchema()
    .optional()
    .describe("Rules for traffic arriving at the endpoints, in order."),
  egress: rulesSchema().optional().describe("Rules for traffic leaving the endpoints, in order."),
  labelsToApply: labelsSchema()
    .optional()
    .describe("Labels added to every endpoint that uses the profile, unless it has its own value."),
});

export const profileSchema = resourceSchema(kindById("Profile"), profileSpecSchema, {
  specOptional: true,
});

export type ProfileSpec = z.output<typeof profileSpecSchema>;
export type Profile = z.output<typeof profileSchema>;

export const profileKind: KindSchema = {
  schema: profileSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "Profile",
    metadata: { name: "dev-team" },
    spec: {
      ingress: [{ action: "Allow", source: { selector: "team == 'dev'" } }],
      egress: [{ action: "Allow" }],
      labelsToApply: { team: "dev" },
    },
  },
};
