// What every command gets: where to write, how to read -f inputs, a lazily
// opened datastore, and a place to record a failure's exit code when a
// command reports an error and carries on (kubectl-style partial failures).
import type { CliStore } from "./cli-store.js";
import type { ExitCode } from "./cli-errors.js";
import type { Output } from "./output.js";
import type { InputFiles } from "./read-inputs.js";

export interface CommandContext {
  output: Output;
  files: InputFiles;
  /** The datastore, opened on first use from the global flags. */
  store(): Promise<CliStore>;
  /** Records a failure that was already reported; the first code is the exit code. */
  fail(code: ExitCode): void;
  /** twill's and Node's versions, for `twill version`. */
  versions(): Promise<{ twill: string; node: string }>;
}
