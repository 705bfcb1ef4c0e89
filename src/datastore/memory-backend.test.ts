import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { TwillError, isErrorCode } from "../util/errors.js";
import type { WatchEvent } from "./backend.js";
import { runBackendContract } from "./backend-contract.js";
import { MAX_TXN_OPS, MemoryBackend } from "./memory-backend.js";

runBackendContract("memory", async () => {
  const backend = new MemoryBackend();
  return { backend, cleanup: () => backend.close() };
});

describe("MemoryBackend extras", () => {
  it("starts at revision 1, like a fresh etcd", async () => {
    assert.equal(await new MemoryBackend().revision(), 1);
  });

  it("failNext makes exactly the next n calls fail with the given error", async () => {
    const backend = new MemoryBackend();
    const boom = new TwillError("Timeout", "slow");
    backend.failNext(2, boom);
    await assert.rejects(backend.get("/a"), boom);
    await assert.rejects(backend.txn({ compare: [], success: [] }), boom);
    assert.equal(await backend.get("/a"), undefined);
  });

  it("failNext defaults to Unavailable", async () => {
    const backend = new MemoryBackend();
    backend.failNext(1);
    await assert.rejects(backend.list("/"), (err: unknown) => isErrorCode(err, "Unavailable"));
  });

  it("breakWatches makes open watches throw and releases them", async () => {
    const backend = new MemoryBackend();
    const it = backend.watch("/", { fromRevision: 1 })[Symbol.asyncIterator]();
    const pending = it.next();
    await Promise.resolve();
    backend.breakWatches();
    await assert.rejects(pending, (err: unknown) => isErrorCode(err, "Unavailable"));
    assert.equal(backend.watchCount, 0);
  });

  it("an aborted watch unsubscribes", async () => {
    const backend = new MemoryBackend();
    const ac = new AbortController();
    const events: WatchEvent[] = [];
    const done = (async () => {
      for await (const ev of backend.watch("/", { fromRevision: 1, signal: ac.signal }))
        events.push(ev);
    })();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(backend.watchCount, 1);
    ac.abort();
    await done;
    assert.equal(backend.watchCount, 0);
  });

  it("dump shows every key and value sorted by key", async () => {
    const backend = new MemoryBackend();
    await backend.txn({
      compare: [],
      success: [
        { type: "put", key: "/b", value: "2" },
        { type: "put", key: "/a", value: "1" },
      ],
    });
    assert.deepEqual(Object.entries(backend.dump()), [
      ["/a", "1"],
      ["/b", "2"],
    ]);
  });

  it("omits prev on a replayed event at exactly the compact revision, as etcd does", async () => {
    const backend = new MemoryBackend();
    await backend.txn({ compare: [], success: [{ type: "put", key: "/k", value: "1" }] });
    const w2 = await backend.txn({
      compare: [],
      success: [{ type: "put", key: "/k", value: "2" }],
    });
    const w3 = await backend.txn({
      compare: [],
      success: [{ type: "put", key: "/k", value: "3" }],
    });
    await backend.compact(w2.revision);
    const events: WatchEvent[] = [];
    for await (const ev of backend.watch("/", { fromRevision: w2.revision - 1 })) {
      events.push(ev);
      if (events.length === 2) break;
    }
    assert.deepEqual(
      events.map((e) => (e.type === "put" ? [e.entry.modRevision, e.prev?.value] : e.type)),
      [
        [w2.revision, undefined],
        [w3.revision, "2"],
      ],
    );
  });

  const limits: { name: string; ops: number; valueBytes: number; ok: boolean }[] = [
    { name: "128 operations are allowed", ops: MAX_TXN_OPS, valueBytes: 1, ok: true },
    { name: "129 operations are not", ops: MAX_TXN_OPS + 1, valueBytes: 1, ok: false },
    { name: "more than 1.5 MiB is not", ops: 2, valueBytes: 800 * 1024, ok: false },
  ];
  for (const c of limits) {
    it(`enforces etcd's default transaction limits: ${c.name}`, async () => {
      const backend = new MemoryBackend();
      const txn = backend.txn({
        compare: [],
        success: Array.from({ length: c.ops }, (_, i) => ({
          type: "put" as const,
          key: `/k${i}`,
          value: "x".repeat(c.valueBytes),
        })),
      });
      if (c.ok) await txn;
      else await assert.rejects(txn, (err: unknown) => isErrorCode(err, "Invalid"));
    });
  }
});
