// `twill label KIND NAME k=v ... k-`: set or remove labels, kubectl-style.
import type { Command } from "commander";
import { UsageError } from "../cli-errors.js";
import { DEFAULT_NAMESPACE } from "../check-documents.js";
import type { CommandContext } from "../context.js";
import { resolveKind } from "../kind-arg.js";
import { applyLabelChanges, parseLabelArgs } from "../label-args.js";
import type { LabelChanges } from "../label-args.js";
import type { Resource } from "../../api/resource.js";
import { TwillError } from "../../util/errors.js";
import { namespaceOption } from "./shared.js";
import { modifyResource } from "./modify.js";

interface LabelOptions {
  namespace?: string;
  overwrite?: boolean;
}

async function run(
  ctx: CommandContext,
  kindWord: string,
  name: string,
  args: string[],
  options: LabelOptions,
): Promise<void> {
  const kind = resolveKind(kindWord, "label");
  let changes: LabelChanges;
  try {
    changes = parseLabelArgs(args);
  } catch (err) {
    throw err instanceof TwillError ? new UsageError(err.message, { command: "label" }) : err;
  }
  await modifyResource(ctx, {
    kind,
    name,
    namespace: kind.namespaced ? (options.namespace ?? DEFAULT_NAMESPACE) : undefined,
    source: "labels",
    change: (current: Resource) => {
      const r = applyLabelChanges(current.metadata.labels, changes, {
        overwrite: options.overwrite ?? false,
      });
      for (const w of r.warnings) ctx.output.err(`warning: ${w}\n`);
      const { labels: _old, ...metadata } = current.metadata;
      return {
        ...current,
        metadata: Object.keys(r.labels).length > 0 ? { ...metadata, labels: r.labels } : metadata,
      };
    },
    done: "labeled",
    unchanged: "not labeled",
  });
}

export function registerLabel(program: Command, ctx: CommandContext): void {
  program
    .command("label")
    .description("Set or remove labels of a resource")
    .argument("<kind>", "kind, plural or short name")
    .argument("<name>", "the resource's name")
    .argument("<labels...>", "key=value to set, key- to remove")
    .option("--overwrite", "allow changing a label that already has a different value")
    .addOption(namespaceOption())
    .addHelpText(
      "after",
      `
Examples:
  # Add a label
  twill label node host-1 rack=rack-1

  # Change it (needs --overwrite) and remove another
  twill label node host-1 rack=rack-2 old- --overwrite

  # Label a namespaced network set
  twill label netset partner-apis tier=gold -n shop

Labels are validated like the rest of the resource; the write fails with
exit 5 if the resource changed in between.`,
    )
    .action((kind: string, name: string, labels: string[], options: LabelOptions) =>
      run(ctx, kind, name, labels, options),
    );
}
