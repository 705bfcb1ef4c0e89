// IPReservation: addresses inside pools that IPAM must never hand out (a
// gateway, a VIP, a range kept for something else). Reservations only stop
// new allocations; addresses already in use stay where they are.
import { z } from "zod";
import { kindById } from "../kinds.js";
import { cidrString, resourceSchema } from "./common.js";
import type { KindSchema } from "./common.js";

export const ipReservationSpecSchema = z
  .strictObject({
    reservedCIDRs: z
      .array(
        cidrString({ allowBareIP: true }).describe(
          "One address (10.65.0.1) or range (10.65.0.0/28), IPv4 or IPv6.",
        ),
      )
      .optional()
      .describe("Addresses and ranges IPAM will not hand out."),
  })
  .superRefine((spec, ctx) => {
    const seen = new Map<string, number>();
    (spec.reservedCIDRs ?? []).forEach((c, i) => {
      const first = seen.get(c);
      if (first !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["reservedCIDRs", i],
          message: `"${c}" is already listed at reservedCIDRs[${first}]`,
        });
      } else {
        seen.set(c, i);
      }
    });
  })
  .describe("What to keep out of IPAM's hands.");

export type IPReservationSpec = z.output<typeof ipReservationSpecSchema>;

export const ipReservationSchema = resourceSchema(
  kindById("IPReservation"),
  ipReservationSpecSchema,
);

export type IPReservation = z.output<typeof ipReservationSchema>;

export const ipReservationKind: KindSchema = {
  schema: ipReservationSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "IPReservation",
    metadata: { name: "rack-a-gateways" },
    spec: { reservedCIDRs: ["10.65.0.1", "10.65.255.0/24", "fd00:65::1"] },
  },
};
