import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { kindById } from "../api/kinds.js";
import type { KindInfo } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { isErrorCode } from "../util/errors.js";
import type { ErrorCode } from "../util/errors.js";
import type { Backend, TxnRequest, TxnResult } from "./backend.js";
import { EtcdBackend } from "./etcd-backend.js";
import { startEtcd } from "./etcd-server.js";
import type { EtcdServer } from "./etcd-server.js";
import { MemoryBackend } from "./memory-backend.js";
import { MAX_WRITE_ATTEMPTS, ResourceStore } from "./resource-store.js";
import type { ResourceEvent } from "./resource-store.js";

const GNP = kindById("GlobalNetworkPolicy");
const NP = kindById("NetworkPolicy");
const K8S_NP = kindById("NetworkPolicy.networking.k8s.io");
const POOL = kindById("IPPool");

const NOW = new Date("2024-05-01T12:00:00.123Z");

function gnp(
  name: string,
  spec: unknown = { order: 10 },
  labels?: Record<string, string>,
): Resource {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "GlobalNetworkPolicy",
    metadata: labels ? { name, labels } : { name },
    spec,
  };
}

function np(name: string, namespace?: string, spec: unknown = { order: 1 }): Resource {
  return {
    apiVersion: "projectcalico.org/v3",
    kind: "NetworkPolicy",
    metadata: namespace === undefined ? { name } : { name, namespace },
    spec,
  };
}

const code = (c: ErrorCode, message?: RegExp) => (err: unknown) =>
  isErrorCode(err, c) && (!message || message.test(err.message));

let etcd: EtcdServer;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

/** A Backend that lets a rival write land just before each of our first `n` transactions. */
class RacingBackend implements Backend {
  constructor(
    readonly inner: Backend,
    private rivals: number,
    private readonly rival: () => TxnRequest,
  ) {}
  get: Backend["get"] = (k) => this.inner.get(k);
  list: Backend["list"] = (p) => this.inner.list(p);
  watch: Backend["watch"] = (p, o) => this.inner.watch(p, o);
  compact: Backend["compact"] = (r) => this.inner.compact(r);
  revision: Backend["revision"] = () => this.inner.revision();
  close: Backend["close"] = () => this.inner.close();
  async txn(request: TxnRequest): Promise<TxnResult> {
    if (this.rivals > 0) {
      this.rivals -= 1;
      await this.inner.txn(this.rival());
    }
    return this.inner.txn(request);
  }
}

interface Harness {
  backend: Backend;
  prefix: string;
  cleanup(): Promise<void>;
}

