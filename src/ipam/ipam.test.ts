// Ipam against the memory backend: affinity, claims, borrowing and its
// limits, pools and reservations, dual stack, release semantics, races and
// injected failures.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isErrorCode } from "../util/errors.js";
import { reportIsClean } from "./ipam-audit.js";
import {
  FlakyBackend,
  ipamConfig,
  ipamDump,
  ipamWith,
  node,
  pool,
  reservation,
} from "./ipam-testkit.js";
import { IP_POOL } from "./ipam-policy.js";
import type { Backend } from "../datastore/backend.js";
import { ResourceStore } from "../datastore/resource-store.js";
import type { Ipam } from "./ipam.js";

async function assign(ipam: Ipam, host: string, handle: string, extra: object = {}) {
  const r = await ipam.autoAssign({ host, handle, attributes: { node: host }, ...extra });
  return r;
}

async function blockHosts(ipam: Ipam): Promise<Record<string, string | null>> {
  const out: Record<string, string | null> = {};
  for (const { block } of await ipam.listBlocks()) out[block.cidr] = block.affinity;
  return out;
}

describe("autoAssign: affinity and claims", () => {
  test("the first address claims a block for the host, with its affinity, host list and handle", async () => {
    const { ipam, memory } = await ipamWith([
      pool("p4", "10.65.0.0/24", { blockSize: 28 }),
      node("host-1"),
    ]);
    const r = await assign(ipam, "host-1", "net.c1");
    assert.deepEqual(r.warnings, []);
    assert.equal(r.ipv4.length, 1);
    assert.deepEqual(r.ipv6, []);
    const alloc = await ipam.getAllocation(r.ipv4[0] as string);
    assert.ok(alloc);
    assert.equal(alloc.handle, "net.c1");
    assert.equal(alloc.host, "host-1");
    assert.equal(alloc.attributes["node"], "host-1");
    const keys = Object.keys(ipamDump(memory));
    const block = alloc.block.replace("/", "-");
    assert.deepEqual(keys.sort(), [
      `/twill/v1/ipam/affinity/host-1/${block}`,
      `/twill/v1/ipam/blocks/${block}`,
      "/twill/v1/ipam/handles/net.c1",
      "/twill/v1/ipam/hosts/host-1",
    ]);
    assert.ok(reportIsClean(await ipam.check()));
  });

  test("a host takes addresses from its own block before claiming another", async () => {
    const { ipam } = await ipamWith([pool("p4", "10.65.0.0/24", { blockSize: 28 })]);
    const ips = [];
    for (let i = 0; i < 17; i++) ips.push((await assign(ipam, "host-1", `h${i}`)).ipv4[0]);
    const blocks = await blockHosts(ipam);
    assert.equal(Object.keys(blocks).length, 2, "16 addresses per block, so 17 need two");
    assert.ok(Object.values(blocks).every((h) => h === "host-1"));
    assert.equal(new Set(ips).size, 17);
  });

  test("two hosts get blocks of their own", async () => {
    const { ipam } = await ipamWith([pool("p4", "10.65.0.0/24", { blockSize: 28 })]);
    const a = await assign(ipam, "host-1", "a");
    const b = await assign(ipam, "host-2", "b");
    const [ba, bb] = [
      await ipam.getAllocation(a.ipv4[0] as string),
      await ipam.getAllocation(b.ipv4[0] as string),
    ];
    assert.notEqual(ba?.block, bb?.block);
    assert.equal(ba?.host, "host-1");
    assert.equal(bb?.host, "host-2");
  });

  test("a missing Node is matched as having no labels, and said so", async () => {
    const { ipam } = await ipamWith([
      pool("rack-a", "10.65.0.0/24", { nodeSelector: "rack == 'a'" }),
      pool("any", "10.66.0.0/24"),
    ]);
    const r = await assign(ipam, "ghost", "h");
    assert.match(r.ipv4[0] as string, /^10\.66\./);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0] as string, /node "ghost" has no Node resource/);
  });

  const poolChoice: {
    name: string;
    pools: ReturnType<typeof pool>[];
    labels: Record<string, string>;
    request?: object;
    want: RegExp | string;
  }[] = [
    {
      name: "a pool whose nodeSelector matches the host's labels",
      pools: [
        pool("a", "10.1.0.0/24", { nodeSelector: "rack == 'a'" }),
        pool("b", "10.2.0.0/24", { nodeSelector: "rack == 'b'" }),
      ],
      labels: { rack: "b" },
      want: /^10\.2\./,
    },
    {
      name: "not a disabled pool",
      pools: [pool("off", "10.1.0.0/24", { disabled: true }), pool("on", "10.2.0.0/24")],
      labels: {},
      want: /^10\.2\./,
    },
    {
      name: "not a LoadBalancer pool",
      pools: [
        pool("lb", "10.1.0.0/24", { allowedUses: ["LoadBalancer"] }),
        pool("wl", "10.2.0.0/24"),
      ],
      labels: {},
      want: /^10\.2\./,
    },
    {
      name: "not a Manual pool unless named",
      pools: [
        pool("manual", "10.1.0.0/24", { assignmentMode: "Manual" }),
        pool("auto", "10.2.0.0/24"),
      ],
      labels: {},
      want: /^10\.2\./,
    },
    {
      name: "a Manual pool when named",
      pools: [
        pool("manual", "10.1.0.0/24", { assignmentMode: "Manual" }),
        pool("auto", "10.2.0.0/24"),
      ],
      labels: {},
      request: { pools4: ["manual"] },
      want: /^10\.1\./,
    },
    {
      name: "a pool named by its CIDR",
      pools: [pool("x", "10.1.0.0/24"), pool("y", "10.2.0.0/24")],
      labels: {},
      request: { pools4: ["10.2.0.0/24"] },
      want: /^10\.2\./,
    },
    {
      name: "Exhausted when no pool selects the host",
      pools: [pool("a", "10.1.0.0/24", { nodeSelector: "rack == 'a'" })],
      labels: { rack: "b" },
      want: "Exhausted",
    },
    {
      name: "NotFound for a named pool that does not exist",
      pools: [pool("a", "10.1.0.0/24")],
      labels: {},
      request: { pools4: ["nope"] },
      want: "NotFound",
    },
    {
      name: "Invalid for a named pool that is disabled",
      pools: [pool("a", "10.1.0.0/24", { disabled: true })],
      labels: {},
      request: { pools4: ["a"] },
      want: "Invalid",
    },
  ];
  for (const c of poolChoice) {
    test(`pool choice: ${c.name}`, async () => {
      const { ipam } = await ipamWith([...c.pools, node("host-1", c.labels)]);
      const run = assign(ipam, "host-1", "h", c.request);
      if (typeof c.want === "string") {
        await assert.rejects(run, (err: unknown) => isErrorCode(err, c.want as "Exhausted"));
      } else {
        assert.match((await run).ipv4[0] as string, c.want);
      }
    });
  }

  test("dual stack: one IPv4 and one IPv6 address in one transaction", async () => {
    const { ipam, memory } = await ipamWith([
      pool("v4", "10.65.0.0/24"),
      pool("v6", "fd00:65::/120"),
    ]);
    const before = await memory.revision();
    const r = await ipam.autoAssign({ host: "host-1", handle: "h", num4: 1, num6: 1 });
    assert.equal(await memory.revision(), before + 1);
    assert.match(r.ipv4[0] as string, /^10\.65\.0\./);
    assert.match(r.ipv6[0] as string, /^fd00:65::/);
    const handle = JSON.parse(ipamDump(memory)["/twill/v1/ipam/handles/h"] as string);
    assert.equal(Object.keys(handle.blocks).length, 2);
    const released = await ipam.releaseByHandle("h");
    assert.equal(released.released.length, 2);
  });

  const autoFamilies = [
    { pools: ["10.65.0.0/24", "fd00:65::/120"], want: [1, 1] },
    { pools: ["10.65.0.0/24"], want: [1, 0] },
    { pools: ["fd00:65::/120"], want: [0, 1] },
  ];
  for (const c of autoFamilies) {
    test(`"auto" families with pools ${c.pools.join(", ")}: ${c.want.join(" + ")} addresses`, async () => {
      const { ipam } = await ipamWith(c.pools.map((cidr, i) => pool(`p${i}`, cidr)));
      const r = await ipam.autoAssign({ host: "h", handle: "x", num4: "auto", num6: "auto" });
      assert.deepEqual([r.ipv4.length, r.ipv6.length], c.want);
    });
  }

  test('"auto" with no pool of either family is Exhausted', async () => {
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/24", { disabled: true })]);
    await assert.rejects(
      ipam.autoAssign({ host: "h", handle: "x", num4: "auto", num6: "auto" }),
      (err: unknown) =>
        isErrorCode(err, "Exhausted") && /no IPv4 pool.*no IPv6 pool/.test(err.message),
    );
  });

  test("dual stack with no IPv6 pool is Exhausted and allocates nothing", async () => {
    const { ipam, memory } = await ipamWith([pool("v4", "10.65.0.0/24")]);
    await assert.rejects(
      ipam.autoAssign({ host: "host-1", handle: "h", num6: 1 }),
      (err: unknown) => isErrorCode(err, "Exhausted") && /no IPv6 pool/.test(err.message),
    );
    assert.deepEqual(ipamDump(memory), {});
  });

  test("asking for nothing allocates nothing", async () => {
    const { ipam, memory } = await ipamWith([pool("v4", "10.65.0.0/24")]);
    assert.deepEqual(await ipam.autoAssign({ host: "h", handle: "x", num4: 0 }), {
      ipv4: [],
      ipv6: [],
      warnings: [],
    });
    assert.deepEqual(ipamDump(memory), {});
  });
});

