// `twill apply`, `twill create` and `twill replace`: validate every document
// first (any invalid one means nothing is written), then write each in order
// and print kubectl's one line per resource.
import type { Command } from "commander";
import { resourceRef } from "../print-resources.js";
import type { CommandContext } from "../context.js";
import {
  filenameOption,
  namespaceOption,
  readAndCheck,
  reportEach,
  requireFiles,
} from "./shared.js";
import type { FileOptions } from "./shared.js";

type Verb = "apply" | "create" | "replace";

const DESCRIPTIONS: Record<Verb, string> = {
  apply: "Create resources, or update them to match the files (idempotent)",
  create: "Create resources; fails for any that already exist",
  replace: "Replace existing resources with the files' content; fails for any that do not exist",
};

const EXAMPLES: Record<Verb, string> = {
  apply: `
Examples:
  # Apply every .yaml/.yml/.json file in a directory, in name order
  twill apply -f examples/

  # Apply from standard input
  cat policy.yaml | twill apply -f -

  # Namespaced resources without metadata.namespace go to "shop"
  twill apply -f netpol.yaml -n shop

Each resource prints "<kind>.<group>/<name> created|configured|unchanged".
Every document is validated before anything is written.`,
  create: `
Examples:
  twill create -f pool.yaml
  twill create -f a.yaml -f b.yaml

Exits 4 when a resource already exists (the others are still created).`,
  replace: `
Examples:
  twill get gnp allow-dns -o yaml > p.yaml   # edit p.yaml, then:
  twill replace -f p.yaml

When the file carries metadata.resourceVersion the write succeeds only if the
stored resource has not changed since (exit 5 otherwise). Exits 3 when a
resource does not exist.`,
};

async function run(ctx: CommandContext, verb: Verb, options: FileOptions): Promise<void> {
  requireFiles(options, verb);
  const checked = await readAndCheck(
    ctx,
    options,
    verb === "apply" ? "applied" : verb === "create" ? "created" : "replaced",
  );
  if (!checked) return;
  const store = await ctx.store();
  for (const { kind, resource } of checked.valid) {
    const target = { kind, name: resource.metadata.name, namespace: resource.metadata.namespace };
    await reportEach(ctx, target, async () => {
      let outcome: string;
      switch (verb) {
        case "apply": {
          const r = await store.apply(resource);
          outcome = r.created ? "created" : r.unchanged ? "unchanged" : "configured";
          break;
        }
        case "create":
          await store.create(resource);
          outcome = "created";
          break;
        case "replace":
          await store.update(resource);
          outcome = "replaced";
          break;
      }
      ctx.output.out(`${resourceRef(kind, resource.metadata.name)} ${outcome}\n`);
    });
  }
}

export function registerWrite(program: Command, ctx: CommandContext, verb: Verb): void {
  program
    .command(verb)
    .description(DESCRIPTIONS[verb])
    .addOption(filenameOption())
    .addOption(namespaceOption())
    .addHelpText("after", EXAMPLES[verb])
    .action((options: FileOptions) => run(ctx, verb, options));
}
