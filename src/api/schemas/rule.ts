// The policy rule: what Calico's GlobalNetworkPolicy, NetworkPolicy and
// Profile resources carry in `ingress` and `egress`. A rule matches on
// protocol, ICMP type/code, and per side (source / destination) on networks,
// selectors, ports, service accounts and services; its action is Allow, Deny,
// Log or Pass.
//
// Checks follow Calico's validator (libcalico-go validator/v3 and the CRD
// rules of projectcalico.org/v3):
// - ports (numbers, ranges and named ports alike) only with protocol TCP, UDP
//   or SCTP (by name or as 6, 17, 132);
// - icmp / notICMP only with protocol ICMP or ICMPv6; ICMP goes with
//   ipVersion 4, ICMPv6 with ipVersion 6;
// - the nets of one rule (both sides, positive and negated) are all IPv4 or
//   all IPv6, and agree with ipVersion when it is given;
// - global() only in an entity rule's namespaceSelector, and there alone;
// - services exclude selectors, nets, namespaceSelector and service accounts
//   on the same side; destination services exclude destination ports;
// - http only with protocol TCP (or none) and only on Allow rules.
//
// Cross-field checks run even when some field of the rule is itself invalid
// (see looseCheck), so that every problem of a document is reported at once;
// they therefore read the rule through the defensive accessors below rather
// than trusting its inferred type. The other kinds' files use the same helpers.
import { z } from "zod";
import {
  annotationsSchema,
  cidrOf,
  dnsSubdomainName,
  labelKeyProblem,
  maskedCidrString,
  portNameProblem,
  selectorString,
} from "./common.js";

/** Protocol names Calico accepts, exactly as spelled here. */
export const PROTOCOL_NAMES = ["TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite"] as const;
export type ProtocolName = (typeof PROTOCOL_NAMES)[number];

const PROTOCOL_NUMBERS: Record<ProtocolName, number> = {
  TCP: 6,
  UDP: 17,
  ICMP: 1,
  ICMPv6: 58,
  SCTP: 132,
  UDPLite: 136,
};

// ---------------------------------------------------------------------------
// Defensive accessors for cross-field checks.

/** A value seen by a cross-field check: any plain object. */
export type Loose = Record<string, unknown>;

/** The value as a plain object, or undefined. */
export function looseObject(v: unknown): Loose | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Loose) : undefined;
}