describe("autoAssign: limits, borrowing, reservations", () => {
  // 10.65.0.0/28 in /30 blocks: four blocks of four addresses.
  const small = pool("small", "10.65.0.0/28", { blockSize: 30 });

  test("at maxBlocksPerHost a host borrows from another host's block", async () => {
    const { ipam } = await ipamWith([small, ipamConfig({ maxBlocksPerHost: 1 })]);
    await assign(ipam, "host-2", "other");
    for (let i = 0; i < 4; i++) await assign(ipam, "host-1", `own${i}`);
    const borrowed = await assign(ipam, "host-1", "borrowed");
    const a = await ipam.getAllocation(borrowed.ipv4[0] as string);
    assert.equal(a?.host, "host-2", "the address comes from host-2's block");
    assert.equal(a?.attributes["node"], "host-1");
    assert.equal(Object.values(await blockHosts(ipam)).filter((h) => h === "host-1").length, 1);
  });

  test("with strictAffinity a host at its limit is Exhausted instead of borrowing", async () => {
    const { ipam } = await ipamWith([
      small,
      ipamConfig({ maxBlocksPerHost: 1, strictAffinity: true }),
    ]);
    await assign(ipam, "host-2", "other");
    for (let i = 0; i < 4; i++) await assign(ipam, "host-1", `own${i}`);
    await assert.rejects(
      assign(ipam, "host-1", "one-too-many"),
      (err: unknown) =>
        isErrorCode(err, "Exhausted") &&
        /maxBlocksPerHost is 1/.test(err.message) &&
        /strictAffinity forbids borrowing/.test(err.message),
    );
  });

  test("when no block is left, a host borrows; with strictAffinity it cannot", async () => {
    for (const strictAffinity of [false, true]) {
      const { ipam } = await ipamWith([small, ipamConfig({ strictAffinity })]);
      for (let i = 0; i < 3; i++) await assign(ipam, `other-${i}`, `o${i}`);
      for (let i = 0; i < 4; i++) await assign(ipam, "host-1", `own${i}`);
      const run = assign(ipam, "host-1", "fifth");
      if (strictAffinity) {
        await assert.rejects(
          run,
          (err: unknown) => isErrorCode(err, "Exhausted") && /no unclaimed block/.test(err.message),
        );
      } else {
        const a = await ipam.getAllocation((await run).ipv4[0] as string);
        assert.match(a?.host ?? "", /^other-/);
      }
    }
  });

  test("autoAllocateBlocks false: only blocks already held, then borrowing", async () => {
    const { ipam } = await ipamWith([small, ipamConfig({ autoAllocateBlocks: false })]);
    await assert.rejects(
      assign(ipam, "host-1", "h"),
      (err: unknown) =>
        isErrorCode(err, "Exhausted") && /autoAllocateBlocks is false/.test(err.message),
    );
  });

  test("a full pool is Exhausted, and every address was handed out exactly once", async () => {
    const { ipam } = await ipamWith([small]);
    const ips = new Set<string>();
    for (let i = 0; i < 16; i++)
      ips.add((await assign(ipam, `host-${i % 3}`, `h${i}`)).ipv4[0] as string);
    assert.equal(ips.size, 16);
    assert.ok(ips.has("10.65.0.0") && ips.has("10.65.0.15"), "first and last address too");
    await assert.rejects(assign(ipam, "host-0", "h16"), (err: unknown) =>
      isErrorCode(err, "Exhausted"),
    );
  });

  test("reserved addresses are never handed out, and fully reserved blocks never claimed", async () => {
    const { ipam } = await ipamWith([
      small,
      reservation("gw", ["10.65.0.0/30", "10.65.0.5"]),
      reservation("more", ["10.65.0.14"]),
    ]);
    const ips = new Set<string>();
    // 16 addresses, 6 of them reserved.
    for (let i = 0; i < 10; i++)
      ips.add((await assign(ipam, `host-${i % 2}`, `h${i}`)).ipv4[0] as string);
    for (const r of [
      "10.65.0.0",
      "10.65.0.1",
      "10.65.0.2",
      "10.65.0.3",
      "10.65.0.5",
      "10.65.0.14",
    ]) {
      assert.ok(!ips.has(r), `${r} is reserved`);
    }
    assert.ok(!Object.keys(await blockHosts(ipam)).includes("10.65.0.0/30"));
    await assert.rejects(assign(ipam, "host-0", "h10"), (err: unknown) =>
      isErrorCode(err, "Exhausted"),
    );
  });

  test("a block with no host is not claimed over: the claim learns it exists", async () => {
    // Four /28 blocks, each holding one address and no host.
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/26", { blockSize: 28 })]);
    for (const base of [0, 16, 32, 48]) {
      await ipam.assignIP({ ip: `10.65.0.${base + 5}`, host: "old", handle: `old${base}` });
      await ipam.releaseAffinity(`10.65.0.${base}/28`, { host: "old" });
    }
    const r = await assign(ipam, "host-1", "new");
    assert.equal(ipam.stats.casRetries, 4, "one lost claim per existing block");
    const a = await ipam.getAllocation(r.ipv4[0] as string);
    assert.equal(a?.host, null, "then it borrows from one of them");
    assert.deepEqual((await ipam.check()).problems, []);
  });

  test("a block of a disabled pool is not used any more", async () => {
    const { ipam, store } = await ipamWith([pool("a", "10.1.0.0/24"), pool("b", "10.2.0.0/24")]);
    const first = await ipam.autoAssign({ host: "h", handle: "1", pools4: ["a"] });
    assert.match(first.ipv4[0] as string, /^10\.1\./);
    const a = await store.get(IP_POOL, "a");
    await store.update({ ...a, spec: { ...(a.spec as object), disabled: true } });
    const second = await assign(ipam, "h", "2");
    assert.match(second.ipv4[0] as string, /^10\.2\./);
  });
});

