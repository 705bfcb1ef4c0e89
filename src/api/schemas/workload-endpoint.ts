// WorkloadEndpoint: a workload's network interface as the host sees it (the
// host side of its veth): its addresses, labels, profiles and named ports.
//
// Calico builds the name from the spec, and requires the two to agree:
//   <node>-<orchestrator>-<pod>-<endpoint>           orchestrator "k8s"
//   <node>-<orchestrator>-<containerID>-<endpoint>   orchestrator "cni"
//   <node>-libnetwork-libnetwork-<endpoint>          orchestrator "libnetwork"
//   <node>-<orchestrator>-<workload>-<endpoint>      any other orchestrator
// with every '-' inside a part doubled ("my-pod" becomes "my--pod").
import { z } from "zod";
import { kindById } from "../kinds.js";
import { cidrContainsIP, parseIP } from "../ip.js";
import type { KindSchema } from "./common.js";
import {
  cidrOf,
  cidrString,
  dnsSubdomainName,
  ipAddress,
  maskedCidrString,
  resourceSchema,
} from "./common.js";
import { portNameSchema, portNumberSchema, portProtocolSchema } from "./endpoint-port.js";
import { interfaceNameSchema } from "./host-endpoint.js";
import { looseCheck, looseList, looseObject } from "./rule.js";

const CONTAINER_ID = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;

/** True for a MAC address in a form Go's net.ParseMAC accepts (which Calico uses). */
export function isMAC(text: string): boolean {
  const byColon = text.split(":");
  const byDash = text.split("-");
  const byDot = text.split(".");
  const octets = byColon.length > 1 ? byColon : byDash.length > 1 ? byDash : undefined;
  if (octets) {
    return [6, 8, 20].includes(octets.length) && octets.every((o) => /^[0-9a-fA-F]{2}$/.test(o));
  }
  return [3, 4, 10].includes(byDot.length) && byDot.every((g) => /^[0-9a-fA-F]{4}$/.test(g));
}

function ipOfFamily(family: 4 | 6) {
  return z.string().superRefine((s, ctx) => {
    const ip = parseIP(s);
    if (!ip || ip.family !== family)
      ctx.addIssue({ code: "custom", message: `"${s}" is not an IPv${family} address` });
  });
}

/** One of a workload endpoint's ports: named, or mapped from the host, or both. */
export const workloadEndpointPortSchema = () =>
  z
    .strictObject({
      name: portNameSchema().optional().describe("The port's name, as rules refer to it."),
      protocol: portProtocolSchema().describe("TCP, UDP or SCTP."),
      port: portNumberSchema().describe("The port number in the workload, 1-65535."),
      hostPort: z
        .int()
        .min(0)
        .max(65535)
        .optional()
        .describe("A host port mapped to this port (0 or omitted: none)."),
      hostIP: ipAddress().optional().describe("The host address the host port is bound to."),
    })
    .superRefine(
      ...looseCheck((p, ctx) => {
        if ((p["name"] === undefined || p["name"] === "") && !p["hostPort"]) {
          ctx.addIssue({
            code: "custom",
            path: ["name"],
            message: "a port needs a name unless it has a hostPort",
          });
        }
      }),
    );

export const ipNATSchema = () =>
  z
    .strictObject({
      internalIP: ipAddress().describe("The workload's own address (one of its ipNetworks)."),
      externalIP: ipAddress().describe(
        "The address that is translated to internalIP (same IP family).",
      ),
      source: z
        .string()
        .optional()
        .describe('Where the mapping comes from; "openstack" for a floating IP.'),
    })
    .superRefine((nat, ctx) => {
      const inside = parseIP(nat.internalIP);
      const outside = parseIP(nat.externalIP);
      if (inside && outside && inside.family !== outside.family) {
        ctx.addIssue({
          code: "custom",
          path: ["externalIP"],
          message: `"${nat.externalIP}" is IPv${outside.family} but internalIP "${nat.internalIP}" is IPv${inside.family}`,
        });
      }
    });

/** The name Calico expects from the spec's identifiers, or the spec fields that are missing. */
export function expectedWorkloadEndpointName(
  spec: Record<string, unknown>,
): string | { missing: string[] } {
  const orchestrator = spec["orchestrator"];
  const third =
    orchestrator === "k8s"
      ? "pod"
      : orchestrator === "cni"
        ? "containerID"
        : orchestrator === "libnetwork"
          ? "orchestrator"
          : "workload";
  const fields = ["node", "orchestrator", third, "endpoint"];
  const values = fields.map((f) => spec[f]);
  const missing = fields.filter((f, i) => typeof values[i] !== "string" || values[i] === "");
  if (missing.length > 0) return { missing: [...new Set(missing)] };
  return values.map((v) => String(v).replaceAll("-", "--")).join("-");
}

