// `twill validate -f FILE|DIR|-`: offline validation, no datastore. Prints
// every error of every invalid resource (`path: reason`) and a summary on
// stdout; exits 0 only when every resource is valid.
import type { Command } from "commander";
import { EXIT } from "../cli-errors.js";
import { checkDocuments, formatInvalid, formatParseErrors } from "../check-documents.js";
import type { CommandContext } from "../context.js";
import { readInputs } from "../read-inputs.js";
import { filenameOption, namespaceOption, requireFiles } from "./shared.js";
import type { FileOptions } from "./shared.js";

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

async function run(ctx: CommandContext, options: FileOptions): Promise<void> {
  requireFiles(options, "validate");
  const parsed = await readInputs(options.filename, ctx.files);
  const checked = checkDocuments(parsed.documents, { namespace: options.namespace });
  ctx.output.out(formatParseErrors(parsed.errors));
  ctx.output.out(formatInvalid(checked.invalid));
  const total = checked.valid.length + checked.invalid.length;
  const parts = [
    `${plural(total, "resource")} checked: ${checked.valid.length} valid, ${checked.invalid.length} invalid`,
  ];
  if (parsed.errors.length > 0) parts.push(`${plural(parsed.errors.length, "input error")}`);
  ctx.output.out(`${parts.join("; ")}\n`);
  if (total === 0 && parsed.errors.length === 0) {
    ctx.output.err(`error: no resources found in ${options.filename.join(", ")}\n`);
  }
  if (checked.invalid.length > 0 || parsed.errors.length > 0 || total === 0) ctx.fail(EXIT.failed);
}

export function registerValidate(program: Command, ctx: CommandContext): void {
  program
    .command("validate")
    .description("Check resources offline, without a datastore; exit 0 only when all are valid")
    .addOption(filenameOption())
    .addOption(namespaceOption())
    .addHelpText(
      "after",
      `
Examples:
  twill validate -f examples/
  twill validate -f policy.yaml -f pools.yaml
  kubectl get ... -o yaml | twill validate -f -

Each error prints as
  <Kind> "<name>" (<file>#<document>): <field path>: <reason>
followed by a summary line. Exits 1 when any resource is invalid or any
input cannot be read or parsed.`,
    )
    .action((options: FileOptions) => run(ctx, options));
}
