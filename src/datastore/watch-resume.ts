// One etcd watch kept going across lost connections, whatever the transport.
// Both etcd backends (gRPC in etcd-backend.ts, the CNI plugin's JSON gateway
// client in ../cni/etcd-http-backend.ts) open watch streams their own way and
// hand them to `watchResume`, which owns what they share:
// - the next revision to ask for: one past the last event delivered, so a
//   reopened stream neither skips nor repeats an event;
// - the ends: quietly on abort; after a `compacted` event when the start
//   revision is gone; with the backend's error when it is closed or when a
//   failure is not worth retrying (etcd refused access);
// - a stream etcd does not confirm within `timeoutMs` counts as failed;
// - a failed stream is reopened after 50 ms, doubling up to 1 s, for at most
//   `timeoutMs` from the first failure (a confirmed stream starts the count
//   over); then TwillError "Unavailable" naming the prefix and the endpoints.
//
// The CNI plugin's bundle includes this module: it must import nothing heavy
// (no etcd3, no gRPC).

import { TwillError } from "../util/errors.js";
import { AsyncQueue } from "./async-queue.js";
import type { WatchEvent } from "./backend.js";

/** An event a stream delivers (`compacted` is the driver's to report). */
export type ChangeEvent = Exclude<WatchEvent, { type: "compacted" }>;

/** One watch response from etcd, decoded by the backend. */
export interface WatchResponse {
  /** etcd confirmed the watch. */
  created: boolean;
  /** etcd canceled the watch (the reason may be empty). */
  canceled: boolean;
  cancelReason: string;
  /** Above 0: the start revision was compacted away. */
  compactRevision: number;
  events: ChangeEvent[];
}

/** What a stream tells the driver: a response, or that it broke. */
export type StreamReport =
  { kind: "response"; response: WatchResponse } | { kind: "failed"; error: unknown };

/**
 * Opens one watch stream for events from `startRevision` on, and passes all
 * it hears to `report`. Returns how to stop the stream. Throwing counts as a
 * failed stream.
 */
export type OpenStream = (
  startRevision: number,
  report: (report: StreamReport) => void,
) => (() => void) | Promise<() => void>;

export interface WatchResumeOptions {
  prefix: string;
  /** Deliver events with modRevision > fromRevision. */
  fromRevision: number;
  signal?: AbortSignal | undefined;
  open: OpenStream;
  /** How long a stream may go unconfirmed, and a watch keep failing, in milliseconds. */
  timeoutMs: number;
  /** The endpoints, for the message when the watch is lost. */
  where: string;
  /** Aborted when the backend is closed. */
  closed: AbortSignal;
  closedError: () => Error;
  /** The error to end the watch with at once instead of reopening, if any. */
  giveUp?: (error: unknown) => Error | undefined;
  /** A short reason for the lost-watch message (default: the error's message). */
  reason?: (error: unknown) => string;
}

type Item =
  | { kind: "report"; stream: number; report: StreamReport }
  | { kind: "wake"; stream: number }
  | { kind: "abort" }
  | { kind: "closed" };

/** The events under `options.prefix` after `options.fromRevision`, across reconnects. */
export async function* watchResume(options: WatchResumeOptions): AsyncGenerator<WatchEvent> {
  const { prefix, signal, closed, timeoutMs } = options;
  if (closed.aborted) throw options.closedError();
  if (signal?.aborted) return;
  const queue = new AsyncQueue<Item>();
  const onAbort = (): void => queue.push({ kind: "abort" });
  const onClose = (): void => queue.push({ kind: "closed" });
  signal?.addEventListener("abort", onAbort, { once: true });
  closed.addEventListener("abort", onClose, { once: true });
  // Items of streams and waits gone by are ignored: each gets a new id.
  let ids = 0;
  let stop: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let next = options.fromRevision + 1;
  let failingSince: number | undefined;
  let attempt = 0;
  try {
    for (;;) {
      const id = ++ids;
      const fail = (error: unknown): void =>
        queue.push({ kind: "report", stream: id, report: { kind: "failed", error } });
      let lost: { error: unknown } | undefined;
      try {
        stop = await options.open(next, (report) =>
          queue.push({ kind: "report", stream: id, report }),
        );
        timer = setTimeout(() => fail(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      } catch (error) {
        lost = { error };
      }
      // Read this stream until it fails or the watch ends.
      while (lost === undefined) {
        const item = await queue.shift();
        if (item.kind === "abort") return;
        if (item.kind === "closed") throw options.closedError();
        if (item.kind === "wake" || item.stream !== id) continue;
        if (item.report.kind === "failed") {
          lost = { error: item.report.error };
          break;
        }
        const res = item.report.response;
        if (res.compactRevision > 0) {
          yield { type: "compacted", compactRevision: res.compactRevision };
          return;
        }
        if (res.created) {
          clearTimeout(timer);
          failingSince = undefined;
          attempt = 0;
        }
        if (res.canceled) {
          lost = { error: new Error(res.cancelReason || "the watch was canceled by etcd") };
          break;
        }
        for (const event of res.events) {
          if (signal?.aborted) return;
          yield event;
          next = (event.type === "put" ? event.entry.modRevision : event.modRevision) + 1;
        }
      }
      // The stream failed: reopen it from `next` with backoff, within the deadline.
      clearTimeout(timer);
      stop?.();
      stop = undefined;
      if (closed.aborted) throw options.closedError();
      const final = options.giveUp?.(lost.error);
      if (final) throw final;
      const now = Date.now();
      failingSince ??= now;
      const delay = Math.min(50 * 2 ** attempt, 1000);
      attempt += 1;
      if (now + delay - failingSince > timeoutMs) {
        const reason = options.reason ?? messageOf;
        throw new TwillError(
          "Unavailable",
          `watch on "${prefix}" lost: cannot reach etcd at ${options.where}: ${reason(lost.error)}`,
          { cause: lost.error },
        );
      }
      const wakeId = ++ids;
      timer = setTimeout(() => queue.push({ kind: "wake", stream: wakeId }), delay);
      for (;;) {
        const item = await queue.shift();
        if (item.kind === "abort") return;
        if (item.kind === "closed") throw options.closedError();
        if (item.kind === "wake" && item.stream === wakeId) break;
      }
    }
  } finally {
    clearTimeout(timer);
    stop?.();
    signal?.removeEventListener("abort", onAbort);
    closed.removeEventListener("abort", onClose);
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
