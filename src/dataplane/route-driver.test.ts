// The route driver, through one contract suite run against the fake table
// and against the kernel's main table in a network namespace of our own.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NetnsPool, netnsUnavailable } from "./netns-testkit.js";
import type { Netns } from "./netns-testkit.js";
import { RouteDriver, canonicalDst, fakeRouteTable, ipRouteTable } from "./route-driver.js";
import type { FakeRouteTable, RouteTable } from "./route-driver.js";

const PROTO = 116;

/** What the contract needs from a table besides the interface: links and a look at the kernel. */
interface Harness {
  table: RouteTable;
  /** Create (or change) an interface. */
  setLink(name: string, up: boolean): Promise<void>;
  removeLink(name: string): Promise<void>;
  /** Every test route in the table, "dst dev proto", sorted. */
  routes(): Promise<string[]>;
  /** A route someone else made. */
  addForeign(dst: string, dev: string, proto: number): Promise<void>;
  isUp(name: string): boolean;
}

function fakeHarness(): Harness & { fake: FakeRouteTable } {
  const fake = fakeRouteTable();
  return {
    fake,
    table: fake,
    setLink: async (name, up) => fake.setLink(name, up),
    removeLink: async (name) => fake.removeLink(name),
    routes: async () => fake.dump(),
    addForeign: async (dst, dev, proto) => {
      fake.routes.set(dst, { dev, protocol: proto });
    },
    isUp: (name) => fake.links.get(name) === true,
  };
}

function kernelHarness(ns: Netns): Harness {
  const up = new Map<string, boolean>();
  return {
    table: ipRouteTable(ns.run),
    async setLink(name, isUp) {
      if (!up.has(name)) {
        await ns.sh("ip", "link", "add", name, "type", "veth", "peer", "name", `${name}p`);
        await ns.sh("ip", "link", "set", `${name}p`, "up");
      }
      await ns.sh("ip", "link", "set", name, isUp ? "up" : "down");
      up.set(name, isUp);
    },
    async removeLink(name) {
      await ns.sh("ip", "link", "del", name);
      up.delete(name);
    },
    async routes() {
      const out: string[] = [];
      for (const family of ["-4", "-6"]) {
        const rows = JSON.parse(
          await ns.sh("ip", family, "-j", "route", "show", "table", "main"),
        ) as {
          dst: string;
          dev: string;
          protocol?: string;
        }[];
        for (const r of rows) {
          if (!r.dst.startsWith("10.65.") && !r.dst.startsWith("fd00:")) continue;
          const proto = r.protocol === undefined ? "3" : r.protocol === "boot" ? "3" : r.protocol;
          out.push(`${canonicalDst(r.dst)} dev ${r.dev} proto ${proto}`);
        }
      }
      return out.sort();
    },
    async addForeign(dst, dev, proto) {
      await ns.sh("ip", "route", "add", dst, "dev", dev, "proto", String(proto));
    },
    isUp: (name) => up.get(name) === true,
  };
}

