// check and gc against the memory backend, with a clock the tests move.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Resource } from "../api/resource.js";
import { reportIsClean } from "./ipam-audit.js";
import { ipamDump, ipamWith, node, pool, workloadEndpoint } from "./ipam-testkit.js";
import { NODE, WORKLOAD_ENDPOINT } from "./ipam-policy.js";
import type { Ipam } from "./ipam.js";

const MIN = 60_000;
const T0 = Date.parse("2024-05-01T10:00:00Z");

async function fixture(resources: Resource[] = []) {
  let clock = T0;
  const f = await ipamWith([pool("p", "10.65.0.0/24", { blockSize: 28 }), ...resources], {
    now: () => clock,
  });
  return {
    ...f,
    advance: (ms: number) => {
      clock += ms;
      return clock;
    },
    at: () => clock,
  };
}

/** Allocates as the CNI plugin does, optionally writing the endpoint too. */
async function workload(
  ipam: Ipam,
  name: string,
  options: { host?: string; withEndpoint?: boolean; namespace?: string } = {},
): Promise<string> {
  const host = options.host ?? "host-1";
  const namespace = options.namespace ?? "default";
  const r = await ipam.autoAssign({
    host,
    handle: `net.${name}`,
    attributes: { namespace, pod: name, containerID: name, workloadEndpoint: name },
  });
  const ip = r.ipv4[0] as string;
  if (options.withEndpoint !== false) {
    await ipam.store.create(workloadEndpoint({ namespace, name, node: host, ips: [ip] }));
  }
  return ip;
}

describe("check", () => {
  test("a clean datastore gives a clean report", async () => {
    const { ipam } = await fixture([node("host-1")]);
    await workload(ipam, "a");
    await workload(ipam, "b");
    const report = await ipam.check();
    assert.ok(reportIsClean(report), JSON.stringify(report));
    assert.equal(report.summary.allocations, 2);
    assert.equal(report.summary.workloadEndpoints, 2);
  });

  test("an allocation whose endpoint is gone is leaked; one made for no workload is not", async () => {
    const { ipam } = await fixture([node("host-1")]);
    await workload(ipam, "kept");
    const leaked = await workload(ipam, "gone", { withEndpoint: false });
    await ipam.assignIP({ ip: "10.65.0.200", host: "host-1", handle: "operator" });
    const report = await ipam.check();
    assert.deepEqual(
      report.leakedAllocations.map((l) => [l.ip, l.handle, l.host]),
      [[leaked, "net.gone", "host-1"]],
    );
    assert.equal(report.summary.unmanaged, 1);
  });

  test("an endpoint listing an address IPAM did not give it is reported; one outside every pool is not", async () => {
    const { ipam, store } = await fixture([node("host-1")]);
    const a = await workload(ipam, "a");
    await store.create(workloadEndpoint({ name: "stray", node: "host-1", ips: ["10.65.0.99"] }));
    await store.create(workloadEndpoint({ name: "thief", node: "host-1", ips: [a] }));
    await store.create(workloadEndpoint({ name: "outside", node: "host-1", ips: ["192.168.9.9"] }));
    const report = await ipam.check();
    assert.deepEqual(
      report.endpointsWithoutAllocation.map((e) => [e.name, e.ip, e.reason]),
      [
        ["stray", "10.65.0.99", "not allocated"],
        ["thief", a, `allocated to endpoint "default/a" (handle "net.a")`],
      ],
    );
  });

  test("blocks whose host is gone, or that have no host, are reported", async () => {
    const { ipam } = await fixture([node("host-1")]);
    await workload(ipam, "a", { host: "host-1" });
    await workload(ipam, "b", { host: "only-endpoints" }); // known through its endpoint
    await workload(ipam, "c", { host: "gone", withEndpoint: false });
    await ipam.assignIP({ ip: "10.65.0.200", host: "x", handle: "h" });
    await ipam.releaseAffinity("10.65.0.192/28", { host: "x" });
    const report = await ipam.check();
    assert.deepEqual(report.blocksWithoutHost.map((b) => [b.host, b.allocations]).sort(), [
      [null, 1],
      ["gone", 1],
    ]);
  });

  test("records that disagree are reported, naming their keys", async () => {
    const { ipam, memory } = await fixture([node("host-1")]);
    await workload(ipam, "a");
    const dump = ipamDump(memory);
    const blockKey = Object.keys(dump).find((k) => k.includes("/blocks/")) as string;
    const block = JSON.parse(dump[blockKey] as string);
    const affinityKey = `/twill/v1/ipam/affinity/host-1/${block.cidr.replace("/", "-")}`;
    // Break three records behind IPAM's back.
    await memory.txn({
      compare: [],
      success: [
        {
          type: "put",
          key: "/twill/v1/ipam/handles/net.a",
          value: JSON.stringify({ handle: "net.a", blocks: { [block.cidr]: 2 } }),
        },
        { type: "delete", key: affinityKey },
        {
          type: "put",
          key: "/twill/v1/ipam/hosts/host-9",
          value: JSON.stringify({ host: "host-9", blocks: ["10.65.0.64/28"] }),
        },
        {
          type: "put",
          key: "/twill/v1/ipam/affinity/host-7/10.65.0.128-28",
          value: JSON.stringify({ host: "host-7", cidr: "10.65.0.128/28", state: "pending" }),
        },
      ],
    });
    const messages = (await ipam.check()).problems.map((p) => `${p.key}: ${p.message}`);
    assert.deepEqual(
      messages.sort(),
      [
        `${blockKey}: held by host "host-1" but "${affinityKey}" is missing`,
        `/twill/v1/ipam/affinity/host-7/10.65.0.128-28: affinity is "pending" (treated as absent)`,
        `/twill/v1/ipam/affinity/host-7/10.65.0.128-28: affinity of host "host-7" to a block that does not name it`,
        `/twill/v1/ipam/handles/net.a: counts 2 address(es) in block "${block.cidr}", which holds 1 for it`,
        `/twill/v1/ipam/hosts/host-9: lists block "10.65.0.64/28", which does not exist`,
      ].sort(),
    );
  });
});