export const workloadEndpointSpecSchema = z
  .strictObject({
    orchestrator: dnsSubdomainName().describe(
      'What created the workload: "k8s", "cni", "libnetwork" or another name.',
    ),
    workload: dnsSubdomainName()
      .optional()
      .describe(
        "The workload's name (part of the endpoint's name for orchestrators other than k8s, cni, libnetwork).",
      ),
    node: dnsSubdomainName().describe("The node (host) the workload runs on."),
    containerID: z
      .string()
      .regex(CONTAINER_ID, {
        message: "must be letters, digits and '-', starting and ending with a letter or digit",
      })
      .optional()
      .describe("The container's ID (part of the endpoint's name for orchestrator \"cni\")."),
    pod: dnsSubdomainName()
      .optional()
      .describe("The pod's name (part of the endpoint's name for orchestrator \"k8s\")."),
    endpoint: dnsSubdomainName().describe('The interface within the workload, e.g. "eth0".'),
    serviceAccountName: dnsSubdomainName()
      .optional()
      .describe("The pod's Kubernetes service account."),
    ipNetworks: z
      .array(
        maskedCidrString({ allowBareIP: true }).superRefine((s, ctx) => {
          const c = cidrOf(s);
          if (c && c.prefixLength !== (c.family === 4 ? 32 : 128)) {
            ctx.addIssue({
              code: "custom",
              message: `"${s}" holds more than one address: an endpoint's ipNetworks are single addresses (/32 or /128)`,
            });
          }
        }),
      )
      .optional()
      .describe("The workload's addresses (/32 or /128); packets from others are dropped."),
    ipNATs: z
      .array(ipNATSchema())
      .optional()
      .describe("One-to-one NAT: connections to externalIP reach the workload at internalIP."),
    ipv4Gateway: ipOfFamily(4).optional().describe("The IPv4 gateway the workload uses."),
    ipv6Gateway: ipOfFamily(6).optional().describe("The IPv6 gateway the workload uses."),
    profiles: z
      .array(dnsSubdomainName())
      .optional()
      .describe("Profiles applied, in order, when no policy selects the endpoint."),
    interfaceName: interfaceNameSchema().describe(
      "The host-side interface of the workload, e.g. a veth name.",
    ),
    mac: z
      .string()
      .superRefine((s, ctx) => {
        if (!isMAC(s)) ctx.addIssue({ code: "custom", message: `"${s}" is not a MAC address` });
      })
      .optional()
      .describe("The MAC address of the workload's interface."),
    ports: z
      .array(workloadEndpointPortSchema())
      .optional()
      .describe("Named and host-mapped ports, for rules that match ports by name."),
    allowSpoofedSourcePrefixes: z
      .array(cidrString({ allowBareIP: true }))
      .optional()
      .describe(
        "Source prefixes the workload may send from besides its own addresses (skips the RPF check).",
      ),
  })
  .superRefine(
    ...looseCheck((spec, ctx) => {
      // Each NAT's internal address must be one of the endpoint's own.
      const nets = looseList(spec["ipNetworks"]).flatMap((n) => {
        const c = typeof n === "string" ? cidrOf(n) : undefined;
        return c ? [c] : [];
      });
      looseList(spec["ipNATs"]).forEach((nat, i) => {
        const internal = looseObject(nat)?.["internalIP"];
        const ip = typeof internal === "string" ? parseIP(internal) : undefined;
        if (ip && !nets.some((c) => cidrContainsIP(c, ip))) {
          ctx.addIssue({
            code: "custom",
            path: ["ipNATs", i, "internalIP"],
            message: `"${String(internal)}" is not one of the endpoint's ipNetworks`,
          });
        }
      });
    }),
  );

export const workloadEndpointSchema = resourceSchema(
  kindById("WorkloadEndpoint"),
  workloadEndpointSpecSchema,
).superRefine(
  ...looseCheck((wep, ctx) => {
    const spec = looseObject(wep["spec"]);
    const name = looseObject(wep["metadata"])?.["name"];
    if (!spec) return;
    const expected = expectedWorkloadEndpointName(spec);
    if (typeof expected !== "string") {
      // Missing required fields are reported by the spec's own schema; an
      // optional one that the orchestrator needs is reported here.
      if (typeof spec["orchestrator"] !== "string") return;
      for (const field of expected.missing) {
        if (field === "pod" || field === "containerID" || field === "workload") {
          ctx.addIssue({
            code: "custom",
            path: ["spec", field],
            message: `required for orchestrator ${JSON.stringify(spec["orchestrator"])}: the endpoint's name is built from it`,
          });
        }
      }
      return;
    }
    if (typeof name === "string" && name !== expected) {
      ctx.addIssue({
        code: "custom",
        path: ["metadata", "name"],
        message: `"${name}" does not match the spec: the endpoint must be named "${expected}"`,
      });
    }
  }),
);

export type WorkloadEndpointPort = z.output<ReturnType<typeof workloadEndpointPortSchema>>;
export type IPNAT = z.output<ReturnType<typeof ipNATSchema>>;
export type WorkloadEndpointSpec = z.output<typeof workloadEndpointSpecSchema>;
export type WorkloadEndpoint = z.output<typeof workloadEndpointSchema>;

export const workloadEndpointKind: KindSchema = {
  schema: workloadEndpointSchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "WorkloadEndpoint",
    metadata: {
      name: "node--1-k8s-frontend--5d9f-eth0",
      namespace: "shop",
      labels: {
        app: "frontend",
        "projectcalico.org/namespace": "shop",
        "projectcalico.org/orchestrator": "k8s",
      },
    },
    spec: {
      orchestrator: "k8s",
      node: "node-1",
      pod: "frontend-5d9f",
      endpoint: "eth0",
      serviceAccountName: "frontend",
      containerID: "6f1e0c3a9b2d",
      ipNetworks: ["10.65.1.7/32"],
      profiles: ["kns.shop", "ksa.shop.frontend"],
      interfaceName: "tw6f1e0c3a9b2",
      mac: "ee:ee:ee:ee:ee:ee",
      ports: [{ name: "http", protocol: "TCP", port: 8080 }],
    },
  },
};
