// The one contract test suite every Backend must pass (memory-backend.test.ts
// and etcd-backend.test.ts run it). It pins etcd v3 semantics: revisions,
// compare-and-swap, atomic multi-key transactions, prefix listing, watches
// that replay from a revision and then follow live, compaction, abort.
//
// Each test works under its own random key prefix, so one etcd can serve the
// whole suite; tests never assume absolute revision numbers, only relations
// between the revisions they observe.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, it } from "node:test";
import { isErrorCode } from "../util/errors.js";
import { readMany } from "./backend.js";
import type { Backend, KvEntry, TxnResult, WatchEvent } from "./backend.js";

export interface BackendUnderTest {
  backend: Backend;
  cleanup(): Promise<void>;
}

/** Register the contract tests for one Backend implementation. */
export function runBackendContract(name: string, make: () => Promise<BackendUnderTest>): void {
  describe(`Backend contract: ${name}`, () => {
    let backend: Backend;
    let cleanup: () => Promise<void>;
    let p: string;

    beforeEach(async () => {
      ({ backend, cleanup } = await make());
      p = `/contract/${randomUUID().slice(0, 8)}/`;
    });
    afterEach(async () => {
      await cleanup();
    });

    const put = (key: string, value: string): Promise<TxnResult> =>
      backend.txn({ compare: [], success: [{ type: "put", key: p + key, value }] });
    const createIfAbsent = (key: string, value: string): Promise<TxnResult> =>
      backend.txn({
        compare: [{ key: p + key, target: "createRevision", equals: 0 }],
        success: [{ type: "put", key: p + key, value }],
        failure: [{ type: "get", key: p + key }],
      });
    /** One line per event, keys relative to the test prefix: easy to compare and read. */
    const show = (ev: WatchEvent): string => {
      const rel = (k: string): string => (k.startsWith(p) ? k.slice(p.length) : k);
      switch (ev.type) {
        case "put":
          return `put ${rel(ev.entry.key)}=${ev.entry.value} @${ev.entry.modRevision}${ev.prev ? ` prev=${ev.prev.value}` : ""}`;
        case "delete":
          return `delete ${rel(ev.key)} @${ev.modRevision}${ev.prev ? ` prev=${ev.prev.value}` : ""}`;
        case "compacted":
          return `compacted @${ev.compactRevision}`;
      }
    };

    it("reads keys and prefixes together (readMany), as get and list do one by one", async () => {
      await put("a/1", "x");
      await put("a/2", "y");
      await put("b", "z");
      await put("c/1", "w");
      const request = { keys: [p + "b", p + "absent"], prefixes: [p + "a/", p + "none/"] };
      const got = await readMany(backend, request);
      assert.deepEqual(got.gets.get(p + "b"), await backend.get(p + "b"));
      assert.equal(got.gets.has(p + "absent"), true);
      assert.equal(got.gets.get(p + "absent"), undefined);
      assert.deepEqual(got.lists.get(p + "a/"), (await backend.list(p + "a/")).entries);
      assert.deepEqual(
        got.lists.get(p + "a/")?.map((e) => e.value),
        ["x", "y"],
      );
      assert.deepEqual(got.lists.get(p + "none/"), []);
    });

    it("returns undefined for a key that does not exist", async () => {
      assert.equal(await backend.get(p + "absent"), undefined);
    });

    it("creates a key only when absent (createRevision == 0)", async () => {
      const first = await createIfAbsent("k", "v1");
      assert.equal(first.succeeded, true);
      const entry = await backend.get(p + "k");
      assert.deepEqual(entry, {
        key: p + "k",
        value: "v1",
        createRevision: first.revision,
        modRevision: first.revision,
        version: 1,
      });

      const second = await createIfAbsent("k", "v2");
      assert.equal(second.succeeded, false);
      assert.equal(second.revision, first.revision, "a failed compare writes nothing");
      assert.deepEqual(second.gets, [entry], "the failure branch ran");
      assert.equal((await backend.get(p + "k"))?.value, "v1");
    });

    it("updates by compare-and-swap on modRevision: success and conflict", async () => {
      const created = await put("k", "v1");
      const updated = await backend.txn({
        compare: [{ key: p + "k", target: "modRevision", equals: created.revision }],
        success: [{ type: "put", key: p + "k", value: "v2" }],
      });
      assert.equal(updated.succeeded, true);
      assert.equal(updated.revision, created.revision + 1);
      assert.deepEqual(await backend.get(p + "k"), {
        key: p + "k",
        value: "v2",
        createRevision: created.revision,
        modRevision: updated.revision,
        version: 2,
      });

      const stale = await backend.txn({
        compare: [{ key: p + "k", target: "modRevision", equals: created.revision }],
        success: [{ type: "put", key: p + "k", value: "v3" }],
        failure: [{ type: "get", key: p + "k" }],
      });
      assert.equal(stale.succeeded, false);
      assert.equal(stale.revision, updated.revision);
      assert.equal(stale.gets[0]?.value, "v2");
      assert.equal((await backend.get(p + "k"))?.value, "v2");
    });

    it("evaluates each kind of compare like etcd", async () => {
      const created = await put("k", "v");
      const cases: {
        name: string;
        compare: Parameters<Backend["txn"]>[0]["compare"];
        want: boolean;
      }[] = [
        {
          name: "modRevision of an absent key is 0",
          compare: [{ key: p + "none", target: "modRevision", equals: 0 }],
          want: true,
        },
        {
          name: "createRevision of an absent key is 0",
          compare: [{ key: p + "none", target: "createRevision", equals: 0 }],
          want: true,
        },
        {
          name: "createRevision of a present key is not 0",
          compare: [{ key: p + "k", target: "createRevision", equals: 0 }],
          want: false,
        },
        {
          name: "createRevision matches",
          compare: [{ key: p + "k", target: "createRevision", equals: created.revision }],
          want: true,
        },
        {
          name: "modRevision matches",
          compare: [{ key: p + "k", target: "modRevision", equals: created.revision }],
          want: true,
        },
        {
          name: "value matches",
          compare: [{ key: p + "k", target: "value", equals: "v" }],
          want: true,
        },
        {
          name: "value differs",
          compare: [{ key: p + "k", target: "value", equals: "w" }],
          want: false,
        },
        {
          name: "value of an absent key never matches",
          compare: [{ key: p + "none", target: "value", equals: "" }],
          want: false,
        },
        {
          name: "every compare must hold",
          compare: [
            { key: p + "k", target: "value", equals: "v" },
            { key: p + "none", target: "createRevision", equals: 1 },
          ],
          want: false,
        },
        { name: "no compares means success", compare: [], want: true },
      ];
      for (const c of cases) {
        const res = await backend.txn({ compare: c.compare, success: [] });
        assert.equal(res.succeeded, c.want, c.name);
        assert.equal(res.revision, created.revision, `${c.name}: nothing written`);
      }
    });

    it("deletes without a revision and reports what was deleted", async () => {
      const created = await put("k", "v");
      const res = await backend.txn({ compare: [], success: [{ type: "delete", key: p + "k" }] });
      assert.equal(res.succeeded, true);
      assert.equal(res.revision, created.revision + 1);
      assert.deepEqual(res.deleted, [
        {
          key: p + "k",
          value: "v",
          createRevision: created.revision,
          modRevision: created.revision,
          version: 1,
        },
      ]);
      assert.equal(await backend.get(p + "k"), undefined);

      const again = await backend.txn({ compare: [], success: [{ type: "delete", key: p + "k" }] });
      assert.deepEqual(again.deleted, [undefined]);
      assert.equal(again.revision, res.revision, "deleting nothing does not bump the revision");
    });

    it("deletes on a revision only when it still matches", async () => {
      const created = await put("k", "v1");
      const updated = await put("k", "v2");
      const stale = await backend.txn({
        compare: [{ key: p + "k", target: "modRevision", equals: created.revision }],
        success: [{ type: "delete", key: p + "k" }],
      });
      assert.equal(stale.succeeded, false);
      assert.deepEqual(stale.deleted, []);
      assert.equal((await backend.get(p + "k"))?.value, "v2");

      const current = await backend.txn({
        compare: [{ key: p + "k", target: "modRevision", equals: updated.revision }],
        success: [{ type: "delete", key: p + "k" }],
      });
      assert.equal(current.succeeded, true);
      assert.equal(current.deleted[0]?.value, "v2");
      assert.equal(await backend.get(p + "k"), undefined);
    });

    it("applies a multi-key transaction atomically: a failed compare writes nothing", async () => {
      const a = await put("a", "1");
      const failed = await backend.txn({
        compare: [
          { key: p + "a", target: "modRevision", equals: a.revision },
          { key: p + "b", target: "value", equals: "something" },
        ],
        success: [
          { type: "put", key: p + "a", value: "2" },
          { type: "put", key: p + "c", value: "2" },
          { type: "delete", key: p + "a-old" },
        ],
      });
      assert.equal(failed.succeeded, false);
      assert.equal(failed.revision, a.revision);
      assert.equal((await backend.get(p + "a"))?.value, "1");
      assert.equal(await backend.get(p + "c"), undefined);

      const ok = await backend.txn({
        compare: [{ key: p + "a", target: "modRevision", equals: a.revision }],
        success: [
          { type: "put", key: p + "a", value: "2" },
          { type: "put", key: p + "c", value: "2" },
          { type: "get", key: p + "a" },
        ],
      });
      assert.equal(ok.succeeded, true);
      assert.equal(ok.revision, a.revision + 1, "one bump per transaction, not per key");
      const [ea, ec] = [await backend.get(p + "a"), await backend.get(p + "c")];
      assert.equal(ea?.modRevision, ok.revision);
      assert.equal(ec?.modRevision, ok.revision);
      assert.equal(ok.gets[0]?.value, "2", "a get sees the transaction's own earlier writes");
    });

    it("keeps one global revision that each writing transaction bumps by one", async () => {
      const start = await backend.revision();
      const r1 = await put("x", "1");
      const r2 = await put("y", "1");
      const readOnly = await backend.txn({ compare: [], success: [{ type: "get", key: p + "x" }] });
      const r3 = await put("x", "2");
      assert.ok(r1.revision > start);
      assert.equal(r2.revision, r1.revision + 1);
      assert.equal(readOnly.revision, r2.revision, "a read-only transaction does not bump");
      assert.equal(r3.revision, r2.revision + 1);
      assert.equal(await backend.revision(), r3.revision);
      const x = await backend.get(p + "x");
      assert.deepEqual(
        [x?.createRevision, x?.modRevision, x?.version],
        [r1.revision, r3.revision, 2],
      );
    });

    it("rejects a transaction that writes one key twice with Invalid", async () => {
      await assert.rejects(
        backend.txn({
          compare: [],
          success: [
            { type: "put", key: p + "k", value: "1" },
            { type: "delete", key: p + "k" },
          ],
        }),
        (err: unknown) => isErrorCode(err, "Invalid"),
      );
      assert.equal(await backend.get(p + "k"), undefined);
    });

    it("rejects a transaction with more than 128 operations in a branch with Invalid", async () => {
      const ops = (n: number) =>
        Array.from({ length: n }, (_, i) => ({
          type: "put" as const,
          key: `${p}k${i}`,
          value: "v",
        }));
      await backend.txn({ compare: [], success: ops(128) });
      await assert.rejects(backend.txn({ compare: [], success: ops(129) }), (err: unknown) =>
        isErrorCode(err, "Invalid"),
      );
      await assert.rejects(
        backend.txn({ compare: [], success: [], failure: ops(129) }),
        (err: unknown) => isErrorCode(err, "Invalid"),
      );
    });

    it("lists by prefix, sorted by key, with the revision read at", async () => {
      for (const k of ["m", "b", "a/2", "a/1", "z", "a/10"]) await put(k, k.toUpperCase());
      const last = await backend.txn({
        compare: [],
        success: [{ type: "put", key: p.slice(0, -1) + "-sibling", value: "outside" }],
      });
      const all = await backend.list(p);
      assert.deepEqual(
        all.entries.map((e) => [e.key.slice(p.length), e.value]),
        [
          ["a/1", "A/1"],
          ["a/10", "A/10"],
          ["a/2", "A/2"],
          ["b", "B"],
          ["m", "M"],
          ["z", "Z"],
        ],
      );
      assert.equal(all.revision, last.revision);
      const some = await backend.list(p + "a/");
      assert.deepEqual(
        some.entries.map((e) => e.key.slice(p.length)),
        ["a/1", "a/10", "a/2"],
      );
      assert.deepEqual((await backend.list(p + "none/")).entries, []);
    });

    it("watches from a revision: replays history, then follows live, in order, with prev values", async () => {
      const before = await backend.revision();
      const w1 = await put("a", "1");
      const w2 = await put("b", "1");
      const w3 = await put("a", "2");
      await backend.txn({
        compare: [],
        success: [{ type: "put", key: "/elsewhere/" + p, value: "x" }],
      });
      const w4 = await backend.txn({ compare: [], success: [{ type: "delete", key: p + "b" }] });

      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 5000);
      const seen: string[] = [];
      const watch = backend.watch(p, { fromRevision: before, signal: ac.signal });
      const it = watch[Symbol.asyncIterator]();
      for (let i = 0; i < 4; i++) {
        const next = await it.next();
        if (next.done) break;
        seen.push(show(next.value));
      }
      const w5 = await put("c", "1");
      const w6 = await backend.txn({
        compare: [],
        success: [
          { type: "put", key: p + "c", value: "2" },
          { type: "put", key: p + "a", value: "3" },
          { type: "delete", key: p + "nothing" },
        ],
      });
      for (let i = 0; i < 3; i++) {
        const next = await it.next();
        if (next.done) break;
        seen.push(show(next.value));
      }
      ac.abort();
      clearTimeout(timer);
      assert.deepEqual(seen, [
        `put a=1 @${w1.revision}`,
        `put b=1 @${w2.revision}`,
        `put a=2 @${w3.revision} prev=1`,
        `delete b @${w4.revision} prev=1`,
        `put c=1 @${w5.revision}`,
        `put c=2 @${w6.revision} prev=1`,
        `put a=3 @${w6.revision} prev=2`,
      ]);
      assert.deepEqual(
        await it.next(),
        { done: true, value: undefined },
        "aborted: the iterator ends",
      );
    });

    it("watch events carry full entries", async () => {
      const before = await backend.revision();
      const w1 = await put("k", "1");
      const w2 = await put("k", "2");
      const events = await take(backend.watch(p, { fromRevision: before }), 2);
      const first: KvEntry = {
        key: p + "k",
        value: "1",
        createRevision: w1.revision,
        modRevision: w1.revision,
        version: 1,
      };
      assert.deepEqual(events, [
        { type: "put", entry: first },
        {
          type: "put",
          entry: {
            key: p + "k",
            value: "2",
            createRevision: w1.revision,
            modRevision: w2.revision,
            version: 2,
          },
          prev: first,
        },
      ]);
    });

    it("delivers only events strictly after fromRevision", async () => {
      await put("k", "1");
      const w2 = await put("k", "2");
      const w3 = await put("k", "3");
      const events = await take(backend.watch(p, { fromRevision: w2.revision }), 1);
      assert.deepEqual(events.map(show), [`put k=3 @${w3.revision} prev=2`]);
    });

    it("watch from a compacted revision yields one compacted event, then ends", async () => {
      const before = await backend.revision();
      await put("k", "1");
      await put("k", "2");
      const w3 = await put("k", "3");
      await backend.compact(w3.revision);
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), 5000);
      const events: WatchEvent[] = [];
      for await (const ev of backend.watch(p, { fromRevision: before, signal: ac.signal }))
        events.push(ev);
      clearTimeout(timer);
      assert.equal(ac.signal.aborted, false, "the iterator ended by itself");
      assert.deepEqual(events, [{ type: "compacted", compactRevision: w3.revision }]);

      // From the compact revision on, history is still there.
      const w4 = await put("k", "4");
      const later = await take(backend.watch(p, { fromRevision: w3.revision }), 1);
      assert.deepEqual(later.map(show), [`put k=4 @${w4.revision} prev=3`]);
    });

    it("compaction is idempotent and refuses future revisions", async () => {
      const w = await put("k", "1");
      await backend.compact(w.revision);
      await backend.compact(w.revision);
      await backend.compact(w.revision - 1);
      await assert.rejects(backend.compact(w.revision + 1000), (err: unknown) =>
        isErrorCode(err, "Invalid"),
      );
      assert.equal((await backend.get(p + "k"))?.value, "1", "compaction keeps current values");
    });

    it("abort ends a waiting watch cleanly, without an error", async () => {
      const ac = new AbortController();
      const from = await backend.revision();
      const events: WatchEvent[] = [];
      const done = (async () => {
        for await (const ev of backend.watch(p, { fromRevision: from, signal: ac.signal }))
          events.push(ev);
      })();
      await put("k", "1");
      await waitFor(() => events.length === 1);
      ac.abort();
      await done;
      await put("k", "2");
      assert.equal(events.length, 1);
    });

    it("a watch with an already aborted signal yields nothing", async () => {
      await put("k", "1");
      const ac = new AbortController();
      ac.abort();
      const events: WatchEvent[] = [];
      for await (const ev of backend.watch(p, { fromRevision: 0, signal: ac.signal }))
        events.push(ev);
      assert.deepEqual(events, []);
    });

    it("breaking out of a watch loop releases it", async () => {
      const from = await backend.revision();
      await put("a", "1");
      await put("b", "1");
      for await (const ev of backend.watch(p, { fromRevision: from })) {
        assert.equal(ev.type, "put");
        break;
      }
      // And the backend still works normally afterwards.
      assert.equal((await backend.get(p + "b"))?.value, "1");
    });

    it("fails with Unavailable once closed", async () => {
      await put("k", "1");
      await backend.close();
      await assert.rejects(backend.get(p + "k"), (err: unknown) => isErrorCode(err, "Unavailable"));
    });

    it("ends an open watch with Unavailable when closed", async () => {
      const from = await backend.revision();
      const it = backend.watch(p, { fromRevision: from })[Symbol.asyncIterator]();
      const next = it.next();
      await put("k", "1");
      assert.equal((await next).done, false);
      const pending = it.next();
      await backend.close();
      await assert.rejects(pending, (err: unknown) => isErrorCode(err, "Unavailable"));
    });
  });
}

/** The first `count` events of a watch (fewer if none come for 5 s). */
async function take(iterable: AsyncIterable<WatchEvent>, count: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  const it = iterable[Symbol.asyncIterator]();
  try {
    while (out.length < count) {
      const next = await Promise.race([it.next(), timeout(5000)]);
      if (next === "timeout" || next.done) break;
      out.push(next.value);
    }
  } finally {
    void it.return?.();
  }
  return out;
}

function timeout(ms: number): Promise<"timeout"> {
  return new Promise((resolve) => setTimeout(() => resolve("timeout"), ms).unref());
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