/** The value as an array, or an empty one. */
export function looseList(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/**
 * Arguments for `.superRefine(...)`: a cross-field check that runs even when
 * parts of the value failed to parse, so that every problem of a document is
 * reported at once. It runs on plain objects only, and sees the value loosely
 * typed: fields may be missing, of the wrong type, or failed transforms.
 */
export function looseCheck(
  check: (value: Loose, ctx: z.RefinementCtx) => void,
): [(value: unknown, ctx: z.RefinementCtx) => void, { when: () => boolean }] {
  return [
    (value, ctx) => {
      const object = looseObject(value);
      if (object) check(object, ctx);
    },
    { when: () => true },
  ];
}

/** True when the field holds a non-empty list. */
function nonEmpty(v: unknown): boolean {
  return Array.isArray(v) && v.length > 0;
}

/** True when the field is given (not undefined or null). */
function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

/** True when the field holds a non-empty string. */
function nonEmptyString(v: unknown): boolean {
  return typeof v === "string" && v.length > 0;
}

/** The IP protocol number a protocol value stands for, or undefined if it is not one. */
export function protocolNumber(p: unknown): number | undefined {
  if (typeof p === "number") return Number.isInteger(p) ? p : undefined;
  if (typeof p !== "string") return undefined;
  if (/^[0-9]+$/.test(p)) return Number(p);
  return (PROTOCOL_NUMBERS as Record<string, number>)[p];
}

/** True for TCP, UDP and SCTP: the protocols that have ports. */
export function protocolSupportsPorts(p: unknown): boolean {
  const n = protocolNumber(p);
  return n === 6 || n === 17 || n === 132;
}

// ---------------------------------------------------------------------------
// Protocols and ports.

/**
 * A protocol: one of Calico's names (exact case) or a number 1-255. A number
 * written as a string ("6") is stored as the number, as Calico does.
 */
export const protocolSchema = () =>
  z.union([z.number(), z.string()]).transform((v, ctx): ProtocolName | number => {
    if (typeof v === "string" && (PROTOCOL_NAMES as readonly string[]).includes(v)) {
      return v as ProtocolName;
    }
    const n = typeof v === "number" ? v : /^[0-9]+$/.test(v) ? Number(v) : undefined;
    if (n !== undefined && Number.isInteger(n) && n >= 1 && n <= 255) return n;
    const known = PROTOCOL_NAMES.find(
      (name) => typeof v === "string" && name.toLowerCase() === v.toLowerCase(),
    );
    ctx.addIssue({
      code: "custom",
      message: known
        ? `protocol ${JSON.stringify(v)} is not valid: protocol names are case-sensitive, use "${known}"`
        : `protocol ${JSON.stringify(v)} is not valid: use ${PROTOCOL_NAMES.join(", ")} or a number 1-255`,
    });
    return z.NEVER;
  });

export type Protocol = z.output<ReturnType<typeof protocolSchema>>;

/** A parsed port item: a single port or range, or a named port. */
export type ParsedPort = { min: number; max: number } | { name: string };

/**
 * Parses one item of a rule's `ports`: a number, "N", "min:max" or a port
 * name. Returns the parsed port, or the reason it is invalid.
 */
export function parsePort(v: number | string): ParsedPort | string {
  const inRange = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
  if (typeof v === "number") {
    if (!Number.isInteger(v)) return `port ${v} is not a whole number`;
    if (!inRange(v)) return `port ${v} is out of range (1-65535)`;
    return { min: v, max: v };
  }
  if (/^[0-9]+$/.test(v)) {
    const n = Number(v);
    if (!inRange(n)) return `port "${v}" is out of range (1-65535)`;
    return { min: n, max: n };
  }
  const range = /^([0-9]+):([0-9]+)$/.exec(v);
  if (range) {
    const min = Number(range[1]);
    const max = Number(range[2]);
    if (!inRange(min) || !inRange(max)) return `port range "${v}" is out of range (1-65535)`;
    if (min > max) return `port range "${v}" is reversed`;
    return { min, max };
  }
  const problem = portNameProblem(v);
  if (problem) {
    return `port ${JSON.stringify(v)} is not a port number, a range "min:max" or a valid port name: ${problem}`;
  }
  return { name: v };
}

/**
 * One item of `ports` / `notPorts`: 80, "80", "8000:8080" or a named port
 * ("http"). Stored as Calico stores it: a single port as a number, a range
 * as "min:max", a name as given.
 */
export const portSchema = () =>
  z.union([z.number(), z.string()]).transform((v, ctx): number | string => {
    const parsed = parsePort(v);
    if (typeof parsed === "string") {
      ctx.addIssue({ code: "custom", message: parsed });
      return z.NEVER;
    }
    if ("name" in parsed) return parsed.name;
    return parsed.min === parsed.max ? parsed.min : `${parsed.min}:${parsed.max}`;
  });

export type Port = z.output<ReturnType<typeof portSchema>>;

// ---------------------------------------------------------------------------
// ICMP, HTTP and rule metadata.

export const icmpFieldsSchema = () =>
  z
    .strictObject({
      type: z
        .int()
        .min(0)
        .max(254)
        .optional()
        .describe("ICMP type to match, 0-254 (8 is echo request)."),
      code: z
        .int()
        .min(0)
        .max(255)
        .optional()
        .describe("ICMP code to match, 0-255; only together with type."),
    })
    .superRefine((icmp, ctx) => {
      if (icmp.code !== undefined && icmp.type === undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["code"],
          message: "an ICMP code needs an ICMP type as well",
        });
      }
    });

export type ICMPFields = z.output<ReturnType<typeof icmpFieldsSchema>>;

