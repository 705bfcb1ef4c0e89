import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { kindById } from "../api/kinds.js";
import type { KindInfo } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import type { Backend, WatchEvent, WatchOptions } from "../datastore/backend.js";
import { EtcdBackend } from "../datastore/etcd-backend.js";
import { startEtcd } from "../datastore/etcd-server.js";
import type { EtcdServer } from "../datastore/etcd-server.js";
import { MemoryBackend } from "../datastore/memory-backend.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { TwillError, isErrorCode } from "../util/errors.js";
import { startSyncer } from "./syncer.js";
import type { SyncUpdate, Syncer, SyncerOptions } from "./syncer.js";

const GNP = kindById("GlobalNetworkPolicy");
const NP = kindById("NetworkPolicy");
const K8S_NP = kindById("NetworkPolicy.networking.k8s.io");
const POOL = kindById("IPPool");

function gnp(name: string, order = 1): Resource {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: { name },
    spec: { order },
  };
}

function np(namespace: string, name: string): Resource {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "NetworkPolicy",
    metadata: { name, namespace },
    spec: {},
  };
}

function k8sNp(namespace: string, name: string): Resource {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name, namespace },
  };
}

function pool(name: string): Resource {
  return { apiVersion: "projectcalico.org/v3", kind: "IPPool", metadata: { name }, spec: {} };
}

/** One line per update: `put GlobalNetworkPolicy/p@5`, `delete NetworkPolicy/ns/q`, `status in-sync`. */
function describeUpdate(u: SyncUpdate): string {
  switch (u.type) {
    case "put": {
      const m = u.resource.metadata;
      const ns = m.namespace === undefined ? "" : `${m.namespace}/`;
      const group = u.resource.apiVersion.startsWith("networking.k8s.io") ? "(k8s)" : "";
      return `put ${u.resource.kind}${group}/${ns}${m.name}@${m.resourceVersion}`;
    }
    case "delete": {
      const ns = u.namespace === undefined ? "" : `${u.namespace}/`;
      return `delete ${u.kind.id}/${ns}${u.name}`;
    }
    case "status":
      return `status ${u.status}`;
  }
}

/** Collects batches and lets a test wait until some update has arrived. */
class Recorder {
  readonly batches: string[][] = [];
  #waiters: { pred: (all: string[]) => boolean; resolve: () => void }[] = [];

  onUpdates = (updates: SyncUpdate[]): void => {
    assert.ok(updates.length > 0, "never an empty batch");
    this.batches.push(updates.map(describeUpdate));
    const all = this.all;
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.pred(all)) return true;
      w.resolve();
      return false;
    });
  };

  get all(): string[] {
    return this.batches.flat();
  }

  /** Updates after the n-th (1-based) occurrence of `status in-sync`. */
  after(n = 1): string[] {
    const all = this.all;
    let seen = 0;
    const i = all.findIndex((u) => u === "status in-sync" && ++seen === n);
    return i < 0 ? [] : all.slice(i + 1);
  }

  until(pred: (all: string[]) => boolean, what: string): Promise<void> {
    if (pred(this.all)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.batches)}`)),
        5000,
      );
      this.#waiters.push({
        pred,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  untilSeen(update: string): Promise<void> {
    return this.until((all) => all.includes(update), `"${update}"`);
  }

  untilInSync(n = 1): Promise<void> {
    return this.until(
      (all) => all.filter((u) => u === "status in-sync").length >= n,
      `in-sync #${n}`,
    );
  }
}

/** A sleep that records each delay and waits until the test releases it (or resolves at once). */
class Sleeper {
  readonly delays: number[] = [];
  held = false;
  #release: (() => void)[] = [];
  #onCall: (() => void) | undefined;

  sleep = (ms: number, signal: AbortSignal): Promise<void> => {
    this.delays.push(ms);
    this.#onCall?.();
    if (!this.held || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.#release.push(resolve);
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  };

  /** Resolves once the syncer is sleeping (held) or has slept `count` times in all. */
  called(count: number): Promise<void> {
    if (this.delays.length >= count) return Promise.resolve();
    return new Promise((resolve) => {
      this.#onCall = () => {
        if (this.delays.length >= count) resolve();
      };
    });
  }

