// Flags and steps several commands share: -f (repeatable), -n, reading and
// checking inputs, and reporting invalid documents.
import { Option } from "commander";
import type { KindInfo } from "../../api/kinds.js";
import { EXIT, UsageError, exitCodeFor, formatError, rewordStoreError } from "../cli-errors.js";
import { checkDocuments, formatInvalid, formatParseErrors } from "../check-documents.js";
import type { CheckResult } from "../check-documents.js";
import type { CommandContext } from "../context.js";
import { readInputs } from "../read-inputs.js";
import { TwillError } from "../../util/errors.js";

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export const filenameOption = () =>
  new Option(
    "-f, --filename <path>",
    "a file, a directory (its .yaml, .yml and .json files) or - for stdin; repeatable",
  )
    .argParser(collect)
    .default([]);

export const namespaceOption = () =>
  new Option("-n, --namespace <namespace>", 'namespace of namespaced kinds (default "default")');

/** Options every -f command receives. */
export interface FileOptions {
  filename: string[];
  namespace?: string;
}

export function requireFiles(options: FileOptions, command: string): void {
  if (options.filename.length === 0) {
    throw new UsageError("-f FILE|DIR|- is required", { command });
  }
}

/**
 * Reads and validates every document named by -f. Read or syntax errors and
 * invalid documents are printed to stderr and make this return undefined
 * (exit 1 recorded): the caller then writes nothing.
 */
export async function readAndCheck(
  ctx: CommandContext,
  options: FileOptions,
  verb: string,
): Promise<CheckResult | undefined> {
  const parsed = await readInputs(options.filename, ctx.files);
  const checked = checkDocuments(parsed.documents, { namespace: options.namespace });
  if (parsed.errors.length > 0 || checked.invalid.length > 0) {
    ctx.output.err(formatParseErrors(parsed.errors));
    ctx.output.err(formatInvalid(checked.invalid));
    const problems: string[] = [];
    if (parsed.errors.length > 0) problems.push(`${parsed.errors.length} input error(s)`);
    if (checked.invalid.length > 0) {
      problems.push(
        `${checked.invalid.length} of ${checked.invalid.length + checked.valid.length} resources invalid`,
      );
    }
    ctx.output.err(`error: ${problems.join(", ")}; nothing was ${verb}\n`);
    ctx.fail(EXIT.failed);
    return undefined;
  }
  if (checked.valid.length === 0) {
    throw new TwillError(
      "Invalid",
      `no resources found in ${options.filename.join(", ")}; nothing was ${verb}`,
    );
  }
  return checked;
}

/**
 * Runs one write and reports its failure kubectl-style, so the remaining
 * resources are still attempted. An unreachable datastore ends the command.
 */
export async function reportEach(
  ctx: CommandContext,
  target: { kind: KindInfo; name: string; namespace: string | undefined },
  op: () => Promise<void>,
): Promise<void> {
  try {
    await op();
  } catch (err) {
    const e = rewordStoreError(err, target.kind, target.name, target.namespace);
    if (e instanceof TwillError && (e.code === "Unavailable" || e.code === "Timeout")) throw e;
    ctx.output.err(formatError(e));
    ctx.fail(exitCodeFor(e));
  }
}
