// Kubernetes NetworkPolicy (networking.k8s.io/v1), accepted alongside
// Calico's kinds. It is stored as Kubernetes would store it (translating it
// into Calico policy is the agent's job), and checked as the Kubernetes API
// server checks it: label selectors, peers (an ipBlock stands alone; a peer
// must name something), ports (1-65535; endPort only after a numeric port
// and not below it), ipBlock CIDRs with `except` strictly inside `cidr`.
//
// Defaults, as the API server applies them: podSelector {} (every pod in the
// namespace), each port's protocol TCP, and policyTypes [Ingress], plus
// Egress when there are egress rules.
import { z } from "zod";
import { cidrContains } from "../ip.js";
import { kindById } from "../kinds.js";
import type { KindSchema } from "./common.js";
import {
  cidrOf,
  cidrString,
  labelKeyProblem,
  labelsSchema,
  labelValueProblem,
  resourceSchema,
} from "./common.js";
import { portNameProblem } from "./common.js";

const K8S_POLICY_TYPES = ["Ingress", "Egress"] as const;

export const labelSelectorRequirementSchema = () =>
  z
    .strictObject({
      key: z
        .string()
        .superRefine((key, ctx) => {
          const problem = labelKeyProblem(key);
          if (problem) ctx.addIssue({ code: "custom", message: problem });
        })
        .describe("The label key the requirement is about."),
      operator: z
        .enum(["In", "NotIn", "Exists", "DoesNotExist"])
        .describe("In, NotIn, Exists or DoesNotExist."),
      values: z
        .array(z.string())
        .optional()
        .describe(
          "The values for In and NotIn (at least one); must be empty for Exists and DoesNotExist.",
        ),
    })
    .superRefine((req, ctx) => {
      const values = req.values ?? [];
      if ((req.operator === "In" || req.operator === "NotIn") && values.length === 0) {
        ctx.addIssue({
          code: "custom",
          path: ["values"],
          message: `operator ${req.operator} needs at least one value`,
        });
      }
      if ((req.operator === "Exists" || req.operator === "DoesNotExist") && values.length > 0) {
        ctx.addIssue({
          code: "custom",
          path: ["values"],
          message: `operator ${req.operator} takes no values`,
        });
      }
      values.forEach((v, i) => {
        const problem = labelValueProblem(v);
        if (problem) ctx.addIssue({ code: "custom", path: ["values", i], message: problem });
      });
    });

/** A Kubernetes label selector; {} selects everything. */
export const labelSelectorSchema = () =>
  z.strictObject({
    matchLabels: labelsSchema()
      .optional()
      .describe("Labels that must all be present with these values."),
    matchExpressions: z
      .array(labelSelectorRequirementSchema())
      .optional()
      .describe("Requirements that must all hold."),
  });

export type LabelSelector = z.output<ReturnType<typeof labelSelectorSchema>>;

export const ipBlockSchema = () =>
  z
    .strictObject({
      cidr: cidrString().describe('The network the peer is in, e.g. "10.0.0.0/8".'),
      except: z.array(cidrString()).optional().describe("Networks inside cidr to leave out."),
    })
    .superRefine((block, ctx) => {
      const outer = cidrOf(block.cidr);
      if (!outer) return;
      (block.except ?? []).forEach((text, i) => {
        const inner = cidrOf(text);
        if (inner && !(cidrContains(outer, inner) && inner.prefixLength > outer.prefixLength)) {
          ctx.addIssue({
            code: "custom",
            path: ["except", i],
            message: `"${text}" must be a strict subset of cidr "${block.cidr}"`,
          });
        }
      });
    });

export const networkPolicyPeerSchema = () =>
  z
    .strictObject({
      podSelector: labelSelectorSchema()
        .optional()
        .describe(
          "Pods whose labels match (in the policy's namespace, unless namespaceSelector is given).",
        ),
      namespaceSelector: labelSelectorSchema()
        .optional()
        .describe("Namespaces whose labels match ({} is all)."),
      ipBlock: ipBlockSchema()
        .optional()
        .describe("A range of addresses; cannot be combined with selectors."),
    })
    .superRefine((peer, ctx) => {
      const given = [peer.podSelector, peer.namespaceSelector, peer.ipBlock].filter(
        (x) => x !== undefined,
      );
      if (given.length === 0) {
        ctx.addIssue({
          code: "custom",
          message: "must specify a peer: podSelector, namespaceSelector or ipBlock",
        });
      } else if (given.length > 1 && peer.ipBlock !== undefined) {
        ctx.addIssue({ code: "custom", message: "may not specify both ipBlock and another peer" });
      }
    });