describe("assignIP", () => {
  test("a given address is assigned and its block claimed for the host", async () => {
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/24")]);
    const r = await ipam.assignIP({ ip: "10.65.0.77", host: "host-1", handle: "static" });
    assert.deepEqual(r, { ip: "10.65.0.77", block: "10.65.0.64/26", warnings: [] });
    assert.equal((await ipam.getAllocation("10.65.0.77"))?.host, "host-1");
    // The host's next auto-assigned address comes from that block.
    assert.match(
      (await assign(ipam, "host-1", "auto")).ipv4[0] as string,
      /^10\.65\.0\.(6[4-9]|[7-9]\d|1[01]\d|12[0-7])$/,
    );
  });

  const refusals: { name: string; setup: object[]; ip: string; code: string; message: RegExp }[] = [
    {
      name: "an address in no pool",
      setup: [],
      ip: "10.99.0.1",
      code: "Invalid",
      message: /in no IP pool/,
    },
    {
      name: "an address of a disabled pool",
      setup: [pool("off", "10.99.0.0/24", { disabled: true })],
      ip: "10.99.0.1",
      code: "Invalid",
      message: /pool "off" is disabled/,
    },
    {
      name: "not an address",
      setup: [],
      ip: "10.99.0",
      code: "Invalid",
      message: /not an IP address/,
    },
  ];
  for (const c of refusals) {
    test(`refused: ${c.name}`, async () => {
      const { ipam } = await ipamWith([pool("p", "10.65.0.0/24"), ...(c.setup as never[])]);
      await assert.rejects(
        ipam.assignIP({ ip: c.ip, host: "h", handle: "x" }),
        (err: unknown) => isErrorCode(err, c.code as "Invalid") && c.message.test(err.message),
      );
    });
  }

  test("an address in use is AlreadyExists, naming its handle", async () => {
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/24")]);
    await ipam.assignIP({ ip: "10.65.0.5", host: "h", handle: "first" });
    await assert.rejects(
      ipam.assignIP({ ip: "10.65.0.5", host: "h", handle: "second" }),
      (err: unknown) => isErrorCode(err, "AlreadyExists") && /handle "first"/.test(err.message),
    );
  });

  test("a reserved address may be asked for by name (as in Calico)", async () => {
    const { ipam } = await ipamWith([
      pool("p", "10.65.0.0/24"),
      reservation("vip", ["10.65.0.10"]),
    ]);
    await ipam.assignIP({ ip: "10.65.0.10", host: "h", handle: "vip" });
    assert.equal((await ipam.describeAddress("10.65.0.10")).reserved, true);
  });

  test("with strictAffinity, an address in another host's block is refused", async () => {
    const { ipam } = await ipamWith([
      pool("p", "10.65.0.0/24"),
      ipamConfig({ strictAffinity: true }),
    ]);
    await ipam.assignIP({ ip: "10.65.0.5", host: "host-1", handle: "a" });
    await assert.rejects(
      ipam.assignIP({ ip: "10.65.0.6", host: "host-2", handle: "b" }),
      (err: unknown) => isErrorCode(err, "Invalid") && /belongs to host "host-1"/.test(err.message),
    );
  });
});