const httpPathSchema = () =>
  z
    .strictObject({
      exact: z.string().max(1024).optional().describe("Matches this path exactly."),
      prefix: z.string().max(1024).optional().describe("Matches paths that start with this."),
    })
    .superRefine((p, ctx) => {
      const given = [p.exact, p.prefix].filter((x) => x !== undefined && x !== "");
      if (given.length !== 1) {
        ctx.addIssue({ code: "custom", message: "give exactly one of exact or prefix" });
        return;
      }
      const v = given[0] ?? "";
      if (!v.startsWith("/") || /[? #]/.test(v)) {
        ctx.addIssue({
          code: "custom",
          path: [p.exact ? "exact" : "prefix"],
          message: `HTTP path ${JSON.stringify(v)} must start with "/" and contain no '?', '#' or space`,
        });
      }
    });

export const httpMatchSchema = () =>
  z.strictObject({
    methods: z
      .array(z.string())
      .max(20)
      .superRefine((methods, ctx) => {
        methods.forEach((m, i) => {
          if (methods.indexOf(m) !== i) {
            ctx.addIssue({
              code: "custom",
              path: [i],
              message: `HTTP method "${m}" is listed twice`,
            });
          }
        });
      })
      .optional()
      .describe("HTTP methods to match (any of them), e.g. GET, PUT."),
    paths: z
      .array(httpPathSchema())
      .max(20)
      .optional()
      .describe("HTTP paths to match (any of them), each an exact path or a prefix."),
  });

export type HTTPMatch = z.output<ReturnType<typeof httpMatchSchema>>;

export const ruleMetadataSchema = () =>
  z.strictObject({
    annotations: annotationsSchema()
      .superRefine((annotations, ctx) => {
        for (const key of Object.keys(annotations)) {
          if (labelKeyProblem(key.toLowerCase())) {
            ctx.addIssue({
              code: "custom",
              path: [key],
              message: `annotation key "${key}" is invalid: an optional DNS prefix and '/', then 1-63 letters, digits, '-', '_' or '.'`,
            });
          }
        }
      })
      .optional()
      .describe("Free-form notes about the rule; they do not change what it matches."),
  });

export type RuleMetadata = z.output<ReturnType<typeof ruleMetadataSchema>>;

// ---------------------------------------------------------------------------
// Entity rules (one side of a rule).

export const serviceAccountMatchSchema = () =>
  z.strictObject({
    names: z
      .array(z.string())
      .optional()
      .describe("Matches pods running as any of these service accounts."),
    selector: selectorString()
      .optional()
      .describe(
        "Matches pods whose service account's labels match this selector (ANDed with names).",
      ),
  });

export const serviceMatchSchema = () =>
  z.strictObject({
    name: dnsSubdomainName().optional().describe("Name of the Kubernetes Service to match."),
    namespace: dnsSubdomainName()
      .optional()
      .describe(
        "Namespace of the Service; the policy's own namespace when omitted (required in global policy).",
      ),
  });

export const entityRuleSchema = () =>
  z
    .strictObject({
      nets: z
        .array(maskedCidrString())
        .optional()
        .describe("Matches addresses in any of these CIDRs (all of one IP family)."),
      notNets: z
        .array(maskedCidrString())
        .optional()
        .describe("Matches addresses outside all of these CIDRs."),
      selector: selectorString()
        .optional()
        .describe("Matches endpoints and network sets whose labels match this selector."),
      notSelector: selectorString()
        .optional()
        .describe("Matches anything except endpoints and network sets that match this selector."),
      namespaceSelector: selectorString({ global: "alone" })
        .optional()
        .describe(
          "Limits selector to endpoints in namespaces whose labels match; global() means non-namespaced resources only.",
        ),
      ports: z
        .array(portSchema())
        .optional()
        .describe(
          'Matches any of these ports: numbers, ranges "min:max" or port names (needs protocol TCP, UDP or SCTP).',
        ),
      notPorts: z
        .array(portSchema())
        .optional()
        .describe("Matches ports other than all of these (needs protocol TCP, UDP or SCTP)."),
      serviceAccounts: serviceAccountMatchSchema()
        .optional()
        .describe("Matches pods by the service account they run as."),
      services: serviceMatchSchema()
        .optional()
        .describe(
          "Matches the endpoints of a Kubernetes Service (excludes selectors, nets and service accounts).",
        ),
    })
    .superRefine(
      ...looseCheck((side, ctx) => {
        if (!looseObject(side["services"])) return;
        const clash = (why: string) =>
          ctx.addIssue({ code: "custom", path: ["services"], message: why });
        if (!nonEmptyString(looseObject(side["services"])?.["name"]))
          clash("services must name a service");
        if (nonEmptyString(side["namespaceSelector"]))
          clash("services cannot be combined with namespaceSelector");
        if (nonEmptyString(side["selector"]) || nonEmptyString(side["notSelector"])) {
          clash("services cannot be combined with selector or notSelector");
        }
        if (present(side["serviceAccounts"]))
          clash("services cannot be combined with serviceAccounts");
        if (nonEmpty(side["nets"]) || nonEmpty(side["notNets"]))
          clash("services cannot be combined with nets or notNets");
      }),
    );

export type EntityRule = z.output<ReturnType<typeof entityRuleSchema>>;

// ---------------------------------------------------------------------------
// The rule.

const SIDES = ["source", "destination"] as const;
const NET_FIELDS = ["nets", "notNets"] as const;
const PORT_FIELDS = ["ports", "notPorts"] as const;

function ruleChecks(rule: Loose, ctx: z.RefinementCtx): void {
  const issue = (path: PropertyKey[], message: string) =>
    ctx.addIssue({ code: "custom", path, message });
  const protocol = protocolNumber(rule["protocol"]);
  const notProtocol = protocolNumber(rule["notProtocol"]);
  // An invalid protocol is reported at its field; checks that depend on it are skipped.
  const protocolInvalid = present(rule["protocol"]) && protocol === undefined;
  const ipVersion = rule["ipVersion"];
  const sides = {
    source: looseObject(rule["source"]),
    destination: looseObject(rule["destination"]),
  };

  // Ports need a protocol that has ports.
  if (!protocolInvalid && !protocolSupportsPorts(rule["protocol"])) {
    for (const side of SIDES) {
      for (const field of PORT_FIELDS) {
        if (nonEmpty(sides[side]?.[field])) {
          issue([side, field], "rules that match ports must set protocol to TCP, UDP or SCTP");
        }
      }
    }
  }

  // ICMP matches need an ICMP protocol.
  for (const field of ["icmp", "notICMP"] as const) {
    if (present(rule[field]) && !protocolInvalid && protocol !== 1 && protocol !== 58) {
      issue([field], "rules that match ICMP type or code must set protocol to ICMP or ICMPv6");
    }
  }

  // ICMP is IPv4, ICMPv6 is IPv6.
  if ((protocol === 1 || notProtocol === 1) && present(ipVersion) && ipVersion !== 4) {
    issue(["ipVersion"], "protocol ICMP needs ipVersion 4 (use ICMPv6 for IPv6)");
  }
  if ((protocol === 58 || notProtocol === 58) && present(ipVersion) && ipVersion !== 6) {
    issue(["ipVersion"], "protocol ICMPv6 needs ipVersion 6 (use ICMP for IPv4)");
  }

  // One address family per rule: across both sides, nets and notNets.
  let seen4 = false;
  let seen6 = false;
  for (const side of SIDES) {
    for (const field of NET_FIELDS) {
      let has4 = false;
      let has6 = false;
      for (const net of looseList(sides[side]?.[field])) {
        const c = typeof net === "string" ? cidrOf(net) : undefined;
        if (c?.family === 4) has4 = true;
        if (c?.family === 6) has6 = true;
      }
      if ((has4 && ipVersion === 6) || (has6 && ipVersion === 4)) {
        issue(
          [side, field],
          `IPv${has4 ? 4 : 6} CIDRs do not match the rule's ipVersion ${String(ipVersion)}`,
        );
      }
      if ((has4 && has6) || (has4 && seen6) || (has6 && seen4)) {
        issue([side, field], "a rule cannot mix IPv4 and IPv6 CIDRs");
      }
      seen4 ||= has4;
      seen6 ||= has6;
    }
  }

  // HTTP matching: TCP only, Allow only.
  if (present(rule["http"])) {
    if (present(rule["protocol"]) && !protocolInvalid && protocol !== 6) {
      issue(["protocol"], "rules with an http match must use protocol TCP (or none)");
    }
    if (rule["action"] !== "Allow") issue(["http"], "an http match is only valid on Allow rules");
  }

  // A destination service brings its own ports.
  if (present(sides.destination?.["services"])) {
    for (const field of PORT_FIELDS) {
      if (nonEmpty(sides.destination?.[field])) {
        issue(
          ["destination", field],
          `destination ${field} cannot be combined with destination services`,
        );
      }
    }
  }
}

export const ruleSchema = () =>
  z
    .strictObject({
      action: z
        .enum(["Allow", "Deny", "Log", "Pass"])
        .describe(
          "What to do with a packet that matches: Allow, Deny, Log (and continue), or Pass (to the next tier).",
        ),
      ipVersion: z
        .literal([4, 6])
        .optional()
        .describe("Match only IPv4 (4) or only IPv6 (6) traffic."),
      protocol: protocolSchema()
        .optional()
        .describe("IP protocol to match: TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255."),
      notProtocol: protocolSchema().optional().describe("Match any IP protocol except this one."),
      icmp: icmpFieldsSchema()
        .optional()
        .describe("ICMP type and code to match (needs protocol ICMP or ICMPv6)."),
      notICMP: icmpFieldsSchema()
        .optional()
        .describe("ICMP type and code not to match (needs protocol ICMP or ICMPv6)."),
      source: entityRuleSchema().optional().describe("What the packet's source must match."),
      destination: entityRuleSchema()
        .optional()
        .describe("What the packet's destination must match."),
      http: httpMatchSchema()
        .optional()
        .describe(
          "HTTP request fields to match (Allow rules on ingress only; enforced by an application-layer proxy).",
        ),
      metadata: ruleMetadataSchema().optional().describe("Annotations attached to the rule."),
    })
    .superRefine(...looseCheck(ruleChecks));

export type Rule = z.output<ReturnType<typeof ruleSchema>>;

/** A list of rules (a policy's or profile's `ingress` or `egress`). */
export const rulesSchema = () => z.array(ruleSchema());

/**
 * Checks that depend on a rule's direction, for policies (Calico does not
 * apply them to profiles): services only on the remote side (source of
 * ingress, destination of egress), no http on egress, and, for global
 * policy, a namespace on every service match.
 */
export function checkPolicyRuleDirections(
  spec: Loose,
  ctx: z.RefinementCtx,
  options: { global: boolean },
): void {
  const issue = (path: PropertyKey[], message: string) =>
    ctx.addIssue({ code: "custom", path, message });
  looseList(spec["ingress"]).forEach((r, i) => {
    const rule = looseObject(r);
    if (present(looseObject(rule?.["destination"])?.["services"])) {
      issue(
        ["ingress", i, "destination", "services"],
        "services are not allowed in an ingress rule's destination",
      );
    }
    const services = looseObject(looseObject(rule?.["source"])?.["services"]);
    if (options.global && services && !nonEmptyString(services["namespace"])) {
      issue(
        ["ingress", i, "source", "services", "namespace"],
        "a global policy must give the service's namespace",
      );
    }
  });
  looseList(spec["egress"]).forEach((r, i) => {
    const rule = looseObject(r);
    if (present(looseObject(rule?.["source"])?.["services"])) {
      issue(
        ["egress", i, "source", "services"],
        "services are not allowed in an egress rule's source",
      );
    }
    if (present(rule?.["http"]))
      issue(["egress", i, "http"], "an http match is not allowed in egress rules");
    const services = looseObject(looseObject(rule?.["destination"])?.["services"]);
    if (options.global && services && !nonEmptyString(services["namespace"])) {
      issue(
        ["egress", i, "destination", "services", "namespace"],
        "a global policy must give the service's namespace",
      );
    }
  });
}
