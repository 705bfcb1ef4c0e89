// Turns parsed documents into validated resources for apply, create,
// replace and validate: fills in the namespace of namespaced kinds (from -n,
// else "default"), validates every document, and collects every problem of
// every document so the user sees them all at once. Pure.
import { kindOf } from "../api/kinds.js";
import type { KindInfo } from "../api/kinds.js";
import type { ParsedDocument, ParseResult } from "../api/parse-documents.js";
import type { FieldError, Resource } from "../api/resource.js";
import { describeResource, validateResource } from "../api/validate.js";

export const DEFAULT_NAMESPACE = "default";

export interface ValidDocument {
  source: string;
  kind: KindInfo;
  resource: Resource;
}

export interface InvalidDocument {
  source: string;
  /** `GlobalNetworkPolicy "x"`, as far as the document says. */
  label: string;
  errors: FieldError[];
}

export interface CheckResult {
  valid: ValidDocument[];
  invalid: InvalidDocument[];
}

export interface NamespaceOptions {
  /** The -n flag, when given. */
  namespace?: string | undefined;
}

/**
 * The document with metadata.namespace set for namespaced kinds, or a
 * FieldError when it names a namespace other than an explicit -n.
 */
export function withNamespace(
  doc: unknown,
  options: NamespaceOptions,
): { doc: unknown; error?: FieldError } {
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return { doc };
  const d = doc as { apiVersion?: unknown; kind?: unknown; metadata?: unknown };
  const kind = kindOf(d.apiVersion, d.kind);
  if (
    !kind?.namespaced ||
    typeof d.metadata !== "object" ||
    d.metadata === null ||
    Array.isArray(d.metadata)
  ) {
    return { doc };
  }
  const meta = d.metadata as { namespace?: unknown };
  if (meta.namespace === undefined) {
    return {
      doc: { ...d, metadata: { ...meta, namespace: options.namespace ?? DEFAULT_NAMESPACE } },
    };
  }
  if (options.namespace !== undefined && meta.namespace !== options.namespace) {
    return {
      doc,
      error: {
        path: "metadata.namespace",
        message: `${JSON.stringify(meta.namespace)} does not match --namespace "${options.namespace}"`,
      },
    };
  }
  return { doc };
}

/** Validates every document; nothing is dropped silently. */
export function checkDocuments(
  documents: readonly ParsedDocument[],
  options: NamespaceOptions,
): CheckResult {
  const out: CheckResult = { valid: [], invalid: [] };
  for (const { value, source } of documents) {
    const { doc, error } = withNamespace(value, options);
    const result = validateResource(doc);
    const label = describeResource(doc);
    if (result.ok && !error) {
      out.valid.push({ source, kind: result.kind, resource: result.resource });
    } else {
      const errors = [...(error ? [error] : []), ...(result.ok ? [] : result.errors)];
      out.invalid.push({ source, label, errors });
    }
  }
  return out;
}

/** One line per error: `GlobalNetworkPolicy "x" (file.yaml#2): spec.order: reason`. */
export function formatInvalid(invalid: readonly InvalidDocument[]): string {
  return invalid
    .flatMap((d) =>
      d.errors.map((e) => `${d.label} (${d.source}): ${e.path ? `${e.path}: ` : ""}${e.message}\n`),
    )
    .join("");
}

/** One line per read or syntax error: `file.yaml#2: message`. */
export function formatParseErrors(errors: ParseResult["errors"]): string {
  return errors.map((e) => `${e.source}: ${e.message.trimEnd().replace(/\n/g, "\n  ")}\n`).join("");
}
