// Structured logs for the agent: JSON lines from pino, one child logger per
// component (`{"component":"dataplane",...}`), fields rather than
// interpolated text. A line per state change, never per packet or per
// event in a burst; the agent adds a periodic summary line.
//
// The destination is passed in, so tests read the lines back; the level
// follows logSeverityScreen and can change while the agent runs (every child
// follows, since pino children keep their own level once created).
import { pino } from "pino";
import type { DestinationStream, Logger } from "pino";
import { pinoLevel } from "./config.js";
import type { LogSeverity } from "./config.js";

export type { Logger } from "pino";

export interface Logging {
  readonly root: Logger;
  /** The logger of one component, e.g. "dataplane", "syncer". */
  child(component: string): Logger;
  setSeverity(severity: LogSeverity): void;
  /** Write out what is buffered (before exit). */
  flush(): void;
}

export interface LoggingOptions {
  severity: LogSeverity;
  /** Where the JSON lines go (default: standard output). */
  destination?: DestinationStream;
  /** Fields on every line (e.g. the node name). */
  base?: Record<string, unknown>;
}

export function createLogging(options: LoggingOptions): Logging {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  const root = pino(
    {
      level: pinoLevel(options.severity),
      base: options.base ?? {},
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  const children = new Map<string, Logger>();
  return {
    root,
    child(component) {
      let c = children.get(component);
      if (!c) {
        c = root.child({ component });
        children.set(component, c);
      }
      return c;
    },
    setSeverity(severity) {
      const level = pinoLevel(severity);
      if (root.level === level) return;
      root.level = level;
      for (const c of children.values()) c.level = level;
    },
    flush() {
      root.flush();
    },
  };
}

/** The syncer's and other modules' narrow logger shape (message first, then fields). */
export interface FieldLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export function fieldLogger(logger: Logger): FieldLogger {
  return {
    info: (message, fields) => logger.info(fields ?? {}, message),
    warn: (message, fields) => logger.warn(fields ?? {}, message),
  };
}

/** An error as log fields: message, TwillError code, and the cause's message. */
export function errorFields(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const out: Record<string, unknown> = { error: err.message };
  const code = (err as { code?: unknown }).code;
  if (typeof code === "string") out["code"] = code;
  if (err.cause instanceof Error) out["cause"] = err.cause.message;
  return out;
}
