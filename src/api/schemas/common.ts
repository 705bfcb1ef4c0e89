// Building blocks shared by every kind's schema: object metadata, names,
// labels, addresses and the resource envelope. Each kind's file combines
// them into one zod schema; TypeScript types are inferred from it and the
// reference docs are generated from it, so types, validation and docs cannot
// drift apart.
//
// Conventions:
// - Objects are strict: an unknown field is an error at its path.
// - Every field carries a description (`.describe(...)`), used by gen-docs.
// - Semantic checks that need several fields (port ranges with protocols,
//   address families in one rule) use superRefine and add issues with the
//   field's path relative to the object being refined.
import { z } from "zod";
import type { KindInfo } from "../kinds.js";
import { formatCIDR, parseCIDR, parseIP } from "../ip.js";
import type { CIDR } from "../ip.js";
import { parseSelector, SelectorError, selectorUsesGlobal } from "../../selector/index.js";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Why `text` is not a DNS-1123 subdomain, or undefined when it is one. */
export function dnsSubdomainProblem(text: string): string | undefined {
  if (text.length === 0) return "must not be empty";
  if (text.length > 253) return `"${text.slice(0, 20)}…" is longer than 253 characters`;
  if (!DNS_SUBDOMAIN.test(text)) {
    return `"${text}" is not a valid DNS-1123 subdomain (lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)`;
  }
  return undefined;
}

/** Why `text` is not a DNS-1123 label, or undefined when it is one. */
export function dnsLabelProblem(text: string): string | undefined {
  if (text.length === 0) return "must not be empty";
  if (text.length > 63) return `"${text.slice(0, 20)}…" is longer than 63 characters`;
  if (!DNS_LABEL.test(text)) {
    return `"${text}" is not a valid DNS-1123 label (lower-case letters, digits and '-', starting and ending with a letter or digit)`;
  }
  return undefined;
}

