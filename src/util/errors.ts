// Errors with a stable machine-readable `code` and an optional `cause`.
// Boundaries translate them: the CLI maps codes to exit codes and messages,
// the CNI plugin to CNI error objects, the agent logs them and retries.

export type ErrorCode =
  | "NotFound"
  | "AlreadyExists"
  | "Conflict"
  | "Invalid"
  | "Unavailable"
  | "Compacted"
  | "Timeout"
  | "Aborted"
  /** A finite resource ran out: no free address in any pool a host may use (IPAM). */
  | "Exhausted"
  | "Internal";

export class TwillError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TwillError";
    this.code = code;
  }
}

/** True when `err` is a TwillError with the given code. */
export function isErrorCode(err: unknown, code: ErrorCode): err is TwillError {
  return err instanceof TwillError && err.code === code;
}
