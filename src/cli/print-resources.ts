// Renders resources for `twill get`: a table (normal or wide), YAML or JSON
// that can be applied again, or `kind.group/name` lines. Pure.
import { stringify } from "yaml";
import type { KindInfo } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { columnsFor } from "./columns.js";
import { formatTable } from "./format-table.js";

export const OUTPUT_FORMATS = ["table", "wide", "yaml", "json", "name"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** The API group of a kind ("projectcalico.org", "networking.k8s.io"). */
export function groupOf(kind: KindInfo): string {
  const slash = kind.apiVersion.indexOf("/");
  return slash < 0 ? "" : kind.apiVersion.slice(0, slash);
}

/** kubectl's name for one resource: `globalnetworkpolicy.projectcalico.org/x`. */
export function resourceRef(kind: KindInfo, name: string): string {
  const group = groupOf(kind);
  return `${kind.kind.toLowerCase()}${group ? `.${group}` : ""}/${name}`;
}

const METADATA_ORDER = [
  "name",
  "namespace",
  "labels",
  "annotations",
  "resourceVersion",
  "uid",
  "creationTimestamp",
];

/** Metadata with the identifying fields first and the server-set ones last. */
function orderedMetadata(metadata: Resource["metadata"]): Resource["metadata"] {
  const m = metadata as unknown as Record<string, unknown>;
  const keys = [
    ...METADATA_ORDER.filter((k) => k in m),
    ...Object.keys(m).filter((k) => !METADATA_ORDER.includes(k)),
  ];
  return Object.fromEntries(keys.map((k) => [k, m[k]])) as unknown as Resource["metadata"];
}

/** Just the fields a user can apply again, in the usual order. */
export function exportable(resource: Resource): Resource {
  const out: Resource = {
    apiVersion: resource.apiVersion,
    kind: resource.kind,
    metadata: orderedMetadata(resource.metadata),
  };
  if (resource.spec !== undefined) out.spec = resource.spec;
  return out;
}

export interface PrintOptions {
  format: OutputFormat;
  /**
   * True when the user asked for a list (no NAME, or several names): YAML and
   * JSON then print a `<Kind>List` (re-appliable: lists are unwrapped on input).
   */
  asList: boolean;
  /** Adds a NAMESPACE column to tables (`-A`). */
  withNamespace: boolean;
  /** The datastore revision the list was read at, for the List's metadata. */
  revision?: string;
}

function listOf(kind: KindInfo, resources: readonly Resource[], revision: string | undefined) {
  return {
    apiVersion: kind.apiVersion,
    kind: `${kind.kind}List`,
    metadata: revision === undefined ? {} : { resourceVersion: revision },
    items: resources.map(exportable),
  };
}

/** The text `twill get` prints on stdout for `resources` (all of `kind`). */
export function printResources(
  kind: KindInfo,
  resources: readonly Resource[],
  options: PrintOptions,
): string {
  switch (options.format) {
    case "table":
    case "wide": {
      const columns = columnsFor(kind.id, {
        wide: options.format === "wide",
        withNamespace: options.withNamespace,
      });
      return formatTable(
        columns.map((c) => c.header),
        resources.map((r) => columns.map((c) => c.value(r))),
      );
    }
    case "name":
      return resources.map((r) => `${resourceRef(kind, r.metadata.name)}\n`).join("");
    case "json": {
      const value =
        options.asList || resources.length !== 1
          ? listOf(kind, resources, options.revision)
          : exportable(resources[0]!);
      return `${JSON.stringify(value, null, 2)}\n`;
    }
    case "yaml": {
      const value =
        options.asList || resources.length !== 1
          ? listOf(kind, resources, options.revision)
          : exportable(resources[0]!);
      return stringify(value, { lineWidth: 0, aliasDuplicateObjects: false });
    }
  }
}