/** Why `key` is not a valid Kubernetes/Calico label key, or undefined. */
export function labelKeyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined) {
    const p = dnsSubdomainProblem(prefix);
    if (p) return `label key "${key}": prefix ${p}`;
  }
  if (name.length === 0 || name.length > 63 || !LABEL_NAME.test(name)) {
    return `label key "${key}" is invalid: the name part must be 1-63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Why `value` is not a valid label value, or undefined. */
export function labelValueProblem(value: string): string | undefined {
  if (value === "") return undefined;
  if (value.length > 63 || !LABEL_NAME.test(value)) {
    return `label value "${value}" is invalid: at most 63 characters of letters, digits, '-', '_' and '.', starting and ending with a letter or digit`;
  }
  return undefined;
}

/** A string checked by a "problem" function (undefined = fine). */
export function checkedString(problem: (s: string) => string | undefined) {
  return z.string().superRefine((s, ctx) => {
    const p = problem(s);
    if (p) ctx.addIssue({ code: "custom", message: p });
  });
}

export const dnsSubdomainName = () => checkedString(dnsSubdomainProblem);
export const dnsLabelName = () => checkedString(dnsLabelProblem);

/** A map of label keys to values, each validated; errors name the key. */
export const labelsSchema = () =>
  z.record(z.string(), z.string()).superRefine((labels, ctx) => {
    for (const [k, v] of Object.entries(labels)) {
      const kp = labelKeyProblem(k);
      if (kp) ctx.addIssue({ code: "custom", message: kp, path: [k] });
      const vp = labelValueProblem(v);
      if (vp) ctx.addIssue({ code: "custom", message: vp, path: [k] });
    }
  });

export const annotationsSchema = () => z.record(z.string(), z.string());

export interface MetadataOptions {
  namespaced: boolean;
  /** Checks the name; defaults to a DNS-1123 subdomain. */
  name?: z.ZodType<string>;
}

/** The `metadata` block: name (required), namespace, labels, annotations and server-set fields. */
export function metadataSchema(options: MetadataOptions) {
  const base = {
    name: (options.name ?? dnsSubdomainName()).describe("The resource's name."),
    labels: labelsSchema().optional().describe("Labels, for selectors."),
    annotations: annotationsSchema().optional().describe("Free-form annotations."),
    resourceVersion: z
      .string()
      .optional()
      .describe(
        "Set by the datastore; when given on update, the write succeeds only if unchanged.",
      ),
    uid: z.string().optional().describe("Set by the datastore on create."),
    creationTimestamp: z.string().optional().describe("Set by the datastore on create (RFC 3339)."),
  };
  // One shape for both scopes, so every kind's type has metadata.namespace;
  // a cluster-scoped kind rejects it as an unknown field.
  const namespaced = options.namespaced;
  return z
    .strictObject({
      ...base,
      namespace: dnsLabelName().optional().describe('The namespace; "default" when omitted.'),
    })
    .superRefine((meta, ctx) => {
      if (!namespaced && meta.namespace !== undefined) {
        ctx.addIssue({
          code: "custom",
          path: ["namespace"],
          message: "unknown field (this kind is cluster-scoped: it has no namespace)",
        });
      }
    });
}

/**
 * The envelope: apiVersion and kind fixed to the kind's, metadata, and spec.
 * `spec` may be omitted in the document when every spec field is optional.
 */
export function resourceSchema<S extends z.ZodType, O extends boolean = false>(
  kind: KindInfo,
  spec: S,
  options?: { name?: z.ZodType<string>; specOptional?: O },
) {
  const metadataOptions: MetadataOptions = { namespaced: kind.namespaced };
  if (options?.name) metadataOptions.name = options.name;
  const specField = (options?.specOptional ? spec.optional() : spec) as O extends true
    ? z.ZodOptional<S>
    : S;
  return z.strictObject({
    apiVersion: z.literal(kind.apiVersion).describe(`Always "${kind.apiVersion}".`),
    kind: z.literal(kind.kind).describe(`Always "${kind.kind}".`),
    metadata: metadataSchema(metadataOptions),
    spec: specField,
  });
}

/** An IPv4 or IPv6 address. */
export const ipAddress = () =>
  z.string().superRefine((s, ctx) => {
    if (!parseIP(s)) ctx.addIssue({ code: "custom", message: `"${s}" is not an IP address` });
  });

/** A CIDR such as "10.0.0.0/16"; with allowBareIP a plain address means /32 or /128. */
export const cidrString = (options?: { allowBareIP?: boolean; family?: 4 | 6 }) =>
  z.string().superRefine((s, ctx) => {
    const c = parseCIDR(s, options);
    if (!c) {
      ctx.addIssue({
        code: "custom",
        message: options?.allowBareIP
          ? `"${s}" is not an IP address or CIDR`
          : `"${s}" is not a CIDR (address/prefix-length)`,
      });
      return;
    }
    if (options?.family && c.family !== options.family) {
      ctx.addIssue({ code: "custom", message: `"${s}" is not an IPv${options.family} CIDR` });
    }
  });

/** Parses a CIDR that the schema already accepted (bare IPs allowed). */
export function cidrOf(text: string): CIDR | undefined {
  return parseCIDR(text, { allowBareIP: true });
}

/** A BGP AS number: a plain number (0-4294967295) or asdot "X.Y", normalised to a number. */
export const asNumber = () =>
  z.union([z.number(), z.string()]).transform((v, ctx) => {
    let n: number | undefined;
    if (typeof v === "number") n = v;
    else if (/^[0-9]+$/.test(v)) n = Number(v);
    else {
      const m = /^([0-9]+)\.([0-9]+)$/.exec(v);
      if (m && Number(m[1]) <= 65535 && Number(m[2]) <= 65535) {
        n = Number(m[1]) * 65536 + Number(m[2]);
      }
    }
    if (n === undefined || !Number.isInteger(n) || n < 0 || n > 4294967295) {
      ctx.addIssue({
        code: "custom",
        message: `AS number ${JSON.stringify(v)} is invalid: use 0-4294967295 or asdot notation X.Y`,
      });
      return z.NEVER;
    }
    return n;
  });

/** What each kind's file contributes to the registry in index.ts. */
export interface KindSchema {
  schema: z.ZodType;
  /** A realistic, valid example document (used in the generated docs and tests). */
  example: Record<string, unknown>;
}

/**
 * A CIDR with no host bits set ("10.0.0.0/24", not "10.0.0.1/24"), as Calico
 * demands where a network is meant; with allowBareIP a plain address means
 * /32 or /128.
 */
export const maskedCidrString = (options?: { allowBareIP?: boolean; family?: 4 | 6 }) =>
  cidrString(options).superRefine((s, ctx) => {
    const c = parseCIDR(s, options);
    if (c?.hostBitsSet) {
      ctx.addIssue({
        code: "custom",
        message: `"${s}" has host bits set: the network is "${formatCIDR(c)}"`,
      });
    }
  });

/**
 * Why `name` is not a valid named port (an IANA service name, as Kubernetes
 * and Calico require: 1-15 of a-z, 0-9 and '-', at least one letter, no
 * leading, trailing or doubled '-'), or undefined.
 */
export function portNameProblem(name: string): string | undefined {
  const ok =
    name.length >= 1 &&
    name.length <= 15 &&
    /^[a-z0-9-]+$/.test(name) &&
    /[a-z]/.test(name) &&
    !name.startsWith("-") &&
    !name.endsWith("-") &&
    !name.includes("--");
  if (ok) return undefined;
  return `"${name}" is not a valid port name (1-15 lower-case letters, digits and '-', at least one letter, no leading, trailing or doubled '-')`;
}

/** Where `global()` may appear in a selector field. */
export type GlobalSelectorUse = "never" | "alone";

/**
 * A selector in Calico's language, parsed to check it (the text is kept as
 * given). Errors carry the parser's position and what it expected. `global()`
 * is refused unless `global: "alone"`, which allows exactly `global()` and
 * nothing combined with it (Calico's rule for a rule's namespaceSelector).
 */
export function selectorString(options?: { global?: GlobalSelectorUse }) {
  const globalUse = options?.global ?? "never";
  return z.string().superRefine((text, ctx) => {
    let selector;
    try {
      selector = parseSelector(text);
    } catch (err) {
      if (!(err instanceof SelectorError)) throw err;
      ctx.addIssue({ code: "custom", message: `invalid ${err.message}` });
      return;
    }
    if (!selectorUsesGlobal(selector)) return;
    if (globalUse === "never") {
      ctx.addIssue({
        code: "custom",
        message: `selector ${JSON.stringify(text)}: global() may only be used in a rule's namespaceSelector`,
      });
    } else if (selector.ast.kind !== "global") {
      ctx.addIssue({
        code: "custom",
        message: `selector ${JSON.stringify(text)}: global() cannot be combined with other expressions`,
      });
    }
  });
}

