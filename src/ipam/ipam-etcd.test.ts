// IPAM against a real etcd: concurrent allocations from several hosts race
// on real transactions.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { EtcdBackend } from "../datastore/etcd-backend.js";
import { startEtcd } from "../datastore/etcd-server.js";
import type { EtcdServer } from "../datastore/etcd-server.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { reportIsClean } from "./ipam-audit.js";
import { ipamConfig, node, pool } from "./ipam-testkit.js";
import { Ipam } from "./ipam.js";

let etcd: EtcdServer;
let backend: EtcdBackend;
before(async () => {
  etcd = await startEtcd();
  // A generous deadline: the test must not fail because the machine is busy.
  backend = new EtcdBackend({ endpoints: [etcd.endpoint], dialTimeoutMs: 30_000 });
});
after(async () => {
  await backend?.close();
  await etcd?.stop();
});

describe("IPAM on etcd", () => {
  test("200 concurrent allocations across 4 hosts: no address twice, clean after releasing all", async () => {
    const store = new ResourceStore(backend);
    const hosts = ["host-1", "host-2", "host-3", "host-4"];
    for (const r of [
      pool("v4", "10.65.0.0/22", { blockSize: 28 }),
      pool("v6", "fd00:65::/116", { blockSize: 124 }),
      ipamConfig({ maxBlocksPerHost: 0 }),
      ...hosts.map((h) => node(h)),
    ]) {
      await store.create(r);
    }
    // 50 allocations in flight per host all race for that host's newest
    // block; on a busy machine that can take more than the default 30
    // retries. This test is about correctness under races, so it allows
    // more (Calico allows 100); ipam.test.ts checks the bound itself.
    const ipam = new Ipam(store, { maxRetries: 100 });
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        ipam.autoAssign({
          host: hosts[i % hosts.length] as string,
          handle: `net.c${i}`,
          attributes: { namespace: "default", pod: `p${i}` },
          num6: i % 2 === 0 ? 1 : 0,
        }),
      ),
    );
    const v4 = results.flatMap((r) => r.ipv4);
    const v6 = results.flatMap((r) => r.ipv6);
    assert.equal(v4.length, 200);
    assert.equal(new Set(v4).size, 200, "no IPv4 address handed out twice");
    assert.equal(v6.length, 100);
    assert.equal(new Set(v6).size, 100, "no IPv6 address handed out twice");
    const during = await ipam.check();
    assert.deepEqual(during.problems, []);
    assert.equal(during.summary.allocations, 300);
    // Each host's addresses come from its own blocks.
    const blockHost = new Map(
      (await ipam.listBlocks()).map((b) => [b.block.cidr, b.block.affinity]),
    );
    for (const [i, r] of results.entries()) {
      const a = await ipam.getAllocation(r.ipv4[0] as string);
      assert.equal(blockHost.get(a?.block as string), hosts[i % hosts.length]);
    }
    // Release some by handle, concurrently, and the rest by address in one call.
    const byHandle = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ipam.releaseByHandle(`net.c${i}`)),
    );
    const rest = results.slice(20).flatMap((r) => [...r.ipv4, ...r.ipv6]);
    const byAddress = await ipam.releaseIPs(rest);
    assert.equal(byHandle.flatMap((r) => r.released).length + byAddress.released.length, 300);
    const report = await ipam.check();
    assert.ok(reportIsClean(report), JSON.stringify(report, null, 2));
    assert.equal(report.summary.allocations, 0);
    const usage = await ipam.usage();
    assert.ok(usage.pools.every((p) => p.inUse === 0));
  });
});
