// `twill patch KIND NAME -p JSON`: a JSON merge patch (RFC 7386), validated,
// then written with compare-and-swap.
import type { Command } from "commander";
import { UsageError } from "../cli-errors.js";
import { DEFAULT_NAMESPACE } from "../check-documents.js";
import type { CommandContext } from "../context.js";
import { resolveKind } from "../kind-arg.js";
import { mergePatch } from "../merge-patch.js";
import { namespaceOption } from "./shared.js";
import { modifyResource } from "./modify.js";

interface PatchOptions {
  namespace?: string;
  patch: string;
}

function parsePatch(text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`-p is not valid JSON: ${(err as Error).message}`, { command: "patch" });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UsageError('-p must be a JSON object, such as \'{"spec":{"order":20}}\'', {
      command: "patch",
    });
  }
  return value as Record<string, unknown>;
}

async function run(
  ctx: CommandContext,
  kindWord: string,
  name: string,
  options: PatchOptions,
): Promise<void> {
  const kind = resolveKind(kindWord, "patch");
  const patch = parsePatch(options.patch);
  await modifyResource(ctx, {
    kind,
    name,
    namespace: kind.namespaced ? (options.namespace ?? DEFAULT_NAMESPACE) : undefined,
    source: "patch",
    change: (current) => mergePatch(current, patch),
    done: "patched",
    unchanged: "patched (no change)",
  });
}

export function registerPatch(program: Command, ctx: CommandContext): void {
  program
    .command("patch")
    .description("Change fields of a resource with a JSON merge patch (RFC 7386)")
    .argument("<kind>", "kind, plural or short name")
    .argument("<name>", "the resource's name")
    .requiredOption(
      "-p, --patch <json>",
      "the merge patch: objects merge, null removes a field, lists are replaced",
    )
    .addOption(namespaceOption())
    .addHelpText(
      "after",
      `
Examples:
  # Move a policy earlier
  twill patch gnp allow-dns -p '{"spec":{"order":20}}'

  # Disable a pool, and drop its nodeSelector
  twill patch ippool default-ipv4-ippool -p '{"spec":{"disabled":true,"nodeSelector":null}}'

The result is validated before it is written; the write fails with exit 5 if
the resource changed in between. Exits 3 when the resource does not exist.`,
    )
    .action((kind: string, name: string, options: PatchOptions) => run(ctx, kind, name, options));
}