describe("gc", () => {
  test("a dry run records the leak and releases nothing", async () => {
    const { ipam, memory } = await fixture([node("host-1")]);
    const ip = await workload(ipam, "gone", { withEndpoint: false });
    const r = await ipam.gc({ graceMs: 10 * MIN });
    assert.equal(r.dryRun, true);
    assert.deepEqual(
      r.leaks.map((l) => [l.ip, l.due]),
      [[ip, false]],
    );
    assert.equal(r.observationsRecorded, 1);
    assert.ok(ipamDump(memory)[`/twill/v1/ipam/leaks/${ip}`]);
    assert.ok(await ipam.getAllocation(ip));
  });

  test("a leak is released only once it has been seen for the grace period", async () => {
    const { ipam, memory, advance } = await fixture([node("host-1")]);
    await workload(ipam, "kept");
    const ip = await workload(ipam, "gone", { withEndpoint: false });
    const first = await ipam.gc({ graceMs: 10 * MIN, dryRun: false });
    assert.deepEqual(first.released, []);
    advance(5 * MIN);
    const early = await ipam.gc({ graceMs: 10 * MIN, dryRun: false });
    assert.deepEqual(early.released, []);
    assert.equal(early.leaks[0]?.leakedForMs, 5 * MIN);
    advance(5 * MIN);
    const dry = await ipam.gc({ graceMs: 10 * MIN });
    assert.equal(dry.leaks[0]?.due, true);
    assert.deepEqual(dry.released, []);
    const real = await ipam.gc({ graceMs: 10 * MIN, dryRun: false });
    assert.deepEqual(real.released, [{ ip, handle: "net.gone" }]);
    assert.equal(await ipam.getAllocation(ip), undefined);
    assert.equal(ipamDump(memory)[`/twill/v1/ipam/leaks/${ip}`], undefined);
    assert.ok(reportIsClean(await ipam.check()));
  });

  test("grace 0 releases on the first run", async () => {
    const { ipam } = await fixture([node("host-1")]);
    const ip = await workload(ipam, "gone", { withEndpoint: false });
    const r = await ipam.gc({ graceMs: 0, dryRun: false });
    assert.deepEqual(r.released, [{ ip, handle: "net.gone" }]);
  });

  test("an endpoint that comes back clears the observation", async () => {
    const { ipam, memory, advance, store } = await fixture([node("host-1")]);
    const ip = await workload(ipam, "late", { withEndpoint: false });
    await ipam.gc({ graceMs: 10 * MIN });
    await store.create(workloadEndpoint({ name: "late", node: "host-1", ips: [ip] }));
    advance(20 * MIN);
    const r = await ipam.gc({ graceMs: 10 * MIN, dryRun: false });
    assert.deepEqual(r.leaks, []);
    assert.equal(r.observationsCleared, 1);
    assert.deepEqual(ipamDump(memory)[`/twill/v1/ipam/leaks/${ip}`], undefined);
    assert.ok(await ipam.getAllocation(ip));
  });

  test("an address reused since it was seen leaked starts a new observation", async () => {
    const { ipam, advance } = await fixture([
      pool("tiny", "10.99.0.0/32", { blockSize: 32 }),
      node("host-1"),
    ]);
    const first = await ipam.autoAssign({
      host: "host-1",
      handle: "old",
      pools4: ["tiny"],
      attributes: { workloadEndpoint: "old" },
    });
    const ip = first.ipv4[0] as string;
    await ipam.gc({ graceMs: 10 * MIN });
    await ipam.releaseByHandle("old");
    await ipam.autoAssign({
      host: "host-1",
      handle: "new",
      pools4: ["tiny"],
      attributes: { workloadEndpoint: "new" },
    });
    advance(10 * MIN);
    const r = await ipam.gc({ graceMs: 10 * MIN, dryRun: false });
    assert.deepEqual(
      r.leaks.map((l) => [l.ip, l.handle, l.leakedForMs, l.due]),
      [[ip, "new", 0, false]],
    );
    assert.deepEqual(r.released, []);
  });

  test("blocks of a host that is gone lose their affinity once idle for the grace period", async () => {
    const { ipam, advance, store } = await fixture([node("host-1"), node("host-2")]);
    await workload(ipam, "a", { host: "host-2" });
    const empty = await workload(ipam, "b", { host: "host-2", withEndpoint: false });
    await ipam.releaseIPs([empty]);
    await store.delete(NODE, "host-2");
    // host-2 still has an endpoint: it is known, nothing happens.
    let r = await ipam.gc({ graceMs: 10 * MIN, dryRun: false });
    assert.deepEqual(r.blocks, []);
    await store.delete(WORKLOAD_ENDPOINT, "a", { namespace: "default" });
    r = await ipam.gc({ graceMs: 10 * MIN, dryRun: false });
    assert.deepEqual(
      r.blocks.map((b) => [b.host, b.reason, b.due, b.outcome]),
      [["host-2", "hostGone", false, undefined]],
    );
    advance(11 * MIN);
    r = await ipam.gc({ graceMs: 10 * MIN, dryRun: false });
    assert.deepEqual(
      r.blocks.map((b) => [b.host, b.reason, b.due, b.outcome]),
      [["host-2", "hostGone", true, "unaffined"]],
    );
    assert.equal(r.released.length, 1, "the leaked address of the gone endpoint goes too");
    assert.deepEqual(await ipam.listBlocks(), [], "and the emptied block with no host is deleted");
    assert.ok(reportIsClean(await ipam.check()));
  });

  test("spare empty blocks of a live host go back to the pool; its latest one stays", async () => {
    const { ipam, advance } = await fixture([node("host-1")]);
    const ips: string[] = [];
    for (let i = 0; i < 40; i++) ips.push(await workload(ipam, `w${i}`, { withEndpoint: false }));
    assert.equal((await ipam.listBlocks()).length, 3);
    await ipam.releaseIPs(ips);
    advance(11 * MIN);
    const dry = await ipam.gc({ graceMs: 10 * MIN });
    assert.equal(dry.blocks.filter((b) => b.due).length, 2);
    const r = await ipam.gc({ graceMs: 10 * MIN, dryRun: false });
    assert.deepEqual(
      r.blocks.map((b) => b.outcome),
      ["deleted", "deleted"],
    );
    const left = await ipam.listBlocks();
    assert.equal(left.length, 1);
    assert.equal(left[0]?.block.affinity, "host-1");
    assert.ok(reportIsClean(await ipam.check()));
  });
});