// Durations and configuration names (used by the infrastructure kinds).

const DURATION_PART = /([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/y;
const DURATION_UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * The length in milliseconds of a Go-style duration as Calico writes them
 * ("90s", "1m30s", "250ms", "0"), or undefined when the text is not one.
 * Negative durations are refused: no Calico field means anything by them.
 */
export function parseDuration(text: string): number | undefined {
  if (text === "0") return 0;
  if (text.length === 0) return undefined;
  let total = 0;
  DURATION_PART.lastIndex = 0;
  while (DURATION_PART.lastIndex < text.length) {
    const m = DURATION_PART.exec(text);
    if (!m) return undefined;
    total += Number(m[1]) * (DURATION_UNIT_MS[m[2] ?? ""] ?? Number.NaN);
  }
  return Number.isFinite(total) ? total : undefined;
}

/** Why `text` is not a duration, or undefined when it is one. */
export function durationProblem(text: string): string | undefined {
  if (parseDuration(text) !== undefined) return undefined;
  return `"${text}" is not a duration: use numbers with units ns, us, ms, s, m or h, e.g. "90s" or "1m30s"`;
}

/** A duration such as "90s" or "1m30s", kept as written. */
export const durationString = () => checkedString(durationProblem);

/**
 * Why `name` is not a valid name for a configuration kind that exists once
 * for the cluster ("default") and optionally once per node ("node.<node>").
 */
export function nodeScopedConfigNameProblem(kind: string, name: string): string | undefined {
  if (name === "default") return undefined;
  if (name.startsWith("node.")) {
    const node = name.slice("node.".length);
    const p = dnsSubdomainProblem(node);
    return p ? `${kind} name "${name}": the node name ${p}` : undefined;
  }
  return `${kind} name "${name}" is invalid: use "default" for the cluster-wide settings or "node.<node name>" for one node's overrides`;
}

/** The node a node-scoped configuration name is for ("node.a" → "a"), or undefined for "default". */
export function configNameNode(name: string): string | undefined {
  return name.startsWith("node.") ? name.slice("node.".length) : undefined;
}

/** The `metadata.name` of a kind that is "default" or "node.<node>". */
export const nodeScopedConfigName = (kind: string) =>
  checkedString((name) => nodeScopedConfigNameProblem(kind, name));

/** The `metadata.name` of a singleton kind, which Calico requires to be "default". */
export const singletonName = (kind: string) =>
  checkedString((name) =>
    name === "default"
      ? undefined
      : `${kind} name "${name}" is invalid: there is one ${kind} per cluster and it must be named "default"`,
  );
