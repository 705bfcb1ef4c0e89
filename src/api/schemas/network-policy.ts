// GlobalNetworkPolicy and (namespaced) NetworkPolicy: ordered rules applied
// to the endpoints a selector picks, grouped in tiers.
//
// Defaults, as Calico stores them: `tier` is "default"; `types` comes from the
// rules present when it is not given: Egress alone if there are egress rules
// but no ingress rules, both if there are both, otherwise Ingress (including a
// policy with no rules at all).
//
// Names, as Calico checks them: a DNS-1123 label, or "tier.label" with one
// dot. A policy in a tier other than "default" must be named "<tier>.<name>";
// in the default tier the name has no dot or starts with "default.". Names
// made by translators ("knp.default.", "ossg." ...) are exempt.
import { z } from "zod";
import { kindById } from "../kinds.js";
import type { KindSchema } from "./common.js";
import { dnsLabelName, dnsSubdomainProblem, resourceSchema, selectorString } from "./common.js";
import type { Loose } from "./rule.js";
import {
  checkPolicyRuleDirections,
  looseCheck,
  looseList,
  looseObject,
  rulesSchema,
} from "./rule.js";

export const POLICY_TYPES = ["Ingress", "Egress"] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];

const LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const SUBDOMAIN = `${LABEL}(\\.${LABEL})*`;
const GLOBAL_POLICY_NAME = new RegExp(`^(${LABEL}\\.)?${LABEL}$`);
const POLICY_NAME = new RegExp(`^(${LABEL}(\\.${LABEL})?|(knp|ossg)\\.default\\.${SUBDOMAIN})$`);

/** Prefixes of names that translators give policies; their tier is implied. */
const TRANSLATED_NAME_PREFIXES = [
  "knp.default.",
  "kcnp.kube-admin.",
  "kcnp.kube-baseline.",
  "ossg.",
];

/** The types Calico gives a policy that does not list them. */
export function defaultPolicyTypes(hasIngress: boolean, hasEgress: boolean): PolicyType[] {
  if (!hasEgress) return ["Ingress"];
  if (!hasIngress) return ["Egress"];
  return ["Ingress", "Egress"];
}

/**
 * Why a policy's name does not fit its tier, or undefined. Mirrors Calico's
 * rule: outside the default tier the name is "<tier>.<name>"; in it, either
 * no dot or a "default." prefix.
 */
export function tieredPolicyNameProblem(name: string, tier: string): string | undefined {
  if (TRANSLATED_NAME_PREFIXES.some((p) => name.startsWith(p))) return undefined;
  const dot = name.indexOf(".");
  if (dot < 0) {
    if (tier === "default") return undefined;
    return `policy "${name}" is in tier "${tier}", so its name must be prefixed with the tier: "${tier}.${name}"`;
  }
  if (name.startsWith(`${tier}.`)) return undefined;
  if (tier === "default") {
    return `policy name "${name}" must have no dot or start with "default." (the policy is in tier "default")`;
  }
  return `policy name "${name}" must start with "${tier}." (the name of its tier)`;
}

function policyNameSchema(global: boolean) {
  const pattern = global ? GLOBAL_POLICY_NAME : POLICY_NAME;
  return z.string().superRefine((name, ctx) => {
    const problem = dnsSubdomainProblem(name);
    if (problem) {
      ctx.addIssue({ code: "custom", message: problem });
      return;
    }
    if (!pattern.test(name)) {
      ctx.addIssue({
        code: "custom",
        message: `policy name "${name}" is invalid: use a DNS-1123 label (lower-case letters, digits and '-'), optionally prefixed by its tier and a dot ("tier.name")`,
      });
    }
  });
}

function policySpecFields(global: boolean) {
  return {
    tier: dnsLabelName()
      .default("default")
      .describe('The tier the policy belongs to; the tier must exist. Default "default".'),
    order: z
      .number()
      .optional()
      .describe(
        "Position within the tier: lower orders apply first; omitted means last. Ties go by name.",
      ),
    selector: selectorString()
      .optional()
      .describe(
        global
          ? "Endpoints the policy applies to (all() when omitted); global() is not allowed."
          : "Endpoints in the policy's namespace that it applies to (all() when omitted).",
      ),
    serviceAccountSelector: selectorString()
      .optional()
      .describe("Further limits the policy to pods whose service account's labels match."),
    types: z
      .array(z.enum(POLICY_TYPES))
      .max(2)
      .optional()
      .describe(
        "Directions the policy governs. Default: Egress if it has only egress rules, both if it has both, otherwise Ingress.",
      ),
    ingress: rulesSchema()
      .optional()
      .describe("Rules for traffic arriving at the selected endpoints, in order."),
    egress: rulesSchema()
      .optional()
      .describe("Rules for traffic leaving the selected endpoints, in order."),
    performanceHints: z
      .array(z.enum(["AssumeNeededOnEveryNode"]))
      .superRefine((hints, ctx) => {
        hints.forEach((h, i) => {
          if (hints.indexOf(h) !== i)
            ctx.addIssue({ code: "custom", path: [i], message: `"${h}" is listed twice` });
        });
      })
      .optional()
      .describe(
        "Hints that change how the policy is processed, never what it enforces: AssumeNeededOnEveryNode.",
      ),
  };
}

/** Checks shared by both policy kinds, on a spec that may be partly invalid. */
function checkPolicySpec(spec: Loose, ctx: z.RefinementCtx, global: boolean): void {
  looseList(spec["types"]).forEach((t, i, all) => {
    if (all.indexOf(t) !== i) {
      ctx.addIssue({
        code: "custom",
        path: ["types", i],
        message: `${JSON.stringify(t)} is listed twice`,
      });
    }
  });
  checkPolicyRuleDirections(spec, ctx, { global });
}