function resourceStoreSuite(name: string, make: () => Promise<Harness>): void {
  describe(`ResourceStore on ${name}`, () => {
    let h: Harness;
    let store: ResourceStore;
    let uids = 0;
    const options = () => ({ prefix: h.prefix, now: () => NOW, newUid: () => `uid-${++uids}` });

    beforeEach(async () => {
      h = await make();
      store = new ResourceStore(h.backend, options());
    });
    afterEach(async () => {
      await h.cleanup();
    });

    it("creates with uid, creationTimestamp and resourceVersion, and reads it back", async () => {
      const created = await store.create(gnp("allow-dns", { order: 5 }, { team: "net" }));
      assert.match(created.metadata.uid ?? "", /^uid-\d+$/);
      assert.equal(created.metadata.creationTimestamp, "2024-05-01T12:00:00Z");
      const raw = await h.backend.get(`${h.prefix}/resources/globalnetworkpolicies/allow-dns`);
      assert.ok(raw);
      assert.equal(created.metadata.resourceVersion, String(raw.modRevision));
      assert.equal(JSON.parse(raw.value).metadata.resourceVersion, undefined, "not stored");
      assert.deepEqual(await store.get(GNP, "allow-dns"), created);
      assert.deepEqual(created.spec, { order: 5 });
      assert.deepEqual(created.metadata.labels, { team: "net" });
    });

    it("does not modify the object it is given", async () => {
      const input = gnp("p");
      const before = structuredClone(input);
      await store.create(input);
      assert.deepEqual(input, before);
    });

    it("refuses to create what exists with AlreadyExists", async () => {
      await store.create(gnp("p"));
      await assert.rejects(
        store.create(gnp("p")),
        code("AlreadyExists", /^globalnetworkpolicy "p" already exists$/),
      );
      await store.create(np("p", "a"));
      await assert.rejects(
        store.create(np("p", "a")),
        code("AlreadyExists", /^networkpolicy "p" in namespace "a" already exists$/),
      );
    });

    it("defaults the namespace of namespaced kinds to default", async () => {
      const created = await store.create(np("p"));
      assert.equal(created.metadata.namespace, "default");
      assert.equal((await store.get(NP, "p")).metadata.namespace, "default");
      assert.equal((await store.get(NP, "p", { namespace: "default" })).metadata.name, "p");
    });

    it("drops a namespace given on a cluster-scoped kind", async () => {
      const created = await store.create({ ...gnp("p"), metadata: { name: "p", namespace: "x" } });
      assert.equal(created.metadata.namespace, undefined);
      assert.equal((await store.get(GNP, "p")).metadata.namespace, undefined);
    });

    const invalid: { name: string; res: Resource }[] = [
      {
        name: "an unknown kind",
        res: { apiVersion: "projectcalico.org/v3", kind: "Gadget", metadata: { name: "x" } },
      },
      {
        name: "a wrong apiVersion",
        res: { apiVersion: "v1", kind: "GlobalNetworkPolicy", metadata: { name: "x" } },
      },
      { name: "an empty name", res: gnp("") },
      { name: "a slash in the name", res: gnp("a/b") },
      { name: "a slash in the namespace", res: np("p", "a/b") },
    ];
    for (const c of invalid) {
      it(`rejects ${c.name} with Invalid`, async () => {
        await assert.rejects(store.create(c.res), code("Invalid"));
        await assert.rejects(store.apply(c.res), code("Invalid"));
      });
    }

    it("reports a missing resource with NotFound", async () => {
      await assert.rejects(
        store.get(GNP, "x"),
        code("NotFound", /^globalnetworkpolicy "x" not found$/),
      );
      await assert.rejects(
        store.get(NP, "x", { namespace: "ns" }),
        code("NotFound", /^networkpolicy "x" in namespace "ns" not found$/),
      );
    });

    it("lists one kind, in one namespace or all, sorted, with the revision", async () => {
      await store.create(np("b", "ns1"));
      await store.create(np("a", "ns2"));
      await store.create(np("a", "ns1"));
      await store.create({
        apiVersion: "networking.k8s.io/v1",
        kind: "NetworkPolicy",
        metadata: { name: "a", namespace: "ns1" },
        spec: {},
      });
      const last = await store.create(gnp("a"));
      const all = await store.list(NP);
      assert.deepEqual(
        all.items.map((r) => `${r.metadata.namespace}/${r.metadata.name}`),
        ["ns1/a", "ns1/b", "ns2/a"],
      );
      assert.equal(all.revision, Number(last.metadata.resourceVersion));
      const ns1 = await store.list(NP, { namespace: "ns1" });
      assert.deepEqual(
        ns1.items.map((r) => r.metadata.name),
        ["a", "b"],
      );
      assert.deepEqual(
        (await store.list(K8S_NP)).items.map((r) => r.apiVersion),
        ["networking.k8s.io/v1"],
      );
      assert.deepEqual((await store.list(POOL)).items, []);
    });

    it("updates on a matching resourceVersion, keeping uid and creationTimestamp", async () => {
      const created = await store.create(gnp("p", { order: 1 }));
      const edited: Resource = {
        ...gnp("p", { order: 2 }),
        metadata: {
          name: "p",
          resourceVersion: created.metadata.resourceVersion as string,
          uid: "someone-else",
          creationTimestamp: "1999-01-01T00:00:00Z",
        },
      };
      const updated = await store.update(edited);
      assert.deepEqual(updated.spec, { order: 2 });
      assert.equal(updated.metadata.uid, created.metadata.uid);
      assert.equal(updated.metadata.creationTimestamp, created.metadata.creationTimestamp);
      assert.ok(
        Number(updated.metadata.resourceVersion) > Number(created.metadata.resourceVersion),
      );
      assert.deepEqual(await store.get(GNP, "p"), updated);
    });

    it("refuses an update on a stale resourceVersion with Conflict", async () => {
      const created = await store.create(gnp("p", { order: 1 }));
      await store.update(gnp("p", { order: 2 }));
      const stale = {
        ...gnp("p", { order: 3 }),
        metadata: { name: "p", resourceVersion: created.metadata.resourceVersion as string },
      };
      await assert.rejects(
        store.update(stale),
        code("Conflict", /^globalnetworkpolicy "p" has changed/),
      );
      assert.deepEqual((await store.get(GNP, "p")).spec, { order: 2 });
    });

    it("updates unconditionally without a resourceVersion, and NotFound when absent", async () => {
      await store.create(gnp("p", { order: 1 }));
      assert.deepEqual((await store.update(gnp("p", { order: 9 }))).spec, { order: 9 });
      await assert.rejects(store.update(gnp("q")), code("NotFound"));
      await assert.rejects(
        store.update({ ...gnp("p"), metadata: { name: "p", resourceVersion: "abc" } }),
        code("Invalid", /resourceVersion: "abc"/),
      );
    });

    it("apply creates, then skips identical content, then updates changes", async () => {
      const first = await store.apply(gnp("p", { order: 1, selector: "all()" }, { a: "1" }));
      assert.deepEqual([first.created, first.unchanged], [true, false]);
      const revision = await h.backend.revision();

      const again = await store.apply({
        ...gnp("p", { selector: "all()", order: 1 }, { a: "1" }),
        metadata: { name: "p", labels: { a: "1" }, annotations: {}, resourceVersion: "1" },
      });
      assert.deepEqual([again.created, again.unchanged], [false, true]);
      assert.equal(await h.backend.revision(), revision, "nothing written");
      assert.deepEqual(again.resource, first.resource);

      const relabelled = await store.apply(gnp("p", { order: 1, selector: "all()" }, { a: "2" }));
      assert.deepEqual([relabelled.created, relabelled.unchanged], [false, false]);
      assert.equal(relabelled.resource.metadata.uid, first.resource.metadata.uid);
      assert.equal(relabelled.resource.metadata.creationTimestamp, "2024-05-01T12:00:00Z");
      assert.deepEqual((await store.get(GNP, "p")).metadata.labels, { a: "2" });

      const respecced = await store.apply(gnp("p", { order: 2 }, { a: "2" }));
      assert.equal(respecced.unchanged, false);
      assert.deepEqual((await store.get(GNP, "p")).spec, { order: 2 });
    });

    it("apply retries when another writer gets in between", async () => {
      await store.create(gnp("p", { order: 1 }));
      const key = store.key(GNP, "p");
      const racing = new RacingBackend(h.backend, 2, () => ({
        compare: [],
        success: [{ type: "put", key, value: JSON.stringify(gnp("p", { order: Math.random() })) }],
      }));
      const racingStore = new ResourceStore(racing, options());
      const result = await racingStore.apply(gnp("p", { order: 7 }));
      assert.deepEqual([result.created, result.unchanged], [false, false]);
      assert.deepEqual((await store.get(GNP, "p")).spec, { order: 7 });
    });

    it("apply gives up with Conflict when every attempt is raced", async () => {
      await store.create(gnp("p", { order: 1 }));
      const key = store.key(GNP, "p");
      const racing = new RacingBackend(h.backend, MAX_WRITE_ATTEMPTS, () => ({
        compare: [],
        success: [{ type: "put", key, value: JSON.stringify(gnp("p", { order: Math.random() })) }],
      }));
      await assert.rejects(
        new ResourceStore(racing, options()).apply(gnp("p", { order: 7 })),
        code("Conflict", /gave up after 5 attempts/),
      );
    });

    it("apply updates, keeping the rival's uid, when a rival created it first", async () => {
      const key = store.key(GNP, "p");
      const creator = new RacingBackend(h.backend, 1, () => ({
        compare: [],
        success: [
          {
            type: "put",
            key,
            value: JSON.stringify({ ...gnp("p"), metadata: { name: "p", uid: "rival" } }),
          },
        ],
      }));
      const res = await new ResourceStore(creator, options()).apply(gnp("p", { order: 3 }));
      assert.deepEqual([res.created, res.resource.metadata.uid], [false, "rival"]);
    });

    it("deletes and returns what was deleted", async () => {
      const created = await store.create(np("p", "ns"));
      const gone = await store.delete(NP, "p", { namespace: "ns" });
      assert.deepEqual(gone, created);
      await assert.rejects(store.get(NP, "p", { namespace: "ns" }), code("NotFound"));
      await assert.rejects(
        store.delete(NP, "p", { namespace: "ns" }),
        code("NotFound", /^networkpolicy "p" in namespace "ns" not found$/),
      );
    });

    it("deletes on a resourceVersion only when it matches", async () => {
      const created = await store.create(gnp("p", { order: 1 }));
      const updated = await store.update(gnp("p", { order: 2 }));
      await assert.rejects(
        store.delete(GNP, "p", { resourceVersion: created.metadata.resourceVersion as string }),
        code("Conflict"),
      );
      const gone = await store.delete(GNP, "p", {
        resourceVersion: updated.metadata.resourceVersion as string,
      });
      assert.deepEqual(gone.spec, { order: 2 });
      await assert.rejects(store.delete(GNP, "p", { resourceVersion: "0" }), code("NotFound"));
      await assert.rejects(
        store.delete(GNP, "p", { resourceVersion: updated.metadata.resourceVersion as string }),
        code("NotFound"),
      );
    });

    it("watches one kind or all kinds from a revision, with prev values", async () => {
      const { revision: from } = await store.list(GNP);
      const c = await store.create(gnp("p", { order: 1 }));
      const u = await store.update(gnp("p", { order: 2 }));
      const n = await store.create(np("q", "ns"));
      await store.delete(GNP, "p");
      await store.delete(NP, "q", { namespace: "ns" });
      // A foreign key under the prefix is ignored.
      await h.backend.txn({
        compare: [],
        success: [{ type: "put", key: `${h.prefix}/resources/gadgets/x`, value: "{}" }],
      });

      const show = (ev: ResourceEvent): string => {
        switch (ev.type) {
          case "put":
            return `put ${ev.resource.kind} ${ev.resource.metadata.name} rv=${ev.resource.metadata.resourceVersion} spec=${JSON.stringify(ev.resource.spec)}${ev.prev ? ` prev=${JSON.stringify(ev.prev.spec)}` : ""}`;
          case "delete":
            return `delete ${ev.kind.kind} ${ev.namespace ?? "-"}/${ev.name} @${ev.revision} prev=${JSON.stringify(ev.prev?.spec)}`;
          case "compacted":
            return `compacted ${ev.compactRevision}`;
        }
      };
      const rv = (r: Resource): string => r.metadata.resourceVersion as string;
      const deleteP = Number(rv(n)) + 1;
      const deleteQ = deleteP + 1;

      const onlyGnp = await take(store.watch({ kind: GNP, fromRevision: from }), 3);
      assert.deepEqual(onlyGnp.map(show), [
        `put GlobalNetworkPolicy p rv=${rv(c)} spec={"order":1}`,
        `put GlobalNetworkPolicy p rv=${rv(u)} spec={"order":2} prev={"order":1}`,
        `delete GlobalNetworkPolicy -/p @${deleteP} prev={"order":2}`,
      ]);
      const everything = await take(store.watch({ fromRevision: Number(rv(u)) }), 3);
      assert.deepEqual(everything.map(show), [
        `put NetworkPolicy q rv=${rv(n)} spec={"order":1}`,
        `delete GlobalNetworkPolicy -/p @${deleteP} prev={"order":2}`,
        `delete NetworkPolicy ns/q @${deleteQ} prev={"order":1}`,
      ]);
    });

    it("watch passes on a compacted event and ends", async () => {
      const { revision: from } = await store.list(GNP);
      await store.create(gnp("p"));
      const u = await store.update(gnp("p", { order: 3 }));
      await h.backend.compact(Number(u.metadata.resourceVersion));
      const events: ResourceEvent[] = [];
      for await (const ev of store.watch({ kind: GNP, fromRevision: from - 1 })) events.push(ev);
      assert.deepEqual(events, [
        { type: "compacted", compactRevision: Number(u.metadata.resourceVersion) },
      ]);
    });

    it("listAll reads every kind (or the kinds asked for) at one revision, skipping foreign keys", async () => {
      await store.create(gnp("g"));
      await store.create(np("n", "b"));
      await store.create(np("n", "a"));
      await store.create({ ...np("k", "a"), apiVersion: "networking.k8s.io/v1" });
      await store.create({
        apiVersion: "projectcalico.org/v3",
        kind: "IPPool",
        metadata: { name: "pool" },
        spec: {},
      });
      for (const key of [
        `${h.prefix}/resources/unknownkinds/x`,
        `${h.prefix}/resources/globalnetworkpolicies/too/deep`,
        `${h.prefix}/ipam/v2/handle/h`,
      ]) {
        await h.backend.txn({ compare: [], success: [{ type: "put", key, value: "{}" }] });
      }
      const now = await h.backend.revision();
      const names = (items: Resource[]) =>
        items.map((r) => `${r.kind}/${r.metadata.namespace ?? "-"}/${r.metadata.name}`);
      const cases: { name: string; kinds?: KindInfo[]; want: string[] }[] = [
        {
          name: "every kind",
          want: [
            "GlobalNetworkPolicy/-/g",
            "IPPool/-/pool",
            // "networkpolicies.networking.k8s.io/" sorts before "networkpolicies/".
            "NetworkPolicy/a/k",
            "NetworkPolicy/a/n",
            "NetworkPolicy/b/n",
          ],
        },
        {
          name: "two kinds",
          kinds: [POOL, NP],
          want: ["IPPool/-/pool", "NetworkPolicy/a/n", "NetworkPolicy/b/n"],
        },
        { name: "one kind", kinds: [K8S_NP], want: ["NetworkPolicy/a/k"] },
        { name: "no kinds", kinds: [], want: [] },
      ];
      for (const c of cases) {
        const { items, revision } = await store.listAll(c.kinds ? { kinds: c.kinds } : {});
        assert.deepEqual(names(items), c.want, c.name);
        assert.equal(revision, now, c.name);
        for (const item of items) assert.ok(Number(item.metadata.resourceVersion) > 0, c.name);
      }
    });

    it("watch ends cleanly on abort", async () => {
      const ac = new AbortController();
      const { revision } = await store.list(GNP);
      const seen: ResourceEvent[] = [];
      const done = (async () => {
        for await (const ev of store.watch({
          kind: GNP,
          fromRevision: revision,
          signal: ac.signal,
        })) {
          seen.push(ev);
          ac.abort();
        }
      })();
      await store.create(gnp("p"));
      await done;
      assert.equal(seen.length, 1);
    });
  });
}

