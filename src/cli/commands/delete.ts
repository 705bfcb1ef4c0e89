// `twill delete -f FILE|DIR|-` and `twill delete KIND NAME...`.
import type { Command } from "commander";
import { kindOf } from "../../api/kinds.js";
import type { KindInfo } from "../../api/kinds.js";
import { describeResource } from "../../api/validate.js";
import { EXIT, UsageError } from "../cli-errors.js";
import { DEFAULT_NAMESPACE, formatParseErrors } from "../check-documents.js";
import type { CommandContext } from "../context.js";
import { resolveKind } from "../kind-arg.js";
import { resourceRef } from "../print-resources.js";
import { readInputs } from "../read-inputs.js";
import { TwillError } from "../../util/errors.js";
import { filenameOption, namespaceOption, reportEach } from "./shared.js";
import type { FileOptions } from "./shared.js";

interface DeleteOptions extends FileOptions {
  ignoreNotFound?: boolean;
}

interface Target {
  kind: KindInfo;
  name: string;
  namespace: string | undefined;
}

/** The targets named by -f documents: only kind, name and namespace matter. */
async function targetsFromFiles(
  ctx: CommandContext,
  options: DeleteOptions,
): Promise<Target[] | undefined> {
  const parsed = await readInputs(options.filename, ctx.files);
  const targets: Target[] = [];
  const problems: string[] = [];
  for (const { value, source } of parsed.documents) {
    const d = (typeof value === "object" && value !== null ? value : {}) as {
      apiVersion?: unknown;
      kind?: unknown;
      metadata?: { name?: unknown; namespace?: unknown };
    };
    const kind = kindOf(d.apiVersion, d.kind);
    const name = d.metadata?.name;
    if (!kind) {
      problems.push(
        `${describeResource(value)} (${source}): unknown apiVersion/kind ${JSON.stringify(d.apiVersion)}/${JSON.stringify(d.kind)}\n`,
      );
      continue;
    }
    if (typeof name !== "string" || name === "") {
      problems.push(
        `${describeResource(value)} (${source}): metadata.name: required field is missing\n`,
      );
      continue;
    }
    const ns = d.metadata?.namespace;
    if (ns !== undefined && typeof ns !== "string") {
      problems.push(
        `${describeResource(value)} (${source}): metadata.namespace: expected string\n`,
      );
      continue;
    }
    if (
      kind.namespaced &&
      ns !== undefined &&
      options.namespace !== undefined &&
      ns !== options.namespace
    ) {
      problems.push(
        `${describeResource(value)} (${source}): metadata.namespace: "${ns}" does not match --namespace "${options.namespace}"\n`,
      );
      continue;
    }
    targets.push({
      kind,
      name,
      namespace: kind.namespaced ? (ns ?? options.namespace ?? DEFAULT_NAMESPACE) : undefined,
    });
  }
  if (parsed.errors.length > 0 || problems.length > 0) {
    ctx.output.err(formatParseErrors(parsed.errors));
    ctx.output.err(problems.join(""));
    ctx.output.err("error: nothing was deleted\n");
    ctx.fail(EXIT.failed);
    return undefined;
  }
  if (targets.length === 0) {
    throw new TwillError(
      "Invalid",
      `no resources found in ${options.filename.join(", ")}; nothing was deleted`,
    );
  }
  return targets;
}

async function run(
  ctx: CommandContext,
  kindWord: string | undefined,
  names: string[],
  options: DeleteOptions,
): Promise<void> {
  let targets: Target[] | undefined;
  if (options.filename.length > 0) {
    if (kindWord !== undefined)
      throw new UsageError("give either -f or KIND NAME, not both", { command: "delete" });
    targets = await targetsFromFiles(ctx, options);
    if (!targets) return;
  } else {
    if (kindWord === undefined)
      throw new UsageError("give -f FILE|DIR|- or KIND NAME", { command: "delete" });
    const kind = resolveKind(kindWord, "delete");
    if (names.length === 0)
      throw new UsageError(`give the name of the ${kind.kind} to delete`, { command: "delete" });
    const namespace = kind.namespaced ? (options.namespace ?? DEFAULT_NAMESPACE) : undefined;
    targets = names.map((name) => ({ kind, name, namespace }));
  }
  const store = await ctx.store();
  for (const t of targets) {
    await reportEach(ctx, t, async () => {
      try {
        await store.delete(
          t.kind,
          t.name,
          t.namespace === undefined ? {} : { namespace: t.namespace },
        );
      } catch (err) {
        if (options.ignoreNotFound && err instanceof TwillError && err.code === "NotFound") return;
        throw err;
      }
      ctx.output.out(`${resourceRef(t.kind, t.name)} deleted\n`);
    });
  }
}

export function registerDelete(program: Command, ctx: CommandContext): void {
  program
    .command("delete")
    .description("Delete resources named in files, or by kind and name")
    .argument("[kind]", "kind, plural or short name (gnp, netpol, pool, ...)")
    .argument("[names...]", "names of the resources to delete")
    .addOption(filenameOption())
    .addOption(namespaceOption())
    .option("--ignore-not-found", "treat a resource that does not exist as deleted")
    .addHelpText(
      "after",
      `
Examples:
  # Delete one global network policy
  twill delete gnp allow-dns

  # Delete a namespaced policy
  twill delete networkpolicy allow-web-to-db -n shop

  # Delete everything the files describe
  twill delete -f examples/

Exits 3 when a resource does not exist (the others are still deleted),
unless --ignore-not-found is given.`,
    )
    .action((kind: string | undefined, names: string[], options: DeleteOptions) =>
      run(ctx, kind, names, options),
    );
}