describe("release", () => {
  test("releasing by address, then again, is harmless", async () => {
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/24"), node("h")]);
    const ip = (await assign(ipam, "h", "x")).ipv4[0] as string;
    const first = await ipam.releaseIPs([ip]);
    assert.deepEqual(first, { released: [{ ip, handle: "x" }], notAllocated: [], mismatched: [] });
    const second = await ipam.releaseIPs([ip]);
    assert.deepEqual(second, { released: [], notAllocated: [ip], mismatched: [] });
    assert.equal(await ipam.getAllocation(ip), undefined);
    assert.ok(reportIsClean(await ipam.check()));
  });

  test("releasing by handle twice is harmless", async () => {
    const { ipam, memory } = await ipamWith([pool("p", "10.65.0.0/24")]);
    const ip = (await assign(ipam, "h", "x")).ipv4[0] as string;
    assert.deepEqual((await ipam.releaseByHandle("x")).released, [{ ip, handle: "x" }]);
    assert.deepEqual((await ipam.releaseByHandle("x")).released, []);
    assert.equal(ipamDump(memory)["/twill/v1/ipam/handles/x"], undefined);
  });

  test("a release never frees an address since given to someone else", async () => {
    // One /32 block: the only address goes to A, is released, then goes to B.
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/32", { blockSize: 32 })]);
    const ip = (await assign(ipam, "h", "A")).ipv4[0] as string;
    const a = await ipam.getAllocation(ip);
    await ipam.releaseByHandle("A");
    await assign(ipam, "h", "B");
    for (const stale of [
      ipam.releaseIPs([ip], { handle: "A" }),
      ipam.releaseAllocations([{ ip, sequence: a?.sequence as number }]),
      ipam.releaseByHandle("A"),
    ]) {
      const r = await stale;
      assert.deepEqual(r.released, []);
    }
    assert.equal((await ipam.getAllocation(ip))?.handle, "B");
    const mismatch = await ipam.releaseIPs([ip], { handle: "A" });
    assert.match(mismatch.mismatched[0]?.reason ?? "", /held by handle "B"/);
  });

  test("a freed address is the last to be handed out again", async () => {
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/24", { blockSize: 29 })]);
    const first = (await assign(ipam, "h", "a")).ipv4[0] as string;
    await ipam.releaseIPs([first]);
    const next = [];
    for (let i = 0; i < 8; i++) next.push((await assign(ipam, "h", `n${i}`)).ipv4[0]);
    assert.equal(next[7], first);
  });

  test("the release that empties a block with no host deletes it; a host's empty block stays", async () => {
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/24"), node("host-1")]);
    const own = (await assign(ipam, "host-1", "own")).ipv4[0] as string;
    await ipam.releaseIPs([own]);
    assert.deepEqual(Object.values(await blockHosts(ipam)), ["host-1"]);
    await ipam.assignIP({ ip: "10.65.0.200", host: "host-2", handle: "x" });
    const block = (await ipam.getAllocation("10.65.0.200"))?.block as string;
    assert.equal(await ipam.releaseAffinity(block, { host: "host-2" }), "unaffined");
    assert.equal((await blockHosts(ipam))[block], null);
    await ipam.releaseIPs(["10.65.0.200"]);
    assert.equal((await blockHosts(ipam))[block], undefined);
    assert.ok(reportIsClean(await ipam.check()));
  });

  test("releasing many addresses across blocks keeps every count right", async () => {
    const { ipam } = await ipamWith([
      pool("p", "10.65.0.0/22", { blockSize: 28 }),
      ipamConfig({ maxBlocksPerHost: 0 }),
      node("host-0"),
      node("host-1"),
    ]);
    const ips: string[] = [];
    for (let i = 0; i < 130; i++)
      ips.push((await assign(ipam, `host-${i % 2}`, `h${i % 7}`)).ipv4[0] as string);
    const r = await ipam.releaseIPs(ips);
    assert.equal(r.released.length, 130);
    assert.ok(reportIsClean(await ipam.check()));
    assert.equal((await ipam.usage()).pools[0]?.inUse, 0);
  });
});

