// Validation entry point: finds a document's kind, runs its schema, and turns
// zod's issues into FieldErrors with readable paths ("spec.ingress[0].action")
// and reasons. Every error of a resource is reported at once.
import type { z } from "zod";
import { kindOf, KINDS } from "./kinds.js";
import type { KindInfo } from "./kinds.js";
import type { FieldError, Resource } from "./resource.js";
import { SCHEMAS } from "./schemas/index.js";

export type ValidationResult =
  | { ok: true; kind: KindInfo; resource: Resource }
  | { ok: false; kind: KindInfo | undefined; errors: FieldError[] };

/** "spec.ingress[0].destination.ports[1]" from ["spec","ingress",0,...]. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else {
      const s = String(p);
      out += /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? (out ? `.${s}` : s) : `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  if (typeof v === "string") return `"${v}"`;
  return `${typeof v} ${String(v)}`;
}

function issueToErrors(issue: z.core.$ZodIssue): FieldError[] {
  const path = formatPath(issue.path);
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return [{ path, message: `required field is missing` }];
      return [{ path, message: `expected ${issue.expected}, got ${describeValue(issue.input)}` }];
    case "unrecognized_keys":
      return issue.keys.map((k) => ({
        path: formatPath([...issue.path, k]),
        message: "unknown field",
      }));
    case "invalid_value":
      if (issue.input === undefined) return [{ path, message: "required field is missing" }];
      return [
        {
          path,
          message: `${describeValue(issue.input)} is not one of ${issue.values
            .map((v) => JSON.stringify(v))
            .join(", ")}`,
        },
      ];
    case "too_small":
      return [
        {
          path,
          message:
            issue.origin === "string" || issue.origin === "array"
              ? `must have at least ${issue.minimum} ${issue.origin === "string" ? "characters" : "items"}`
              : `must be at least ${issue.minimum}${issue.inclusive === false ? " (exclusive)" : ""}, got ${String(issue.input)}`,
        },
      ];
    case "too_big":
      return [
        {
          path,
          message:
            issue.origin === "string" || issue.origin === "array"
              ? `must have at most ${issue.maximum} ${issue.origin === "string" ? "characters" : "items"}`
              : `must be at most ${issue.maximum}${issue.inclusive === false ? " (exclusive)" : ""}, got ${String(issue.input)}`,
        },
      ];
    case "invalid_union": {
      // Report the branch that got furthest: the one with the fewest issues.
      const branches = issue.errors.filter((b) => b.length > 0);
      if (branches.length === 0) return [{ path, message: issue.message }];
      const best = branches.reduce((a, b) => (b.length < a.length ? b : a));
      return best.flatMap((i) => issueToErrors(i));
    }
    default:
      return [{ path, message: issue.message }];
  }
}

/** Turns a zod error into FieldErrors, sorted by path, without duplicates. */
export function fieldErrors(error: z.ZodError): FieldError[] {
  const seen = new Set<string>();
  const out: FieldError[] = [];
  for (const issue of error.issues) {
    for (const e of issueToErrors(issue)) {
      const key = `${e.path}\u0000${e.message}`;
      if (!seen.has(key)) {
        seen.add(key);
        out.push(e);
      }
    }
  }
  return out;
}

/**
 * Validates one document (already parsed from YAML/JSON). On success the
 * resource comes back with Calico's defaults filled in (what is stored).
 */
export function validateResource(doc: unknown): ValidationResult {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return {
      ok: false,
      kind: undefined,
      errors: [{ path: "", message: "a resource must be an object" }],
    };
  }
  const { apiVersion, kind } = doc as { apiVersion?: unknown; kind?: unknown };
  const info = kindOf(apiVersion, kind);
  if (!info) {
    const known = KINDS.filter((k) => k.kind === kind);
    const errors: FieldError[] = [];
    if (typeof kind !== "string")
      errors.push({ path: "kind", message: "required field is missing" });
    else if (known.length === 0) {
      errors.push({ path: "kind", message: `unknown kind "${kind}"` });
    }
    if (apiVersion === undefined) {
      errors.push({ path: "apiVersion", message: "required field is missing" });
    } else if (known.length > 0) {
      errors.push({
        path: "apiVersion",
        message: `kind ${String(kind)} needs apiVersion ${known.map((k) => `"${k.apiVersion}"`).join(" or ")}, got ${describeValue(apiVersion)}`,
      });
    }
    return { ok: false, kind: undefined, errors };
  }
  const schema = SCHEMAS[info.id].schema;
  const result = schema.safeParse(doc, { reportInput: true });
  if (!result.success) return { ok: false, kind: info, errors: fieldErrors(result.error) };
  return { ok: true, kind: info, resource: result.data as Resource };
}

/** A one-line description of a resource for messages: `GlobalNetworkPolicy "x"`. */
export function describeResource(doc: unknown): string {
  const d = (typeof doc === "object" && doc !== null ? doc : {}) as {
    kind?: unknown;
    metadata?: { name?: unknown; namespace?: unknown };
  };
  const kind = typeof d.kind === "string" ? d.kind : "resource";
  const name = typeof d.metadata?.name === "string" ? d.metadata.name : "(no name)";
  const ns =
    typeof d.metadata?.namespace === "string" ? ` in namespace "${d.metadata.namespace}"` : "";
  return `${kind} "${name}"${ns}`;
}