  release(): void {
    this.held = false;
    for (const r of this.#release.splice(0)) r();
  }
}

type WatchFault =
  | { type: "fail" }
  | { type: "end-after"; events: number }
  | { type: "throw-after"; events: number }
  | { type: "twice" };

/** A MemoryBackend whose watches fail as planned, one plan per watch call. */
class ScriptedBackend extends MemoryBackend {
  readonly plans: WatchFault[] = [];
  readonly watchedFrom: number[] = [];
  /** Runs after each list, before its result is returned. */
  afterList: (() => Promise<void>) | undefined;

  override async list(prefix: string): ReturnType<MemoryBackend["list"]> {
    const result = await super.list(prefix);
    const hook = this.afterList;
    this.afterList = undefined;
    if (hook) await hook();
    return result;
  }

  override watch(prefix: string, options: WatchOptions): AsyncIterable<WatchEvent> {
    this.watchedFrom.push(options.fromRevision);
    const plan = this.plans.shift();
    const inner = super.watch(prefix, options);
    if (!plan) return inner;
    return {
      async *[Symbol.asyncIterator]() {
        const lost = () => new TwillError("Unavailable", "scripted: the watch was lost");
        if (plan.type === "fail") throw lost();
        let n = 0;
        for await (const ev of inner) {
          if (plan.type === "twice") {
            yield ev;
            yield ev;
            continue;
          }
          yield ev;
          n += 1;
          if (n < plan.events) continue;
          if (plan.type === "end-after") return;
          throw lost();
        }
      },
    };
  }
}

interface Harness {
  backend: ScriptedBackend;
  store: ResourceStore;
  rec: Recorder;
  sleeper: Sleeper;
  abort: AbortController;
  syncer: Syncer;
}

function start(backend: ScriptedBackend, options: Partial<SyncerOptions> = {}): Harness {
  const store = new ResourceStore(backend);
  const rec = new Recorder();
  const sleeper = new Sleeper();
  const abort = new AbortController();
  const syncer = startSyncer(store, rec.onUpdates, {
    signal: abort.signal,
    sleep: sleeper.sleep,
    retry: { initialDelayMs: 100, maxDelayMs: 1000, jitter: () => 0 },
    ...options,
  });
  return { backend, store, rec, sleeper, abort, syncer };
}

async function stop(h: Harness): Promise<void> {
  h.abort.abort();
  await h.syncer.done;
  assert.equal(h.backend.watchCount, 0, "the watch was closed");
}

const rv = (r: Resource): string => r.metadata.resourceVersion ?? "?";

/** Poll until `pred` holds (for state that no callback announces). */
async function eventually(pred: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/** Wait until the syncer's watch is open, so that breakWatches reaches it. */
const watching = (backend: MemoryBackend): Promise<void> =>
  eventually(() => backend.watchCount > 0, "an open watch");

describe("syncer: snapshot", () => {
  it("reports waiting, then delivers the whole snapshot in one batch ending in in-sync", async () => {
    const backend = new ScriptedBackend();
    const seed = new ResourceStore(backend);
    const a = await seed.create(gnp("a"));
    const n = await seed.create(np("ns", "n"));
    const p = await seed.create(pool("p"));
    const h = start(backend);
    assert.equal(h.syncer.status(), "waiting");
    await h.rec.untilInSync();
    assert.deepEqual(h.rec.batches, [
      ["status waiting"],
      [
        `put GlobalNetworkPolicy/a@${rv(a)}`,
        `put IPPool/p@${rv(p)}`,
        `put NetworkPolicy/ns/n@${rv(n)}`,
        "status in-sync",
      ],
    ]);
    assert.equal(h.syncer.status(), "in-sync");
    assert.deepEqual(h.syncer.stats(), {
      resyncs: 0,
      watchRestarts: 0,
      listRetries: 0,
      revision: await backend.revision(),
    });
    assert.deepEqual(backend.watchedFrom, [await backend.revision()], "watches from the snapshot");
    await stop(h);
  });

  it("delivers a write that lands just after the snapshot's list once, through the watch", async () => {
    const backend = new ScriptedBackend();
    const seed = new ResourceStore(backend);
    await seed.create(gnp("a"));
    let late: Resource | undefined;
    backend.afterList = async () => {
      late = await seed.create(gnp("late"));
    };
    const h = start(backend);
    await h.rec.until(
      (all) => all.some((u) => u.startsWith("put GlobalNetworkPolicy/late")),
      "late",
    );
    assert.ok(late);
    assert.deepEqual(h.rec.after(), [`put GlobalNetworkPolicy/late@${rv(late)}`]);
    await stop(h);
  });

  it("keeps waiting while the datastore is unavailable, backing off, then syncs", async () => {
    const backend = new ScriptedBackend();
    const a = await new ResourceStore(backend).create(gnp("a"));
    backend.failNext(4);
    const h = start(backend);
    await h.rec.untilInSync();
    assert.deepEqual(h.sleeper.delays, [100, 200, 400, 800]);
    assert.deepEqual(h.rec.batches, [
      ["status waiting"],
      [`put GlobalNetworkPolicy/a@${rv(a)}`, "status in-sync"],
    ]);
    assert.equal(h.syncer.stats().listRetries, 4);
    await stop(h);
  });

  it("spreads retries with jitter: each delay between half and all of the doubling ceiling", async () => {
    const backend = new ScriptedBackend();
    await new ResourceStore(backend).create(gnp("a"));
    backend.failNext(4);
    const draws = [0.999, 0, 0.5, 0.25];
    const h = start(backend, {
      retry: { initialDelayMs: 100, maxDelayMs: 1000, jitter: () => draws.shift() ?? 0 },
    });
    await h.rec.untilInSync();
    assert.deepEqual(h.sleeper.delays, [50, 200, 300, 700]);
    await stop(h);
  });
});

describe("syncer: live updates", () => {
  it("delivers creates, updates and deletes in order with their resourceVersions", async () => {
    const h = start(new ScriptedBackend());
    await h.rec.untilInSync();
    const a1 = await h.store.create(gnp("a"));
    const n = await h.store.create(np("ns", "n"));
    const a2 = await h.store.update(gnp("a", 2));
    await h.store.delete(NP, "n", { namespace: "ns" });
    await h.rec.untilSeen("delete NetworkPolicy/ns/n");
    assert.deepEqual(h.rec.after(), [
      `put GlobalNetworkPolicy/a@${rv(a1)}`,
      `put NetworkPolicy/ns/n@${rv(n)}`,
      `put GlobalNetworkPolicy/a@${rv(a2)}`,
      "delete NetworkPolicy/ns/n",
    ]);
    assert.equal(h.syncer.stats().revision, await h.backend.revision());
    await stop(h);
  });

  it("delivers the events of one transaction in one batch", async () => {
    const h = start(new ScriptedBackend());
    await h.rec.untilInSync();
    const { revision } = await h.backend.txn({
      compare: [],
      success: ["x", "y", "z"].map((name) => ({
        type: "put" as const,
        key: h.store.key(GNP, name),
        value: JSON.stringify(gnp(name)),
      })),
    });
    await h.rec.untilSeen(`put GlobalNetworkPolicy/z@${revision}`);
    assert.deepEqual(h.rec.batches.at(-1), [
      `put GlobalNetworkPolicy/x@${revision}`,
      `put GlobalNetworkPolicy/y@${revision}`,
      `put GlobalNetworkPolicy/z@${revision}`,
    ]);
    await stop(h);
  });
});

describe("syncer: a broken watch resumes without loss or duplication", () => {
  // The same writes under different faults must always come out the same.
  const cases: { name: string; plans?: WatchFault[]; breakMidway?: boolean; restarts: number }[] = [
    { name: "no fault", restarts: 0 },
    { name: "every open watch throws Unavailable midway", breakMidway: true, restarts: 1 },
    { name: "the watch ends unexpectedly", plans: [{ type: "end-after", events: 2 }], restarts: 1 },
    {
      name: "the watch breaks inside a transaction",
      plans: [{ type: "throw-after", events: 2 }],
      restarts: 1,
    },
    { name: "every event comes twice", plans: [{ type: "twice" }], restarts: 0 },
    {
      name: "the first watches fail at once",
      plans: [{ type: "fail" }, { type: "fail" }, { type: "fail" }],
      restarts: 3,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const backend = new ScriptedBackend();
      const a0 = await new ResourceStore(backend).create(gnp("a"));
      backend.plans.push(...(c.plans ?? []));
      const h = start(backend);
      await h.rec.untilInSync();
      const b = await h.store.create(gnp("b"));
      const { revision: txnRev } = await h.backend.txn({
        compare: [],
        success: ["c", "d", "e"].map((name) => ({
          type: "put" as const,
          key: h.store.key(GNP, name),
          value: JSON.stringify(gnp(name)),
        })),
      });
      await h.rec.untilSeen(`put GlobalNetworkPolicy/e@${txnRev}`);
      if (c.breakMidway) backend.breakWatches();
      const a1 = await h.store.update(gnp("a", 5));
      await h.store.delete(GNP, "b");
      await h.rec.untilSeen("delete GlobalNetworkPolicy/b");
      assert.deepEqual(h.rec.all.slice(0, 3), [
        "status waiting",
        `put GlobalNetworkPolicy/a@${rv(a0)}`,
        "status in-sync",
      ]);
      assert.deepEqual(h.rec.after(), [
        `put GlobalNetworkPolicy/b@${rv(b)}`,
        `put GlobalNetworkPolicy/c@${txnRev}`,
        `put GlobalNetworkPolicy/d@${txnRev}`,
        `put GlobalNetworkPolicy/e@${txnRev}`,
        `put GlobalNetworkPolicy/a@${rv(a1)}`,
        "delete GlobalNetworkPolicy/b",
      ]);
      assert.equal(h.syncer.status(), "in-sync");
      assert.equal(h.syncer.stats().watchRestarts, c.restarts);
      assert.equal(h.syncer.stats().resyncs, 0);
      await stop(h);
    });
  }

  it("backs off exponentially up to the bound, and starts again after an event", async () => {
    const backend = new ScriptedBackend();
    backend.plans.push(...Array.from({ length: 6 }, () => ({ type: "fail" }) as const));
    backend.plans.push({ type: "throw-after", events: 1 }, { type: "fail" });
    const h = start(backend);
    await h.rec.untilInSync();
    await h.sleeper.called(6);
    assert.deepEqual(h.sleeper.delays, [100, 200, 400, 800, 1000, 1000]);
    await h.store.create(gnp("a"));
    await h.sleeper.called(8);
    assert.deepEqual(h.sleeper.delays.slice(6), [100, 200]);
    await stop(h);
  });

  it("resumes one revision before the last event seen", async () => {
    const backend = new ScriptedBackend();
    backend.plans.push({ type: "throw-after", events: 1 });
    const h = start(backend);
    await h.rec.untilInSync();
    const listRev = await backend.revision();
    const a = await h.store.create(gnp("a"));
    await eventually(() => backend.watchedFrom.length === 2, "the second watch");
    assert.deepEqual(backend.watchedFrom, [listRev, Number(rv(a)) - 1]);
    await stop(h);
  });
});

describe("syncer: compaction", () => {
  it("resyncs: resyncing, then only the difference with synthesised deletes, then in-sync", async () => {
    const backend = new ScriptedBackend();
    const seed = new ResourceStore(backend);
    for (const name of ["keep", "change", "gone", "reborn"]) await seed.create(gnp(name));
    await seed.create(np("ns", "gone"));
    const h = start(backend);
    await h.rec.untilInSync();
    await watching(backend);
    const before = h.rec.all.length;

    // Lose the watch and, while the syncer backs off, change things and
    // compact the history it would resume from.
    h.sleeper.held = true;
    backend.breakWatches();
    await h.sleeper.called(1);
    const changed = await h.store.update(gnp("change", 7));
    await h.store.delete(GNP, "gone");
    await h.store.delete(NP, "gone", { namespace: "ns" });
    await h.store.delete(GNP, "reborn");
    const reborn = await h.store.create(gnp("reborn"));
    const added = await h.store.create(np("ns", "new"));
    await backend.compact(await backend.revision());
    h.sleeper.release();

    await h.rec.untilInSync(2);
    assert.deepEqual(h.rec.batches.slice(-2), [
      ["status resyncing"],
      [
        "delete GlobalNetworkPolicy/gone",
        "delete NetworkPolicy/ns/gone",
        `put GlobalNetworkPolicy/change@${rv(changed)}`,
        `put GlobalNetworkPolicy/reborn@${rv(reborn)}`,
        `put NetworkPolicy/ns/new@${rv(added)}`,
        "status in-sync",
      ],
    ]);
    assert.equal(h.rec.all.length, before + 7, "nothing unchanged was sent again");
    assert.deepEqual(h.syncer.stats(), {
      resyncs: 1,
      watchRestarts: 1,
      listRetries: 0,
      revision: await backend.revision(),
    });

    // And watches on from the new snapshot.
    const later = await h.store.create(gnp("later"));
    await h.rec.untilSeen(`put GlobalNetworkPolicy/later@${rv(later)}`);
    assert.deepEqual(h.rec.after(2), [`put GlobalNetworkPolicy/later@${rv(later)}`]);
    await stop(h);
  });

  it("stays resyncing while the fresh list fails, then completes", async () => {
    const backend = new ScriptedBackend();
    const h = start(backend);
    await h.rec.untilInSync();
    await watching(backend);
    h.sleeper.held = true;
    backend.breakWatches();
    await h.sleeper.called(1);
    await h.store.create(gnp("a"));
    const a = await h.store.update(gnp("a", 2));
    await backend.compact(await backend.revision());
    backend.failNext(2);
    h.sleeper.release();
    await h.rec.untilInSync(2);
    assert.deepEqual(h.rec.after(), [
      "status resyncing",
      `put GlobalNetworkPolicy/a@${rv(a)}`,
      "status in-sync",
    ]);
    assert.deepEqual(h.sleeper.delays, [100, 200, 400]);
    assert.equal(h.syncer.stats().listRetries, 2);
    await stop(h);
  });
});

describe("syncer: kinds of interest", () => {
  const cases: { name: string; kinds?: KindInfo[]; want: string[] }[] = [
    {
      name: "every kind by default",
      want: ["GlobalNetworkPolicy/g", "IPPool/p", "NetworkPolicy(k8s)/ns/k", "NetworkPolicy/ns/n"],
    },
    { name: "two kinds", kinds: [GNP, NP], want: ["GlobalNetworkPolicy/g", "NetworkPolicy/ns/n"] },
    { name: "one kind", kinds: [NP], want: ["NetworkPolicy/ns/n"] },
    {
      name: "the Kubernetes NetworkPolicy alone",
      kinds: [K8S_NP],
      want: ["NetworkPolicy(k8s)/ns/k"],
    },
  ];
  for (const c of cases) {
    it(`delivers ${c.name}, in the snapshot, the watch and a resync`, async () => {
      const backend = new ScriptedBackend();
      const seed = new ResourceStore(backend);
      const make = [gnp("g"), pool("p"), np("ns", "n"), k8sNp("ns", "k")];
      await seed.create(make[0] as Resource);
      await seed.create(make[1] as Resource);
      const h = start(backend, c.kinds ? { kinds: c.kinds } : {});
      await h.rec.untilInSync();
      await seed.create(make[2] as Resource);
      await seed.create(make[3] as Resource);
      // Everything else changes too; a marker of every kind shows the watch has caught up.
      h.sleeper.held = true;
      backend.breakWatches();
      await h.sleeper.called(1);
      await seed.delete(GNP, "g");
      await seed.delete(POOL, "p");
      await seed.delete(NP, "n", { namespace: "ns" });
      await seed.delete(K8S_NP, "k", { namespace: "ns" });
      await backend.compact(await backend.revision());
      h.sleeper.release();
      await h.rec.untilInSync(2);
      const strip = (u: string) => u.replace(/^(put|delete) /, "").replace(/@\d+$/, "");
      const nameOf = (u: string) =>
        strip(u).replace(/^NetworkPolicy\.networking\.k8s\.io\//, "NetworkPolicy(k8s)/");
      const puts = h.rec.all
        .filter((u) => u.startsWith("put "))
        .map(nameOf)
        .sort();
      const deletes = h.rec.all
        .filter((u) => u.startsWith("delete "))
        .map(nameOf)
        .sort();
      assert.deepEqual(puts, c.want);
      assert.deepEqual(deletes, c.want, "resync deletes only what it delivered");
      await stop(h);
    });
  }
});

describe("syncer: stopping", () => {
  it("ends cleanly on abort while watching, and calls back no more", async () => {
    const h = start(new ScriptedBackend());
    await h.rec.untilInSync();
    const count = h.rec.all.length;
    h.abort.abort();
    await h.store.create(gnp("a"));
    await h.syncer.done;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(h.rec.all.length, count);
    assert.equal(h.backend.watchCount, 0);
  });

  it("ends cleanly on abort while the datastore is down", async () => {
    const backend = new ScriptedBackend();
    backend.failNext(1000);
    const h = start(backend);
    h.sleeper.held = true;
    await h.sleeper.called(1);
    h.abort.abort();
    await h.syncer.done;
    assert.equal(h.syncer.status(), "waiting");
    assert.deepEqual(h.rec.batches, [["status waiting"]]);
  });

  it("does nothing when aborted before it starts", async () => {
    const backend = new ScriptedBackend();
    const abort = new AbortController();
    abort.abort();
    const rec = new Recorder();
    const syncer = startSyncer(new ResourceStore(backend), rec.onUpdates, { signal: abort.signal });
    await syncer.done;
    assert.deepEqual(rec.batches, []);
  });

  const failures: {
    name: string;
    setup(backend: ScriptedBackend): void;
    options?: Partial<SyncerOptions>;
    /** onUpdates throws on the first put, which a live write provides. */
    throwing?: boolean;
    want: (err: unknown) => boolean;
  }[] = [
    {
      name: "an error other than Unavailable",
      setup: (b) => b.failNext(1, new TwillError("Internal", "broken value")),
      want: (err) => isErrorCode(err, "Internal"),
    },
    {
      name: "retry.maxAttempts failures in a row",
      setup: (b) => b.failNext(3),
      options: { retry: { maxAttempts: 3 } },
      want: (err) =>
        isErrorCode(err, "Unavailable") && /list failed 3 times in a row/.test(err.message),
    },
    {
      name: "an onUpdates that throws",
      setup: () => undefined,
      throwing: true,
      want: (err) => err instanceof Error && err.message === "handler bug",
    },
  ];
  for (const c of failures) {
    it(`fails done on ${c.name}, closing the watch`, async () => {
      const backend = new ScriptedBackend();
      c.setup(backend);
      const abort = new AbortController();
      const syncer = startSyncer(
        new ResourceStore(backend),
        (updates) => {
          if (c.throwing && updates.some((u) => u.type === "put")) throw new Error("handler bug");
        },
        { signal: abort.signal, sleep: async () => undefined, ...c.options },
      );
      if (c.throwing) {
        await watching(backend);
        await new ResourceStore(backend).create(gnp("a"));
      }
      await assert.rejects(syncer.done, c.want);
      assert.equal(backend.watchCount, 0);
    });
  }
});

describe("syncer on etcd", () => {
  let etcd: EtcdServer;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });

  /** An etcd Backend whose watches can be cut and held off, to make one resume from a compacted revision. */
  class GatedBackend implements Backend {
    #gate: Promise<void> = Promise.resolve();
    #open: () => void = () => undefined;
    #cuts = new Set<AbortController>();
    constructor(readonly inner: Backend) {}
    get: Backend["get"] = (k) => this.inner.get(k);
    list: Backend["list"] = (p) => this.inner.list(p);
    txn: Backend["txn"] = (r) => this.inner.txn(r);
    compact: Backend["compact"] = (r) => this.inner.compact(r);
    revision: Backend["revision"] = () => this.inner.revision();
    close: Backend["close"] = () => this.inner.close();
    /** Break every open watch and hold new ones until open(). */
    cut(): void {
      this.#gate = new Promise((resolve) => (this.#open = resolve));
      for (const c of this.#cuts) c.abort();
    }
    open(): void {
      this.#open();
    }
    watch(prefix: string, options: WatchOptions): AsyncIterable<WatchEvent> {
      return { [Symbol.asyncIterator]: () => this.#gatedWatch(prefix, options) };
    }
    async *#gatedWatch(prefix: string, options: WatchOptions): AsyncGenerator<WatchEvent> {
      await this.#gate;
      const cut = new AbortController();
      this.#cuts.add(cut);
      const signals = [cut.signal, ...(options.signal ? [options.signal] : [])];
      try {
        yield* this.inner.watch(prefix, { ...options, signal: AbortSignal.any(signals) });
        if (cut.signal.aborted && !options.signal?.aborted) {
          throw new TwillError("Unavailable", "test: the watch was cut");
        }
      } finally {
        this.#cuts.delete(cut);
      }
    }
  }

  it("snapshots, follows updates, and resyncs after a compaction", async () => {
    const etcdBackend = new EtcdBackend({ endpoints: [etcd.endpoint] });
    const backend = new GatedBackend(etcdBackend);
    const store = new ResourceStore(backend, { prefix: `/sync-${randomUUID().slice(0, 8)}` });
    const rec = new Recorder();
    const abort = new AbortController();
    try {
      const a = await store.create(gnp("a"));
      const gone = await store.create(np("ns", "gone"));
      const syncer = startSyncer(store, rec.onUpdates, {
        signal: abort.signal,
        retry: { initialDelayMs: 10, maxDelayMs: 50 },
      });
      await rec.untilInSync();
      assert.deepEqual(rec.batches, [
        ["status waiting"],
        [
          `put GlobalNetworkPolicy/a@${rv(a)}`,
          `put NetworkPolicy/ns/gone@${rv(gone)}`,
          "status in-sync",
        ],
      ]);

      const b = await store.create(gnp("b"));
      const a2 = await store.update(gnp("a", 2));
      await rec.untilSeen(`put GlobalNetworkPolicy/a@${rv(a2)}`);
      assert.deepEqual(rec.after(), [
        `put GlobalNetworkPolicy/b@${rv(b)}`,
        `put GlobalNetworkPolicy/a@${rv(a2)}`,
      ]);

      backend.cut();
      await store.delete(NP, "gone", { namespace: "ns" });
      const c = await store.create(gnp("c"));
      await backend.compact(await backend.revision());
      backend.open();
      await rec.untilInSync(2);
      assert.deepEqual(rec.after(), [
        `put GlobalNetworkPolicy/b@${rv(b)}`,
        `put GlobalNetworkPolicy/a@${rv(a2)}`,
        "status resyncing",
        "delete NetworkPolicy/ns/gone",
        `put GlobalNetworkPolicy/c@${rv(c)}`,
        "status in-sync",
      ]);
      assert.equal(syncer.stats().resyncs, 1);

      const d = await store.create(gnp("d"));
      await rec.untilSeen(`put GlobalNetworkPolicy/d@${rv(d)}`);
      abort.abort();
      await syncer.done;
    } finally {
      abort.abort();
      await etcdBackend.close();
    }
  });
});
