import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TwillError, isErrorCode } from "../util/errors.js";
import type { WatchEvent } from "./backend.js";
import { watchResume } from "./watch-resume.js";
import type {
  ChangeEvent,
  OpenStream,
  StreamReport,
  WatchResponse,
  WatchResumeOptions,
} from "./watch-resume.js";

interface FakeStream {
  startRevision: number;
  openedAt: number;
  report: (report: StreamReport) => void;
  stopped: boolean;
}

/** A stream opener whose streams the test speaks for; `fail` makes every open throw it. */
function fakeStreams(fail?: Error): { opened: FakeStream[]; open: OpenStream } {
  const opened: FakeStream[] = [];
  const open: OpenStream = (startRevision, report) => {
    const stream = { startRevision, openedAt: Date.now(), report, stopped: false };
    opened.push(stream);
    if (fail) throw fail;
    return () => {
      stream.stopped = true;
    };
  };
  return { opened, open };
}

function put(key: string, revision: number): ChangeEvent {
  return {
    type: "put",
    entry: { key, value: "v", createRevision: revision, modRevision: revision, version: 1 },
  };
}

function response(fields: Partial<WatchResponse>): StreamReport {
  const base = { created: false, canceled: false, cancelReason: "", compactRevision: 0 };
  return { kind: "response", response: { ...base, events: [], ...fields } };
}

function watch(
  open: OpenStream,
  options: Partial<WatchResumeOptions> = {},
): AsyncIterator<WatchEvent> {
  const closed = new AbortController().signal;
  return watchResume({
    prefix: "/p/",
    fromRevision: 10,
    open,
    timeoutMs: 1000,
    where: "http://etcd:2379",
    closed,
    closedError: () => new TwillError("Unavailable", "closed"),
    ...options,
  })[Symbol.asyncIterator]();
}

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for the watch");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