/** Fills in `types` from the rules present, as Calico does on write. */
function withDefaultTypes<
  T extends {
    types?: PolicyType[] | undefined;
    ingress?: unknown[] | undefined;
    egress?: unknown[] | undefined;
  },
>(spec: T): Omit<T, "types"> & { types: PolicyType[] } {
  const types =
    spec.types && spec.types.length > 0
      ? spec.types
      : defaultPolicyTypes((spec.ingress?.length ?? 0) > 0, (spec.egress?.length ?? 0) > 0);
  return { ...spec, types };
}

/** The name-versus-tier check, on a resource that may be partly invalid. */
function checkPolicyName(resource: Loose, ctx: z.RefinementCtx, global: boolean): void {
  const name = looseObject(resource["metadata"])?.["name"];
  const tierValue = looseObject(resource["spec"])?.["tier"];
  const tier = typeof tierValue === "string" && tierValue !== "" ? tierValue : "default";
  // A malformed name has already been reported by the name's own schema.
  if (typeof name !== "string" || !(global ? GLOBAL_POLICY_NAME : POLICY_NAME).test(name)) return;
  const problem = tieredPolicyNameProblem(name, tier);
  if (problem) ctx.addIssue({ code: "custom", path: ["metadata", "name"], message: problem });
}

// ---------------------------------------------------------------------------
// GlobalNetworkPolicy

export const globalNetworkPolicySpecSchema = z
  .strictObject({
    ...policySpecFields(true),
    namespaceSelector: selectorString()
      .optional()
      .describe("Limits the policy to workload endpoints in namespaces whose labels match."),
    doNotTrack: z
      .boolean()
      .optional()
      .describe(
        "Apply before connection tracking, and exempt allowed packets from it (needs applyOnForward).",
      ),
    preDNAT: z
      .boolean()
      .optional()
      .describe(
        "Apply before DNAT, to traffic arriving at host endpoints (ingress only; needs applyOnForward).",
      ),
    applyOnForward: z
      .boolean()
      .optional()
      .describe(
        "Also apply to traffic forwarded through host endpoints, not only to and from the host.",
      ),
  })
  .superRefine(
    ...looseCheck((loose, ctx) => {
      checkPolicySpec(loose, ctx, true);
      const issue = (path: PropertyKey[], message: string) =>
        ctx.addIssue({ code: "custom", path, message });
      const preDNAT = loose["preDNAT"] === true;
      const doNotTrack = loose["doNotTrack"] === true;
      if (preDNAT && doNotTrack) issue(["preDNAT"], "preDNAT and doNotTrack cannot both be true");
      if (preDNAT && looseList(loose["egress"]).length > 0)
        issue(["egress"], "a preDNAT policy cannot have egress rules");
      if (preDNAT && looseList(loose["types"]).includes("Egress")) {
        issue(["types"], "a preDNAT policy cannot apply to Egress");
      }
      if ((preDNAT || doNotTrack) && loose["applyOnForward"] !== true) {
        issue(["applyOnForward"], "applyOnForward must be true when preDNAT or doNotTrack is true");
      }
    }),
  )
  .transform(withDefaultTypes);

export const globalNetworkPolicySchema = resourceSchema(
  kindById("GlobalNetworkPolicy"),
  globalNetworkPolicySpecSchema.prefault({}),
  { name: policyNameSchema(true) },
).superRefine(...looseCheck((r, ctx) => checkPolicyName(r, ctx, true)));

export type GlobalNetworkPolicySpec = z.output<typeof globalNetworkPolicySpecSchema>;
export type GlobalNetworkPolicy = z.output<typeof globalNetworkPolicySchema>;

export const globalNetworkPolicyKind: KindSchema = {
  schema: globalNetworkPolicySchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name: "allow-tcp-6379" },
    spec: {
      order: 100,
      selector: "role == 'database'",
      types: ["Ingress", "Egress"],
      ingress: [
        {
          action: "Allow",
          protocol: "TCP",
          source: { selector: "role == 'frontend'" },
          destination: { ports: [6379] },
        },
      ],
      egress: [{ action: "Allow" }],
    },
  },
};

// ---------------------------------------------------------------------------
// NetworkPolicy (namespaced)

export const networkPolicySpecSchema = z
  .strictObject(policySpecFields(false))
  .superRefine(...looseCheck((spec, ctx) => checkPolicySpec(spec, ctx, false)))
  .transform(withDefaultTypes);

export const networkPolicySchema = resourceSchema(
  kindById("NetworkPolicy"),
  networkPolicySpecSchema.prefault({}),
  {
    name: policyNameSchema(false),
  },
).superRefine(...looseCheck((r, ctx) => checkPolicyName(r, ctx, false)));

export type NetworkPolicySpec = z.output<typeof networkPolicySpecSchema>;
export type NetworkPolicy = z.output<typeof networkPolicySchema>;

export const networkPolicyKind: KindSchema = {
  schema: networkPolicySchema,
  example: {
    apiVersion: "projectcalico.org/v3",
    kind: "NetworkPolicy",
    metadata: { name: "allow-frontend-to-api", namespace: "shop" },
    spec: {
      selector: "app == 'api'",
      ingress: [
        {
          action: "Allow",
          protocol: "TCP",
          source: { selector: "app == 'frontend'" },
          destination: { ports: [8080, "9000:9010"] },
        },
      ],
    },
  },
};
