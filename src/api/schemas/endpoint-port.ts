// Named ports of endpoints (HostEndpoint and WorkloadEndpoint `ports`): a
// name that rules can use in place of a number, with its protocol and port.
import { z } from "zod";
import { portNameProblem } from "./common.js";
import { protocolSchema, protocolSupportsPorts } from "./rule.js";

/** A protocol that has ports (TCP, UDP or SCTP, by name or number). */
export const portProtocolSchema = () =>
  protocolSchema().superRefine((p, ctx) => {
    if (!protocolSupportsPorts(p)) {
      ctx.addIssue({
        code: "custom",
        message: `protocol ${JSON.stringify(p)} has no ports: use TCP, UDP or SCTP`,
      });
    }
  });

/** A port number 1-65535. */
export const portNumberSchema = () => z.int().min(1).max(65535);

/** A named port (IANA service name rules, as Kubernetes uses). */
export const portNameSchema = () =>
  z.string().superRefine((name, ctx) => {
    const problem = portNameProblem(name);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  });

/** One of a HostEndpoint's named ports. */
export const endpointPortSchema = () =>
  z.strictObject({
    name: portNameSchema().describe("The port's name, as rules refer to it."),
    protocol: portProtocolSchema().describe("TCP, UDP or SCTP."),
    port: portNumberSchema().describe("The port number, 1-65535."),
  });

export type EndpointPort = z.output<ReturnType<typeof endpointPortSchema>>;