describe("watchResume", () => {
  it("reopens a failed stream from one past the last event delivered", async () => {
    const { opened, open } = fakeStreams();
    const events = watch(open);
    const first = events.next();
    await until(() => opened.length === 1);
    assert.equal(opened[0]?.startRevision, 11);
    opened[0]?.report(response({ created: true, events: [put("/p/a", 12), put("/p/b", 13)] }));
    assert.deepEqual((await first).value, put("/p/a", 12));
    assert.deepEqual((await events.next()).value, put("/p/b", 13));
    opened[0]?.report({ kind: "failed", error: new Error("connection reset") });
    const third = events.next();
    await until(() => opened.length === 2);
    assert.equal(opened[1]?.startRevision, 14);
    assert.equal(opened[0]?.stopped, true);
    // What the old stream still says is not heard.
    opened[0]?.report(response({ events: [put("/p/old", 99)] }));
    opened[1]?.report(response({ created: true, events: [put("/p/c", 14)] }));
    assert.deepEqual((await third).value, put("/p/c", 14));
    await events.return?.();
    assert.equal(opened[1]?.stopped, true);
  });

  it("backs off 50, 100, 200 ms within the deadline, then throws Unavailable", async () => {
    const refused = new Error("ECONNREFUSED (etcd:2379)");
    const { opened, open } = fakeStreams(refused);
    await assert.rejects(watch(open, { timeoutMs: 400 }).next(), (err: unknown) => {
      assert.ok(isErrorCode(err, "Unavailable"));
      assert.equal(
        err.message,
        'watch on "/p/" lost: cannot reach etcd at http://etcd:2379: ECONNREFUSED (etcd:2379)',
      );
      assert.equal(err.cause, refused);
      return true;
    });
    // 0, 50, 150, 350 ms: the next wait (400 ms) would end past the deadline.
    assert.equal(opened.length, 4);
    const gaps = opened.slice(1).map((s, i) => s.openedAt - (opened[i] as FakeStream).openedAt);
    [50, 100, 200].forEach((delay, i) => assert.ok((gaps[i] as number) >= delay - 2, `${gaps}`));
    assert.ok(opened.every((s) => s.startRevision === 11));
  });

  it("starts the backoff and the deadline over once etcd confirms a stream", async () => {
    const { opened, open } = fakeStreams();
    const events = watch(open, { timeoutMs: 80 });
    const first = events.next();
    await until(() => opened.length === 1);
    opened[0]?.report({ kind: "failed", error: new Error("cut") });
    await until(() => opened.length === 2);
    opened[1]?.report(response({ created: true }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    // 100 ms after the first failure: without the confirmation the deadline
    // would have passed, and the next wait (100 ms) would be past it anyway.
    opened[1]?.report({ kind: "failed", error: new Error("cut again") });
    await until(() => opened.length === 3);
    opened[2]?.report(response({ created: true, events: [put("/p/a", 11)] }));
    assert.deepEqual((await first).value, put("/p/a", 11));
    await events.return?.();
  });

  it("counts a stream that etcd does not confirm in time as failed", async () => {
    const { opened, open } = fakeStreams();
    await assert.rejects(
      watch(open, { timeoutMs: 100 }).next(),
      (err: unknown) =>
        isErrorCode(err, "Unavailable") && /: no answer within 100 ms$/.test(err.message),
    );
    assert.equal(opened.length, 2);
    assert.ok(opened.every((s) => s.stopped));
  });

  it("ends after a compacted event", async () => {
    const { opened, open } = fakeStreams();
    const events = watch(open);
    const first = events.next();
    await until(() => opened.length === 1);
    opened[0]?.report(response({ created: true, compactRevision: 7 }));
    assert.deepEqual(await first, {
      done: false,
      value: { type: "compacted", compactRevision: 7 },
    });
    assert.deepEqual(await events.next(), { done: true, value: undefined });
    assert.equal(opened[0]?.stopped, true);
  });

  it("ends quietly on abort, reading or waiting to reconnect", async () => {
    const reading = fakeStreams();
    const ac1 = new AbortController();
    const pending = watch(reading.open, { signal: ac1.signal }).next();
    await until(() => reading.opened.length === 1);
    ac1.abort();
    assert.deepEqual(await pending, { done: true, value: undefined });
    assert.equal(reading.opened[0]?.stopped, true);

    const waiting = fakeStreams(new Error("refused"));
    const ac2 = new AbortController();
    const waited = watch(waiting.open, { signal: ac2.signal }).next();
    await until(() => waiting.opened.length === 1);
    ac2.abort();
    assert.deepEqual(await waited, { done: true, value: undefined });
    await new Promise((resolve) => setTimeout(resolve, 80));
    assert.equal(waiting.opened.length, 1);

    const never = fakeStreams();
    const done = watch(never.open, { signal: AbortSignal.abort() }).next();
    assert.deepEqual(await done, { done: true, value: undefined });
    assert.equal(never.opened.length, 0);
  });

  it("throws the backend's closed error when it closes", async () => {
    const { opened, open } = fakeStreams();
    const closing = new AbortController();
    const closedError = new TwillError("Unavailable", "the etcd client was closed");
    const pending = watch(open, { closed: closing.signal, closedError: () => closedError }).next();
    await until(() => opened.length === 1);
    closing.abort();
    await assert.rejects(pending, closedError);
    assert.equal(opened[0]?.stopped, true);
    await assert.rejects(
      watch(open, { closed: closing.signal, closedError: () => closedError }).next(),
      closedError,
    );
    assert.equal(opened.length, 1);
  });

  it("throws at once what giveUp returns instead of reconnecting", async () => {
    const { opened, open } = fakeStreams();
    const refused = new TwillError("Unavailable", "etcd refused access");
    const giveUp = (error: unknown): Error | undefined =>
      error instanceof Error && error.message === "permission denied" ? refused : undefined;
    const pending = watch(open, { giveUp }).next();
    await until(() => opened.length === 1);
    opened[0]?.report({ kind: "failed", error: new Error("permission denied") });
    await assert.rejects(pending, refused);
    assert.equal(opened.length, 1);
  });

  it("treats a canceled watch as a lost stream", async () => {
    const { opened, open } = fakeStreams();
    const pending = watch(open, { timeoutMs: 10 }).next();
    await until(() => opened.length === 1);
    opened[0]?.report(response({ canceled: true }));
    await assert.rejects(
      pending,
      (err: unknown) =>
        isErrorCode(err, "Unavailable") && /: the watch was canceled by etcd$/.test(err.message),
    );
  });
});