describe("concurrency and failures", () => {
  test("many concurrent autoAssigns from several hosts never hand out an address twice", async () => {
    const { ipam } = await ipamWith(
      [pool("p", "10.65.0.0/23", { blockSize: 28 }), ipamConfig({ maxBlocksPerHost: 0 })],
      { maxRetries: 200 },
    );
    const runs = [];
    for (let i = 0; i < 200; i++) runs.push(assign(ipam, `host-${i % 5}`, `h${i}`));
    const ips = (await Promise.all(runs)).map((r) => r.ipv4[0]);
    assert.equal(new Set(ips).size, 200);
    assert.ok(ipam.stats.casRetries > 0, "the hosts really raced");
    const report = await ipam.check();
    assert.deepEqual(report.problems, []);
    for (const { block } of await ipam.listBlocks()) {
      for (const a of Object.values(block.allocations))
        assert.equal(block.affinity !== null, true, a.handle);
    }
  });

  test("hosts racing for the last blocks: each block is claimed once", async () => {
    const { ipam } = await ipamWith(
      [pool("p", "10.65.0.0/28", { blockSize: 30 }), ipamConfig({ strictAffinity: true })],
      {
        maxRetries: 50,
      },
    );
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => assign(ipam, `host-${i}`, `h${i}`)),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    assert.equal(ok.length, 4, "four blocks, four hosts get one");
    for (const r of results) {
      if (r.status === "rejected") assert.ok(isErrorCode(r.reason, "Exhausted"), String(r.reason));
    }
    assert.deepEqual((await ipam.check()).problems, []);
  });

  test("a lost race is retried a bounded number of times, with growing jittered pauses", async () => {
    const sleeps: number[] = [];
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/24")], {
      maxRetries: 4,
      random: () => 0.999,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
      wrap: (inner) => ({
        ...bind(inner),
        // Every write transaction loses its compare.
        txn: (req) =>
          req.success.some((op) => op.type !== "get")
            ? inner.txn({ ...req, compare: [{ key: "x", target: "value", equals: "never" }] })
            : inner.txn(req),
      }),
    });
    await assert.rejects(
      assign(ipam, "h", "x"),
      (err: unknown) =>
        isErrorCode(err, "Conflict") && /gave up after 5 attempts/.test(err.message),
    );
    assert.deepEqual(sleeps, [7, 15, 31, 63]);
    assert.equal(ipam.stats.casRetries, 5);
  });

  const poolChanges = [
    {
      name: "a pool relabelled while a block is claimed: the claim reads it again and wins",
      disable: false,
    },
    { name: "a pool disabled while a block is claimed: no block of it is claimed", disable: true },
  ];
  for (const c of poolChanges) {
    test(c.name, async () => {
      let changed = false;
      const { ipam } = await ipamWith([pool("p", "10.65.0.0/24"), node("h")], {
        wrap: (inner) => ({
          ...bind(inner),
          txn: async (req) => {
            if (!changed && req.success.some((op) => op.type === "put")) {
              changed = true;
              const other = new ResourceStore(inner);
              const p = await other.get(IP_POOL, "p");
              const spec = { ...(p.spec as object), disabled: c.disable };
              await other.update({ ...p, metadata: { ...p.metadata, labels: { x: "y" } }, spec });
            }
            return inner.txn(req);
          },
        }),
      });
      const run = assign(ipam, "h", "x");
      if (c.disable) {
        await assert.rejects(run, (err: unknown) => isErrorCode(err, "Exhausted"));
        assert.deepEqual(await ipam.listBlocks(), []);
      } else {
        assert.match((await run).ipv4[0] as string, /^10\.65\.0\./);
        assert.equal(ipam.stats.casRetries, 1);
      }
    });
  }

  test("an aborted request stops before it writes", async () => {
    const { ipam, memory } = await ipamWith([pool("p", "10.65.0.0/24")]);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(
      ipam.autoAssign({ host: "h", handle: "x", signal: ac.signal }),
      (err: unknown) => isErrorCode(err, "Aborted"),
    );
    assert.deepEqual(ipamDump(memory), {});
  });

  test("an injected failure at any call leaves all or nothing of a dual-stack claim", async () => {
    const resources = [pool("v4", "10.65.0.0/24"), pool("v6", "fd00::/120"), node("host-1")];
    // Count the calls of a clean run, then fail each one in turn, before and after it acts.
    const probe = await ipamWith(resources, { wrap: (b) => new FlakyBackend(b) });
    const flaky = probe.ipam.store.backend as FlakyBackend;
    await probe.ipam.autoAssign({ host: "host-1", handle: "h", num6: 1 });
    const calls = flaky.calls;
    assert.ok(calls >= 5);
    for (const mode of ["before", "after"] as const) {
      for (let failAt = 1; failAt <= calls; failAt++) {
        const f = await ipamWith(resources, {
          wrap: (b) => {
            const w = new FlakyBackend(b);
            w.failAt = failAt;
            w.mode = mode;
            return w;
          },
        });
        const outcome = await f.ipam.autoAssign({ host: "host-1", handle: "h", num6: 1 }).then(
          () => "ok",
          (err: unknown) => {
            assert.ok(isErrorCode(err, "Unavailable"), String(err));
            return "failed";
          },
        );
        const dump = ipamDump(f.memory);
        const keys = Object.keys(dump);
        // Either nothing at all, or the complete claim: 2 blocks, 2 affinities, host, handle.
        assert.ok(
          keys.length === 0 || keys.length === 6,
          `${mode} call ${failAt}: ${keys.join(", ")}`,
        );
        if (outcome === "ok") assert.equal(keys.length, 6);
        assert.deepEqual((await f.ipam.check()).problems, [], `${mode} call ${failAt}`);
        // A retry by the caller (as the CNI runtime does) then succeeds.
        await f.ipam.autoAssign({ host: "host-1", handle: "h2", num6: 1 });
      }
    }
  });

  test("an injected failure during a release leaves the block and handle consistent", async () => {
    const resources = [pool("v4", "10.65.0.0/24")];
    for (let failAt = 1; failAt <= 4; failAt++) {
      let flaky: FlakyBackend | undefined;
      const f = await ipamWith(resources, {
        wrap: (b) => {
          flaky = new FlakyBackend(b);
          return flaky;
        },
      });
      const ips = (await f.ipam.autoAssign({ host: "h", handle: "x" })).ipv4;
      await f.ipam.autoAssign({ host: "h", handle: "y" });
      const w = flaky as FlakyBackend;
      w.failAt = w.calls + failAt;
      await f.ipam
        .releaseIPs(ips)
        .catch((err: unknown) => assert.ok(isErrorCode(err, "Unavailable")));
      assert.deepEqual((await f.ipam.check()).problems, [], `call ${failAt}`);
      await f.ipam.releaseIPs(ips);
      assert.equal(await f.ipam.getAllocation(ips[0] as string), undefined);
    }
  });
});

