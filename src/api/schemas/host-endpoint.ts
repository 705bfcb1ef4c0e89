// HostEndpoint: one of a host's own interfaces (or "*" for all of them), so
// that policy can protect the host itself. It names its node, and either the
// interface, or the addresses by which the interface is found, or both.
// expectedIPs are also what selectors resolve a host endpoint to.
import { z } from "zod";
import { kindById } from "../kinds.js";
import type { KindSchema } from "./common.js";
import { dnsSubdomainName, ipAddress, resourceSchema } from "./common.js";
import { endpointPortSchema } from "./endpoint-port.js";
import { looseCheck } from "./rule.js";

const INTERFACE_NAME = /^[a-zA-Z0-9_.-]{1,15}$/;

/** A Linux interface name (1-15 of letters, digits, '_', '.', '-'), or "*" when allowed. */
export const interfaceNameSchema = (options?: { allowAll?: boolean }) =>
  z.string().superRefine((name, ctx) => {
    if (options?.allowAll && name === "*") return;
    if (!INTERFACE_NAME.test(name)) {
      ctx.addIssue({
        code: "custom",
        message: `"${name}" is not a valid interface name (1-15 letters, digits, '_', '.' or '-'${options?.allowAll ? ', or "*"' : ""})`,
      });
    }
  });

export const hostEndpointSpecSchema = z
  .strictObject({
    node: dnsSubdomainName().describe("The node (host) the interface belongs to."),
    interfaceName: interfaceNameSchema({ allowAll: true })
      .optional()
      .describe('The interface policy applies to, or "*" for all of the host\'s traffic.'),
    expectedIPs: z
      .array(ipAddress())
      .optional()
      .describe(
        "The interface's addresses: used to find it when interfaceName is not given, and by selectors.",
      ),
    profiles: z
      .array(dnsSubdomainName())
      .optional()
      .describe("Profiles applied, in order, when no policy selects the endpoint."),
    ports: z
      .array(endpointPortSchema())
      .optional()
      .describe("Named ports on this endpoint, for rules that match ports by name."),
  })
  .superRefine(
    ...looseCheck((spec, ctx) => {
      const hasInterface =
        typeof spec["interfaceName"] === "string" && spec["interfaceName"] !== "";
      const hasIPs = Array.isArray(spec["expectedIPs"]) && spec["expectedIPs"].length > 0;
      if (!hasInterface && !hasIPs) {
        ctx.addIssue({
          code: "custom",
          path: ["interfaceName"],
          message: "a host endpoint needs interfaceName, expectedIPs or both",
        });
      }
    }),
  );

export const hostEndpointSchema = resourceSchema(kindById("HostEndpoint"), hostEndpointSpecSchema);

export type HostEndpointSpec = z.output<typeof hostEndpointSpecSchema>;
export type HostEndpoint = z.output<typeof hostEndpointSchema>;

export const hostEndpointKind: KindSchema = {
  schema: hostEndpointSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "HostEndpoint",
    metadata: { name: "node-1-eth0", labels: { role: "k8s-worker", environment: "production" } },
    spec: {
      node: "node-1",
      interfaceName: "eth0",
      expectedIPs: ["192.168.10.11"],
      profiles: ["host-defaults"],
      ports: [{ name: "ssh", protocol: "TCP", port: 22 }],
    },
  },
};
