// `twill get KIND [NAME...]`: a table (or YAML, JSON, names) of resources.
import { Option } from "commander";
import type { Command } from "commander";
import type { Resource } from "../../api/resource.js";
import { UsageError, formatError, exitCodeFor, rewordStoreError } from "../cli-errors.js";
import { DEFAULT_NAMESPACE } from "../check-documents.js";
import type { CommandContext } from "../context.js";
import { kindsHelp, resolveKind } from "../kind-arg.js";
import { printResources } from "../print-resources.js";
import type { OutputFormat } from "../print-resources.js";
import { TwillError, isErrorCode } from "../../util/errors.js";
import { DEFAULT_TIER_ORDER } from "../../api/schemas/tier.js";
import { namespaceOption } from "./shared.js";

interface GetOptions {
  namespace?: string;
  allNamespaces?: boolean;
  output?: "yaml" | "json" | "wide" | "name";
}

async function run(
  ctx: CommandContext,
  kindWord: string,
  names: string[],
  options: GetOptions,
): Promise<void> {
  const kind = resolveKind(kindWord, "get");
  const all = (options.allNamespaces ?? false) && kind.namespaced;
  if (options.allNamespaces && names.length > 0) {
    throw new UsageError("a resource cannot be fetched by name across all namespaces (drop -A)", {
      command: "get",
    });
  }
  const namespace = kind.namespaced && !all ? (options.namespace ?? DEFAULT_NAMESPACE) : undefined;
  const format: OutputFormat = options.output ?? "table";
  const store = await ctx.store();

  let items: Resource[] = [];
  let revision: string | undefined;
  if (names.length === 0) {
    const list = await store.list(kind, namespace === undefined ? {} : { namespace });
    items = list.items;
    revision = String(list.revision);
    if (kind.id === "Tier" && !items.some((t) => t.metadata.name === "default")) {
      items = [implicitDefaultTier(), ...items];
    }
  } else {
    for (const name of names) {
      try {
        items.push(await store.get(kind, name, namespace === undefined ? {} : { namespace }));
      } catch (err) {
        const e = rewordStoreError(err, kind, name, namespace);
        if (kind.id === "Tier" && name === "default" && isErrorCode(e, "NotFound")) {
          items.push(implicitDefaultTier());
          continue;
        }
        if (!(e instanceof TwillError) || e.code !== "NotFound") throw e;
        ctx.output.err(formatError(e));
        ctx.fail(exitCodeFor(e));
      }
    }
  }

  if (names.length === 0 && items.length === 0 && (format === "table" || format === "wide")) {
    ctx.output.err(
      namespace === undefined
        ? "No resources found.\n"
        : `No resources found in namespace "${namespace}".\n`,
    );
    return;
  }
  if (items.length === 0 && names.length > 0) return; // every name was reported missing
  const printOptions = { format, asList: names.length !== 1, withNamespace: all };
  ctx.output.out(
    printResources(
      kind,
      items,
      revision === undefined ? printOptions : { ...printOptions, revision },
    ),
  );
}

/**
 * The "default" tier exists whether or not it was ever stored (policies with
 * no tier belong to it, at its fixed order), so `get tiers` shows it as
 * Calico does. It has no resourceVersion: it is not in the datastore until
 * someone applies it.
 */
function implicitDefaultTier(): Resource {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "Tier",
    metadata: { name: "default" },
    spec: { order: DEFAULT_TIER_ORDER, defaultAction: "Deny" },
  } as Resource;
}

export function registerGet(program: Command, ctx: CommandContext): void {
  program
    .command("get")
    .description("Show resources of one kind, as a table, YAML, JSON or names")
    .argument("<kind>", "kind, plural or short name (see below)")
    .argument("[names...]", "only these resources (default: all of the kind)")
    .addOption(namespaceOption())
    .option(
      "-A, --all-namespaces",
      "every namespace (namespaced kinds; adds a NAMESPACE column)",
      false,
    )
    .addOption(
      new Option(
        "-o, --output <format>",
        "yaml or json (re-appliable), wide (more columns) or name",
      ).choices(["yaml", "json", "wide", "name"]),
    )
    .addHelpText(
      "after",
      () => `
Examples:
  # Global network policies as a table
  twill get gnp

  # One pool as YAML that 'twill apply -f' accepts again
  twill get ippool default-ipv4-ippool -o yaml

  # Every namespaced policy, in every namespace
  twill get networkpolicies -A

  # Round trip
  twill get gnp -o yaml > gnp.yaml && twill apply -f gnp.yaml

Kinds (by name, plural or short name, in any case):
${kindsHelp()}
Exits 3 when a named resource does not exist.`,
    )
    .action((kind: string, names: string[], options: GetOptions) => run(ctx, kind, names, options));
}