describe("queries", () => {
  test("usage counts addresses per pool and per block with its host", async () => {
    const { ipam } = await ipamWith([
      pool("p", "10.65.0.0/24", { blockSize: 28 }),
      reservation("r", ["10.65.0.240/28"]),
    ]);
    for (let i = 0; i < 3; i++) await assign(ipam, "host-1", `a${i}`);
    await assign(ipam, "host-2", "b");
    const usage = await ipam.usage();
    assert.deepEqual(usage.pools, [
      {
        name: "p",
        cidr: "10.65.0.0/24",
        blockSize: 28,
        disabled: false,
        total: 256n,
        inUse: 4,
        blocks: 2,
      },
    ]);
    assert.deepEqual(usage.blocks.map((b) => [b.host, b.total, b.inUse, b.free]).sort(), [
      ["host-1", 16, 3, 13],
      ["host-2", 16, 1, 15],
    ]);
  });

  test("describeAddress tells pool, block, reservation and holder", async () => {
    const { ipam } = await ipamWith([pool("p", "10.65.0.0/24"), reservation("r", ["10.65.0.9"])]);
    await ipam.assignIP({
      ip: "10.65.0.8",
      host: "host-1",
      handle: "x",
      attributes: { pod: "web" },
    });
    const held = await ipam.describeAddress("10.65.0.8");
    assert.equal(held.pool, "p");
    assert.deepEqual(held.block, { cidr: "10.65.0.0/26", host: "host-1" });
    assert.equal(held.allocation?.attributes["pod"], "web");
    const free = await ipam.describeAddress("10.65.0.9");
    assert.equal(free.allocation, undefined);
    assert.equal(free.reserved, true);
    assert.deepEqual(await ipam.describeAddress("10.99.0.1"), { ip: "10.99.0.1", reserved: false });
  });
});

function bind(b: Backend): Backend {
  return {
    get: (k) => b.get(k),
    list: (p) => b.list(p),
    txn: (r) => b.txn(r),
    watch: (p, o) => b.watch(p, o),
    compact: (r) => b.compact(r),
    revision: () => b.revision(),
    close: () => b.close(),
  };
}