describe("ResourceStore keys", () => {
  const store = new ResourceStore(new MemoryBackend());
  const cases: { name: string; key: string; want: string }[] = [
    {
      name: "a cluster kind",
      key: store.key(GNP, "p"),
      want: "/twill/v1/resources/globalnetworkpolicies/p",
    },
    {
      name: "a cluster kind ignores a namespace",
      key: store.key(POOL, "pool-1", "x"),
      want: "/twill/v1/resources/ippools/pool-1",
    },
    {
      name: "a namespaced kind",
      key: store.key(NP, "p", "ns"),
      want: "/twill/v1/resources/networkpolicies/ns/p",
    },
    {
      name: "a namespaced kind defaults to default",
      key: store.key(NP, "p"),
      want: "/twill/v1/resources/networkpolicies/default/p",
    },
    {
      name: "the Kubernetes NetworkPolicy",
      key: store.key(K8S_NP, "p", "ns"),
      want: "/twill/v1/resources/networkpolicies.networking.k8s.io/ns/p",
    },
    {
      name: "a custom prefix",
      key: new ResourceStore(new MemoryBackend(), { prefix: "/x/" }).key(GNP, "p"),
      want: "/x/resources/globalnetworkpolicies/p",
    },
  ];
  for (const c of cases) {
    it(`lays out keys for ${c.name}`, () => assert.equal(c.key, c.want));
  }
});

resourceStoreSuite("memory", async () => {
  const backend = new MemoryBackend();
  return { backend, prefix: "/twill/v1", cleanup: () => backend.close() };
});

resourceStoreSuite("etcd", async () => {
  const backend = new EtcdBackend({ endpoints: [etcd.endpoint] });
  return { backend, prefix: `/test-${randomUUID().slice(0, 8)}`, cleanup: () => backend.close() };
});

async function take<T>(iterable: AsyncIterable<T>, count: number): Promise<T[]> {
  const out: T[] = [];
  const it = iterable[Symbol.asyncIterator]();
  try {
    while (out.length < count) {
      const next = await Promise.race([
        it.next(),
        new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 5000).unref()),
      ]);
      if (next === "timeout" || next.done) break;
      out.push(next.value);
    }
  } finally {
    void it.return?.();
  }
  return out;
}
