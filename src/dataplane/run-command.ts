// Running the kernel's command-line tools (`nft`, `ip`) for the real drivers:
// one child process, stdin given as text, stdout and stderr collected, a
// timeout and an AbortSignal. A non-zero exit is not thrown here: the
// drivers read stderr to tell "no such table" from a real failure.
import { spawn } from "node:child_process";
import { TwillError } from "../util/errors.js";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Written to the command's standard input, which is then closed. */
  input?: string;
  signal?: AbortSignal;
  /** Kill the command after this long (default 30 s). */
  timeoutMs?: number;
}

export type RunCommand = (
  file: string,
  args: readonly string[],
  options?: RunOptions,
) => Promise<CommandResult>;

export const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;

/**
 * Run `file args…` (no shell). Rejects with TwillError "Unavailable" when it
 * cannot be started, "Timeout" when it overran, "Aborted" when the signal
 * fired; resolves with the exit code otherwise.
 */
export const runCommand: RunCommand = (file, args, options = {}) =>
  new Promise((resolve, reject) => {
    const what = `${file} ${args.join(" ")}`;
    if (options.signal?.aborted) {
      reject(new TwillError("Aborted", `${what}: aborted before it started`));
      return;
    }
    const child = spawn(file, [...args], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let failure: TwillError | undefined;
    const kill = (why: TwillError) => {
      failure ??= why;
      child.kill("SIGKILL");
    };
    const timer = setTimeout(
      () =>
        kill(
          new TwillError(
            "Timeout",
            `${what}: no answer after ${options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS} ms`,
          ),
        ),
      options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS,
    );
    const onAbort = () => kill(new TwillError("Aborted", `${what}: aborted`));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.stdin.on("error", () => {
      // The command exited without reading all its input: its exit code says why.
    });
    child.on("error", (e) => {
      failure ??= new TwillError("Unavailable", `cannot run ${file}: ${e.message}`, { cause: e });
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      options.signal?.removeEventListener("abort", onAbort);
      if (failure) {
        reject(failure);
        return;
      }
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      });
    });
    child.stdin.end(options.input ?? "");
  });

/** The first lines of a command's stderr, for an error message. */
export function stderrSummary(stderr: string, lines = 6): string {
  const all = stderr.trim().split("\n");
  const head = all.slice(0, lines).join("\n");
  return all.length > lines ? `${head}\n… (${all.length - lines} more lines)` : head;
}