function contract(name: string, make: () => Promise<Harness>, skip?: string) {
  describe(`route driver contract: ${name}`, { skip }, () => {
    let h: Harness;
    before(async () => {
      h = await make();
      await h.setLink("twa", true);
      await h.setLink("twb", true);
    });

    it("adds routes for workloads whose interface is up, with our protocol", async () => {
      const d = new RouteDriver(h.table, { protocol: PROTO, ipv6: true });
      d.setRoute("10.65.0.1/32", "twa");
      d.setRoute("fd00::1/128", "twa");
      d.setRoute("10.65.0.2/32", "twb");
      const r = await d.apply((n) => h.isUp(n));
      assert.deepEqual(r, { changed: 3, failed: [], pending: [] });
      assert.deepEqual(await h.routes(), [
        "10.65.0.1/32 dev twa proto 116",
        "10.65.0.2/32 dev twb proto 116",
        "fd00::1/128 dev twa proto 116",
      ]);
      assert.equal(d.state("10.65.0.1/32"), "programmed");
    });

    it("a restarted driver changes nothing when the kernel already matches", async () => {
      const d = new RouteDriver(h.table, { protocol: PROTO, ipv6: true });
      d.setRoute("10.65.0.1/32", "twa");
      d.setRoute("fd00::1/128", "twa");
      d.setRoute("10.65.0.2/32", "twb");
      const r = await d.apply((n) => h.isUp(n));
      assert.equal(r.changed, 0);
      assert.equal(d.dirty, false);
    });

    it("removes stale routes of our protocol only, and moves a route to its new interface", async () => {
      await h.addForeign("10.65.9.9/32", "twa", 200);
      const d = new RouteDriver(h.table, { protocol: PROTO, ipv6: true });
      d.setRoute("10.65.0.1/32", "twb"); // moved
      // 10.65.0.2 and fd00::1 are no longer desired.
      const r = await d.apply((n) => h.isUp(n));
      assert.equal(r.failed.length, 0);
      assert.deepEqual(await h.routes(), [
        "10.65.0.1/32 dev twb proto 116",
        "10.65.9.9/32 dev twa proto 200",
      ]);
    });

    it("keeps a route pending while its interface is missing or down, and adds it once up", async () => {
      const d = new RouteDriver(h.table, { protocol: PROTO, ipv6: true });
      d.setRoute("10.65.0.1/32", "twb");
      d.setRoute("10.65.0.3/32", "twc");
      let r = await d.apply((n) => h.isUp(n));
      assert.deepEqual(r.pending, ["10.65.0.3/32"]);
      assert.deepEqual(r.failed, []);
      assert.equal(d.state("10.65.0.3/32"), "pending");
      await h.setLink("twc", false);
      r = await d.apply((n) => h.isUp(n));
      assert.deepEqual(r.pending, ["10.65.0.3/32"]);
      await h.setLink("twc", true);
      d.onLinkChange("twc");
      r = await d.apply((n) => h.isUp(n));
      assert.deepEqual(r.pending, []);
      assert.equal(d.state("10.65.0.3/32"), "programmed");
      assert.ok((await h.routes()).includes("10.65.0.3/32 dev twc proto 116"));
    });

    it("treats an interface that vanished under it as pending, not failed, and re-reads the kernel", async () => {
      const d = new RouteDriver(h.table, { protocol: PROTO, ipv6: true });
      d.setRoute("10.65.0.1/32", "twb");
      d.setRoute("10.65.0.3/32", "twc");
      await d.apply((n) => h.isUp(n));
      await h.removeLink("twc");
      // The driver has not heard of it yet and believes twc is up.
      d.setRoute("10.65.0.4/32", "twc");
      const r = await d.apply(() => true);
      assert.deepEqual(r.failed, []);
      assert.deepEqual(r.pending, ["10.65.0.4/32"]);
      d.onLinkChange("twc");
      const again = await d.apply((n) => h.isUp(n));
      assert.deepEqual(again.pending, ["10.65.0.3/32", "10.65.0.4/32"]);
      assert.equal(d.stats().routes, 1);
    });

    it("without IPv6 support, leaves no IPv6 route of ours", async () => {
      const d = new RouteDriver(h.table, { protocol: PROTO, ipv6: true });
      d.setRoute("fd00::7/128", "twa");
      await d.apply((n) => h.isUp(n));
      d.configure({ protocol: PROTO, ipv6: false });
      await d.apply((n) => h.isUp(n));
      assert.ok(!(await h.routes()).some((r) => r.startsWith("fd00::7")));
      assert.equal(d.state("fd00::7/128"), "pending");
    });
  });
}

contract("fake", async () => fakeHarness());

const why = netnsUnavailable();
const pool = new NetnsPool();
after(() => pool.cleanup());
contract("kernel (network namespace)", async () => kernelHarness(await pool.create("routes")), why);

describe("route driver with the fake table", () => {
  it("reads the kernel back only on resync", async () => {
    const h = fakeHarness();
    h.fake.setLink("twa", true);
    const d = new RouteDriver(h.table, { protocol: PROTO, ipv6: true });
    d.setRoute("10.65.0.1/32", "twa");
    await d.apply(() => true);
    d.setRoute("10.65.0.2/32", "twa");
    await d.apply(() => true);
    assert.deepEqual(h.fake.calls, ["list 4", "list 6", "apply 1", "apply 1"]);
    d.requestResync();
    await d.apply(() => true);
    assert.deepEqual(h.fake.calls.slice(4), ["list 4", "list 6"]);
  });

  it("repairs a route someone deleted, after a resync", async () => {
    const h = fakeHarness();
    h.fake.setLink("twa", true);
    const d = new RouteDriver(h.table, { protocol: PROTO, ipv6: true });
    d.setRoute("10.65.0.1/32", "twa");
    await d.apply(() => true);
    h.fake.routes.delete("10.65.0.1/32");
    d.requestResync();
    const r = await d.apply(() => true);
    assert.equal(r.changed, 1);
    assert.deepEqual(h.fake.dump(), ["10.65.0.1/32 dev twa proto 116"]);
  });

  it("a table that fails stays dirty and the error reaches the caller", async () => {
    const h = fakeHarness();
    h.fake.setLink("twa", true);
    const d = new RouteDriver(h.table, { protocol: PROTO, ipv6: true });
    d.setRoute("10.65.0.1/32", "twa");
    h.fake.failNext(1, "netlink timeout");
    await assert.rejects(
      d.apply(() => true),
      /netlink timeout/,
    );
    assert.equal(d.dirty, true);
    const r = await d.apply(() => true);
    assert.equal(r.changed, 1);
  });
});
