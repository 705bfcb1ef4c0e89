import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { LinkMonitor, fakeLinkSource, ipLinkSource, parseMonitorLine } from "./link-monitor.js";
import type { Link, LinkSource } from "./link-monitor.js";
import { NetnsPool, netnsUnavailable } from "./netns-testkit.js";
import { runCommand } from "./run-command.js";

/** Collects onChange calls as "name up|down|gone". */
function recorder() {
  const changes: string[] = [];
  let waiters: { pred: () => boolean; resolve: () => void }[] = [];
  return {
    changes,
    onChange(name: string, link: Link | undefined) {
      changes.push(`${name} ${link === undefined ? "gone" : link.up ? "up" : "down"}`);
      waiters = waiters.filter((w) => {
        if (w.pred()) w.resolve();
        return !w.pred();
      });
    },
    /** Resolves once `pred` holds (checked after every change), or fails after 3 s. */
    until(pred: () => boolean, what: string): Promise<void> {
      if (pred()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(
          () => reject(new Error(`timed out waiting for ${what}; saw ${changes.join(", ")}`)),
          3000,
        );
        waiters.push({
          pred,
          resolve: () => {
            clearTimeout(t);
            resolve();
          },
        });
      });
    },
  };
}

describe("parseMonitorLine", () => {
  const cases: [string, ReturnType<typeof parseMonitorLine>][] = [
    [
      "9: twe@twf: <NO-CARRIER,BROADCAST,MULTICAST,UP,M-DOWN> mtu 1500 qdisc noqueue state LOWERLAYERDOWN group default \\    link/ether 96:e0:e9:2b:3b:2a brd ff:ff:ff:ff:ff:ff",
      { deleted: false, link: { name: "twe", index: 9, up: true } },
    ],
    [
      "8: twf@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default",
      { deleted: false, link: { name: "twf", index: 8, up: false } },
    ],
    [
      "Deleted 9: twe@NONE: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN group default",
      { deleted: true, link: { name: "twe", index: 9, up: false } },
    ],
    [
      "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536",
      { deleted: false, link: { name: "lo", index: 1, up: true } },
    ],
    ["    link/ether 96:e0:e9:2b:3b:2a brd ff:ff:ff:ff:ff:ff", undefined],
  ];
  for (const [line, expected] of cases) {
    it(`parses ${JSON.stringify(line.slice(0, 40))}`, () =>
      assert.deepEqual(parseMonitorLine(line), expected));
  }
});

describe("link monitor (fake source)", () => {
  it("knows every link after start, then reports each change once", async () => {
    const src = fakeLinkSource({ lo: true, tw1: false });
    const rec = recorder();
    const mon = new LinkMonitor(src, {
      onChange: (n, l) => rec.onChange(n, l),
      refreshIntervalMs: 0,
    });
    const ac = new AbortController();
    const { done } = await mon.start(ac.signal);
    assert.deepEqual(rec.changes, ["lo up", "tw1 down"]);
    assert.equal(mon.isUp("tw1"), false);
    src.set("tw1", true);
    src.set("tw1", true); // no difference, no call
    src.set("tw2", true);
    src.remove("tw1");
    assert.deepEqual(rec.changes.slice(2), ["tw1 up", "tw2 up", "tw1 gone"]);
    assert.deepEqual(mon.names(), ["lo", "tw2"]);
    ac.abort();
    await done;
    assert.equal(src.watchers, 0);
  });

  it("restarts a broken monitor and lists again, reporting what changed meanwhile", async () => {
    const src = fakeLinkSource({ tw1: true });
    const rec = recorder();
    const errors: unknown[] = [];
    const mon = new LinkMonitor(src, {
      onChange: (n, l) => rec.onChange(n, l),
      onError: (e) => errors.push(e),
      refreshIntervalMs: 0,
      restartDelayMs: 1,
    });
    const ac = new AbortController();
    const { done } = await mon.start(ac.signal);
    src.breakWatch();
    // While nobody watches, a link appears: the relist after the restart finds it.
    src.set("tw3", true);
    await rec.until(() => rec.changes.includes("tw3 up"), "tw3 after restart");
    assert.equal(errors.length, 1);
    assert.ok(src.lists >= 2);
    ac.abort();
    await done;
  });

  it("relists every refresh interval and notices a link gone without an event", async () => {
    const src = fakeLinkSource({ tw1: true });
    const rec = recorder();
    const mon = new LinkMonitor(src, {
      onChange: (n, l) => rec.onChange(n, l),
      refreshIntervalMs: 5,
    });
    const ac = new AbortController();
    const { done } = await mon.start(ac.signal);
    src.remove("tw1", { silent: true });
    await rec.until(() => rec.changes.includes("tw1 gone"), "tw1 gone");
    ac.abort();
    await done;
  });

  it("start() fails when the first list fails", async () => {
    const src = fakeLinkSource();
    src.failNextList("no netlink");
    const mon = new LinkMonitor(src, { onChange: () => undefined, refreshIntervalMs: 0 });
    await assert.rejects(mon.start(new AbortController().signal), /no netlink/);
  });
});

const why = netnsUnavailable();
describe("link monitor in a network namespace (ip -o monitor link)", { skip: why }, () => {
  const pool = new NetnsPool();
  after(() => pool.cleanup());

  it("sees a veth appear, go up, and disappear, without polling", async () => {
    const ns = await pool.create("links");
    const source: LinkSource = ipLinkSource(runCommand, { ipCommand: ["ip", "-n", ns.name] });
    const rec = recorder();
    const mon = new LinkMonitor(source, {
      onChange: (n, l) => rec.onChange(n, l),
      refreshIntervalMs: 0,
    });
    const ac = new AbortController();
    const { done } = await mon.start(ac.signal);
    assert.deepEqual(mon.names(), ["lo"]);
    await ns.sh("ip", "link", "add", "tw1", "type", "veth", "peer", "name", "tw1p");
    await rec.until(() => mon.get("tw1") !== undefined, "tw1 to appear");
    assert.equal(mon.isUp("tw1"), false);
    await ns.sh("ip", "link", "set", "tw1", "up");
    await rec.until(() => mon.isUp("tw1"), "tw1 up");
    await ns.sh("ip", "link", "del", "tw1");
    await rec.until(
      () => mon.get("tw1") === undefined && mon.get("tw1p") === undefined,
      "tw1 gone",
    );
    assert.ok(rec.changes.includes("tw1 gone"));
    ac.abort();
    await done;
  });
});
