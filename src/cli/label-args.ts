// The `twill label` arguments, with kubectl's semantics: `key=value` sets a
// label, `key-` removes one, and changing a label that already has a
// different value needs --overwrite. Pure; key and value syntax is checked
// afterwards by the resource's own validation, so errors carry its path.
import { TwillError } from "../util/errors.js";

export interface LabelChanges {
  /** Labels to set, in argument order. */
  set: Record<string, string>;
  /** Keys to remove. */
  remove: string[];
}

/** Parses `k=v` and `k-` arguments; anything else is an Invalid error. */
export function parseLabelArgs(args: readonly string[]): LabelChanges {
  const set: Record<string, string> = {};
  const remove: string[] = [];
  if (args.length === 0)
    throw new TwillError("Invalid", "at least one label update is required (key=value or key-)");
  for (const arg of args) {
    const eq = arg.indexOf("=");
    if (eq > 0) {
      const key = arg.slice(0, eq);
      const value = arg.slice(eq + 1);
      if (key in set && set[key] !== value) {
        throw new TwillError(
          "Invalid",
          `label "${key}" is given twice, as "${set[key]}" and "${value}"`,
        );
      }
      set[key] = value;
    } else if (eq < 0 && arg.length > 1 && arg.endsWith("-")) {
      remove.push(arg.slice(0, -1));
    } else {
      throw new TwillError(
        "Invalid",
        `invalid label update "${arg}": use key=value to set or key- to remove`,
      );
    }
  }
  for (const key of remove) {
    if (key in set)
      throw new TwillError(
        "Invalid",
        `label "${key}" cannot be both set and removed in one command`,
      );
  }
  return { set, remove };
}

export interface LabelResult {
  labels: Record<string, string>;
  /** False when the labels come out exactly as they were. */
  changed: boolean;
  /** Removals of labels that were not there. */
  warnings: string[];
}

/**
 * The labels after `changes`. Throws Invalid when a label already has a
 * different value and `overwrite` is false, naming the key and both values.
 */
export function applyLabelChanges(
  current: Readonly<Record<string, string>> | undefined,
  changes: LabelChanges,
  options: { overwrite: boolean },
): LabelResult {
  const labels: Record<string, string> = { ...current };
  const warnings: string[] = [];
  let changed = false;
  for (const [key, value] of Object.entries(changes.set)) {
    const old = labels[key];
    if (old === value) continue;
    if (old !== undefined && !options.overwrite) {
      throw new TwillError(
        "Invalid",
        `label "${key}" already has the value "${old}"; use --overwrite to change it to "${value}"`,
      );
    }
    labels[key] = value;
    changed = true;
  }
  for (const key of changes.remove) {
    if (key in labels) {
      delete labels[key];
      changed = true;
    } else {
      warnings.push(`label "${key}" not found`);
    }
  }
  return { labels, changed, warnings };
}
