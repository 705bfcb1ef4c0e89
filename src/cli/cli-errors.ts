// The CLI's side of error handling: exit codes, the kubectl-style wording of
// datastore errors, and the translation of any error into the lines printed
// on stderr. Commands throw; runCli catches once and asks this module.
import type { KindInfo } from "../api/kinds.js";
import { TwillError } from "../util/errors.js";

/** Exit codes, stable for scripts (documented in `twill --help` and docs/cli.md). */
export const EXIT = {
  ok: 0,
  /** Invalid input (validation, unreadable files) or any other failure. */
  failed: 1,
  /** Bad command line: unknown command, flag, kind or output format. */
  usage: 2,
  notFound: 3,
  alreadyExists: 4,
  conflict: 5,
  /** The datastore could not be reached. */
  unavailable: 6,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A command-line mistake: printed with a pointer to --help, exit code 2. */
export class UsageError extends TwillError {
  readonly command: string | undefined;

  constructor(message: string, options?: { command?: string }) {
    super("Invalid", message);
    this.name = "UsageError";
    this.command = options?.command;
  }
}

/** The exit code an error ends the process with. */
export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof UsageError) return EXIT.usage;
  if (!(err instanceof TwillError)) return EXIT.failed;
  switch (err.code) {
    case "NotFound":
      return EXIT.notFound;
    case "AlreadyExists":
      return EXIT.alreadyExists;
    case "Conflict":
      return EXIT.conflict;
    case "Unavailable":
    case "Timeout":
      return EXIT.unavailable;
    default:
      return EXIT.failed;
  }
}

function causeChain(err: Error): string {
  const parts: string[] = [];
  let cause: unknown = err.cause;
  for (let depth = 0; cause !== undefined && depth < 4; depth++) {
    const message = cause instanceof Error ? cause.message : String(cause);
    if (message && !err.message.includes(message) && !parts.includes(message)) parts.push(message);
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return parts.length > 0 ? ` (${parts.join(": ")})` : "";
}

/** What the user reads on stderr for `err`, ending in a newline. */
export function formatError(err: unknown): string {
  if (err instanceof UsageError) {
    const help = err.command ? `twill ${err.command} --help` : "twill --help";
    return `error: ${err.message}\nSee '${help}' for usage.\n`;
  }
  if (err instanceof TwillError) {
    switch (err.code) {
      case "NotFound":
      case "AlreadyExists":
      case "Conflict":
        return `Error from server (${err.code}): ${err.message}\n`;
      case "Unavailable":
      case "Timeout":
        // The datastore's message names the endpoints and usually the reason
        // ("...: connect ECONNREFUSED ..."); the client library's cause then
        // only repeats it at length, so it is shown only when no reason is.
        return `error: cannot reach the datastore: ${err.message}${err.message.includes(": ") ? "" : causeChain(err)}\n`;
      default:
        return `error: ${err.message}${causeChain(err)}\n`;
    }
  }
  if (err instanceof Error) return `error: ${err.message}${causeChain(err)}\n`;
  return `error: ${String(err)}\n`;
}

/** `globalnetworkpolicy "x"`, with ` in namespace "ns"` for namespaced kinds. */
export function describeTarget(
  kind: KindInfo,
  name: string,
  namespace: string | undefined,
): string {
  const ns = kind.namespaced && namespace !== undefined ? ` in namespace "${namespace}"` : "";
  return `${kind.kind.toLowerCase()} "${name}"${ns}`;
}

/**
 * Rewords the datastore's NotFound, AlreadyExists and Conflict errors the
 * way kubectl words them, keeping the code (and so the exit code) and the
 * original as the cause. Other errors pass through unchanged.
 */
export function rewordStoreError(
  err: unknown,
  kind: KindInfo,
  name: string,
  namespace: string | undefined,
): unknown {
  if (!(err instanceof TwillError)) return err;
  const target = describeTarget(kind, name, namespace);
  switch (err.code) {
    case "NotFound":
      return new TwillError("NotFound", `${target} not found`, { cause: err });
    case "AlreadyExists":
      return new TwillError("AlreadyExists", `${target} already exists`, { cause: err });
    case "Conflict":
      return new TwillError(
        "Conflict",
        `Operation cannot be fulfilled on ${target}: the object has been modified; get it again, apply your changes to the latest version and try again`,
        { cause: err },
      );
    default:
      return err;
  }
}