export const networkPolicyPortSchema = () =>
  z
    .strictObject({
      protocol: z
        .enum(["TCP", "UDP", "SCTP"])
        .default("TCP")
        .describe("TCP, UDP or SCTP. Default TCP."),
      port: z
        .union([z.int(), z.string()])
        .superRefine((p, ctx) => {
          if (typeof p === "number") {
            if (p < 1 || p > 65535)
              ctx.addIssue({ code: "custom", message: `port ${p} is out of range (1-65535)` });
          } else {
            const problem = portNameProblem(p);
            if (problem) ctx.addIssue({ code: "custom", message: problem });
          }
        })
        .optional()
        .describe("A port number or a named port of the pods; all ports when omitted."),
      endPort: z
        .int()
        .min(1)
        .max(65535)
        .optional()
        .describe("With a numeric port: the last port of the range port..endPort."),
    })
    .superRefine((p, ctx) => {
      if (p.endPort === undefined) return;
      if (p.port === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["endPort"],
          message: "may not be specified when port is not specified",
        });
      } else if (typeof p.port === "string") {
        ctx.addIssue({
          code: "custom",
          path: ["endPort"],
          message: "may not be specified when port is a named port",
        });
      } else if (p.endPort < p.port) {
        ctx.addIssue({
          code: "custom",
          path: ["endPort"],
          message: `endPort ${p.endPort} must be greater than or equal to port ${p.port}`,
        });
      }
    });

export const k8sNetworkPolicySpecSchema = z
  .strictObject({
    podSelector: labelSelectorSchema()
      .default({})
      .describe(
        "The pods in the policy's namespace that it applies to; {} (the default) is all of them.",
      ),
    policyTypes: z
      .array(z.enum(K8S_POLICY_TYPES))
      .max(2)
      .optional()
      .describe(
        "Directions the policy governs. Default: Ingress, plus Egress when egress rules are given.",
      ),
    ingress: z
      .array(
        z.strictObject({
          from: z
            .array(networkPolicyPeerSchema())
            .optional()
            .describe("Allowed sources; anyone when omitted."),
          ports: z
            .array(networkPolicyPortSchema())
            .optional()
            .describe("Allowed ports; all when omitted."),
        }),
      )
      .optional()
      .describe(
        "Allowed incoming traffic; each rule allows what matches both its from and its ports.",
      ),
    egress: z
      .array(
        z.strictObject({
          to: z
            .array(networkPolicyPeerSchema())
            .optional()
            .describe("Allowed destinations; anyone when omitted."),
          ports: z
            .array(networkPolicyPortSchema())
            .optional()
            .describe("Allowed ports; all when omitted."),
        }),
      )
      .optional()
      .describe(
        "Allowed outgoing traffic; each rule allows what matches both its to and its ports.",
      ),
  })
  .transform((spec) => ({
    ...spec,
    policyTypes:
      spec.policyTypes && spec.policyTypes.length > 0
        ? spec.policyTypes
        : (spec.egress?.length ?? 0) > 0
          ? (["Ingress", "Egress"] as ("Ingress" | "Egress")[])
          : (["Ingress"] as ("Ingress" | "Egress")[]),
  }));

export const k8sNetworkPolicySchema = resourceSchema(
  kindById("NetworkPolicy.networking.k8s.io"),
  k8sNetworkPolicySpecSchema.prefault({}),
);

export type K8sNetworkPolicySpec = z.output<typeof k8sNetworkPolicySpecSchema>;
export type K8sNetworkPolicy = z.output<typeof k8sNetworkPolicySchema>;

export const k8sNetworkPolicyKind: KindSchema = {
  schema: k8sNetworkPolicySchema,
  example: {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "api-allow-frontend", namespace: "shop" },
    spec: {
      podSelector: { matchLabels: { app: "api" } },
      policyTypes: ["Ingress"],
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: { app: "frontend" } } },
            { ipBlock: { cidr: "10.0.0.0/8", except: ["10.1.0.0/16"] } },
          ],
          ports: [{ protocol: "TCP", port: 8080, endPort: 8090 }],
        },
      ],
    },
  },
};
