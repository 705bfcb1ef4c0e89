// Resolving the KIND argument of get, delete, patch and label, and the list
// of accepted kind names shown in `--help`.
import { KINDS, lookupKind } from "../api/kinds.js";
import type { KindInfo } from "../api/kinds.js";
import { UsageError } from "./cli-errors.js";
import { formatTable } from "./format-table.js";

/** The kind `word` names (singular, plural or short name, any case). */
export function resolveKind(word: string, command: string): KindInfo {
  const kind = lookupKind(word);
  if (!kind) {
    throw new UsageError(
      `unknown resource type "${word}" (see 'twill ${command} --help' for the kinds and their short names)`,
      {
        command,
      },
    );
  }
  return kind;
}

/** A table of every kind: its name, short names, whether namespaced (plurals are accepted too). */
export function kindsHelp(): string {
  const rows = KINDS.map((k) => {
    const calico = k.apiVersion === "projectcalico.org/v3";
    const long = new Set([
      k.kind.toLowerCase(),
      k.plural,
      `${k.kind.toLowerCase()}.${k.apiVersion.split("/")[0] ?? ""}`,
    ]);
    return [
      calico ? k.kind : `${k.kind}.${k.apiVersion.split("/")[0] ?? ""}`,
      k.aliases.filter((a) => !long.has(a)).join(", "),
      k.namespaced ? "yes" : "no",
    ];
  });
  return formatTable(["kind", "short names", "namespaced"], rows)
    .split("\n")
    .map((l) => (l ? `  ${l}` : l))
    .join("\n");
}
