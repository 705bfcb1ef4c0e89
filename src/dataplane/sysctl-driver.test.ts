import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { isErrorCode } from "../util/errors.js";
import { NetnsPool, netnsUnavailable } from "./netns-testkit.js";
import type { Netns } from "./netns-testkit.js";
import {
  SysctlDriver,
  checkInterfaceName,
  fakeSysctls,
  interfaceSysctls,
} from "./sysctl-driver.js";

const OPTS = { ipv6: true, forwarding: true, strictRpFilter: true };

describe("sysctl driver (fake)", () => {
  it("sets a workload interface's sysctls once, writing only what differs", async () => {
    const s = fakeSysctls();
    s.addInterface("tw1");
    s.values.set("net/ipv4/conf/tw1/forwarding", "1");
    const d = new SysctlDriver(s, OPTS);
    assert.equal(await d.configureInterface("tw1"), 6);
    assert.deepEqual(s.writes, [
      "net/ipv4/conf/tw1/rp_filter=1",
      "net/ipv4/conf/tw1/proxy_arp=1",
      "net/ipv4/neigh/tw1/proxy_delay=0",
      "net/ipv6/conf/tw1/forwarding=1",
      "net/ipv6/conf/tw1/proxy_ndp=1",
      "net/ipv6/conf/tw1/accept_ra=0",
    ]);
    assert.equal(await d.configureInterface("tw1"), 0);
    assert.equal(d.isConfigured("tw1"), true);
  });

  it("turns global forwarding on once", async () => {
    const s = fakeSysctls();
    const d = new SysctlDriver(s, OPTS);
    assert.equal(await d.ensureGlobal(), 2);
    assert.equal(await d.ensureGlobal(), 0);
    assert.equal(s.values.get("net/ipv4/ip_forward"), "1");
    assert.equal(s.values.get("net/ipv6/conf/all/forwarding"), "1");
  });

  it("leaves forwarding alone when ipForwarding is Disabled, and IPv6 alone without IPv6 support", async () => {
    const s = fakeSysctls();
    s.addInterface("tw1");
    const d = new SysctlDriver(s, { ipv6: false, forwarding: false, strictRpFilter: false });
    assert.equal(await d.ensureGlobal(), 0);
    await d.configureInterface("tw1");
    assert.ok(s.writes.every((w) => !w.startsWith("net/ipv6")));
    s.values.set("net/ipv4/conf/tw1/rp_filter", "1");
    d.forget("tw1");
    await d.configureInterface("tw1");
    assert.equal(s.values.get("net/ipv4/conf/tw1/rp_filter"), "0");
  });

  it("reports an interface that is gone as NotFound, and configures it again after forget()", async () => {
    const s = fakeSysctls();
    const d = new SysctlDriver(s, OPTS);
    await assert.rejects(d.configureInterface("tw9"), (e: unknown) => isErrorCode(e, "NotFound"));
    s.addInterface("tw9");
    await d.configureInterface("tw9");
    s.removeInterface("tw9");
    s.addInterface("tw9");
    d.forget("tw9");
    assert.equal(await d.configureInterface("tw9"), 7);
  });

  for (const bad of ["..", ".", "a/b", "", "name-that-is-too-long", "x y"]) {
    it(`refuses interface name ${JSON.stringify(bad)} before it becomes a path`, () => {
      assert.throws(() => checkInterfaceName(bad), /not a valid Linux interface name/);
      assert.throws(() => interfaceSysctls(bad, OPTS));
    });
  }
});

const why = netnsUnavailable();
describe("sysctl driver in a network namespace (/proc/sys is per namespace)", { skip: why }, () => {
  const pool = new NetnsPool();
  let ns: Netns;
  before(async () => {
    ns = await pool.create("sysctl");
    await pool.veth(ns, "tw1", undefined, "tw1p");
  });
  after(() => pool.cleanup());

  it("writes the namespace's sysctls, not the machine's", async () => {
    // The driver itself reads /proc/sys of its own namespace: run it inside.
    const script = `
      import { SysctlDriver, procSysctls } from ${JSON.stringify(new URL("./sysctl-driver.js", import.meta.url).href)};
      const d = new SysctlDriver(procSysctls(), { ipv6: true, forwarding: true, strictRpFilter: true });
      const n = (await d.ensureGlobal()) + (await d.configureInterface("tw1"));
      process.stdout.write(String(n));
    `;
    const hostForward = (await import("node:fs"))
      .readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8")
      .trim();
    const written = await ns.sh("node", "--input-type=module", "-e", script);
    assert.ok(Number(written) >= 5);
    const read = async (key: string) => (await ns.sh("cat", `/proc/sys/${key}`)).trim();
    assert.equal(await read("net/ipv4/ip_forward"), "1");
    assert.equal(await read("net/ipv4/conf/tw1/proxy_arp"), "1");
    assert.equal(await read("net/ipv4/neigh/tw1/proxy_delay"), "0");
    assert.equal(await read("net/ipv6/conf/tw1/proxy_ndp"), "1");
    // The machine's own namespace is untouched.
    assert.equal(
      (await import("node:fs")).readFileSync("/proc/sys/net/ipv4/ip_forward", "utf8").trim(),
      hostForward,
    );
    // Again: nothing to write.
    assert.equal(await ns.sh("node", "--input-type=module", "-e", script), "0");
  });
});
