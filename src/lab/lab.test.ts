// The lab for real: namespaces, etcd, FRR, agents with BIRD, workloads
// through the CNI plugin. Needs root, iproute2, etcd, bird2 and frr; skipped
// otherwise. Each test's lab has a name of its own (t<random>) and its state
// under a temporary root, and is removed in `finally` whatever happens.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { isErrorCode } from "../util/errors.js";
import { labDown, labUp, parseBirdProtocols, parseNodeStatus } from "./lab.js";
import { listNetns, mapLimit, pidsMentioning, run, runOk } from "./lab-os.js";
import type { KernelRoute } from "./route-coverage.js";
import { routeFor } from "./route-coverage.js";

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const bin of [
    "/usr/bin/etcd",
    "/usr/sbin/bird",
    "/usr/lib/frr/zebra",
    "/usr/lib/frr/bgpd",
  ]) {
    if (!existsSync(bin)) return `needs ${bin}`;
  }
  return undefined;
}

const skip = unavailable();
const root = mkdtempSync(join(tmpdir(), "twl-test-"));
after(() => rmSync(root, { recursive: true, force: true }));

const newName = (): string => `t${randomBytes(3).toString("hex")}`;

async function labNamespaces(name: string): Promise<string[]> {
  return (await listNetns()).filter((n) => n.startsWith(`twl-${name}-`));
}

async function assertGone(name: string): Promise<void> {
  assert.deepEqual(await labNamespaces(name), [], "no namespace left");
  assert.deepEqual(await pidsMentioning(join(root, name)), [], "no process left");
  assert.equal(existsSync(join(root, name)), false, "no state dir left");
}

/** ping from a namespace, a few times: the first packets may race BGP's last update. */
async function pings(ns: string, address: string): Promise<boolean> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const r = await run("ip", ["netns", "exec", ns, "ping", "-c1", "-W2", address]);
    if (r.code === 0) return true;
  }
  return false;
}

describe("lab (real namespaces)", { skip }, () => {
  it("builds a flat lab where every workload reaches every other over BGP routes, and removes it all", async () => {
    const name = newName();
    try {
      const info = await labUp(
        { name, topology: "flat", hosts: 3, workloadsPerHost: 2 },
        { stateRoot: root, timeoutMs: 45_000 },
      );
      assert.equal(info.workloads.length, 6);
      for (const w of info.workloads) assert.match(w.ipv4 ?? "", /^10\.65\./);
      assert.ok(info.sessions.length > 0 && info.sessions.every((s) => s.established));

      // Every host has a route with a next hop to every other host's workloads.
      for (const host of info.plan.hosts) {
        const routes = JSON.parse(
          await runOk("ip", ["-j", "-n", host.ns, "route", "show"]),
        ) as KernelRoute[];
        for (const w of info.workloads.filter((x) => x.host !== host.name)) {
          const route = routeFor(routes, w.ipv4 ?? "");
          assert.ok(
            route?.gateway,
            `${host.name} has a route via a next hop to ${w.name}: ${JSON.stringify(route)}`,
          );
          assert.equal(route.protocol, "bird");
        }
      }

      // Every workload pings every other, on its own host and across hosts.
      const pairs = info.workloads.flatMap((a) =>
        info.workloads.filter((b) => b !== a).map((b) => [a, b] as const),
      );
      const failed = (
        await mapLimit(pairs, 6, async ([a, b]) =>
          (await pings(a.ns, b.ipv4 ?? "")) ? "" : `${a.name}→${b.name}`,
        )
      ).filter((f) => f !== "");
      assert.deepEqual(failed, [], "pairs that cannot ping");

      // The plain machine, with no twill component, reaches a workload by routing alone.
      const plain = info.plan.plains[0];
      assert.ok(plain);
      assert.ok(await pings(plain.ns, info.workloads[0]?.ipv4 ?? ""), "plain1 reaches a workload");
      // The management segment carries no workload traffic.
      const mgmt = await run("ip", [
        "netns",
        "exec",
        info.workloads[0]?.ns ?? "",
        "ping",
        "-c1",
        "-W1",
        "172.30.0.11",
      ]);
      assert.notEqual(mgmt.code, 0, "a workload does not reach etcd");

      const down = await labDown(name, { stateRoot: root });
      assert.ok(down.namespaces >= 12 && down.processes > 0);
      await assertGone(name);
      assert.deepEqual(await labDown(name, { stateRoot: root }), {
        namespaces: 0,
        processes: 0,
        stateDir: false,
      });
    } finally {
      await labDown(name, { stateRoot: root });
    }
  });

  it("removes a lab whose state file is gone, as after a crash", async () => {
    const name = newName();
    try {
      await labUp(
        { name, topology: "flat", hosts: 1, workloadsPerHost: 1 },
        { stateRoot: root, timeoutMs: 45_000, waitForBgp: false },
      );
      unlinkSync(join(root, name, "state.json"));
      assert.ok((await pidsMentioning(join(root, name))).length > 0);
      await labDown(name, { stateRoot: root });
      await assertGone(name);
    } finally {
      await labDown(name, { stateRoot: root });
    }
  });

  it("refuses to build over leftovers, which lab down then removes", async () => {
    const name = newName();
    try {
      await runOk("ip", ["netns", "add", `twl-${name}-h1`]);
      await assert.rejects(
        labUp({ name, topology: "flat", hosts: 1 }, { stateRoot: root }),
        (err) => isErrorCode(err, "AlreadyExists") && /lab down/.test(err.message),
      );
      assert.equal((await labDown(name, { stateRoot: root })).namespaces, 1);
      await assertGone(name);
    } finally {
      await labDown(name, { stateRoot: root });
    }
  });
});

describe("session parsers", () => {
  it("reads BGP rows of BIRD's show protocols", () => {
    const text = [
      "BIRD 2.0.12 ready.",
      "Name       Proto      Table      State  Since         Info",
      "device1    Device     ---        up     05:30:01.123",
      "mesh_10_1_1_12 BGP        ---        up     05:30:03.456  Established",
      "global_10_1_1_1 BGP        ---        start  05:30:03.456  Active        Socket: Connection refused",
      "",
    ].join("\n");
    assert.deepEqual(parseBirdProtocols("h1", text), [
      { speaker: "h1", peer: "mesh_10_1_1_12", state: "Established", established: true },
      {
        speaker: "h1",
        peer: "global_10_1_1_1",
        state: "Active Socket: Connection refused",
        established: false,
      },
    ]);
  });

  it("reads sessions from twill node status JSON, and nothing from other text", () => {
    assert.deepEqual(
      parseNodeStatus(
        "h2",
        JSON.stringify({ sessions: [{ peerAddress: "10.1.1.1", state: "Established" }] }),
      ),
      [{ speaker: "h2", peer: "10.1.1.1", state: "Established", established: true }],
    );
    assert.equal(parseNodeStatus("h2", "error: unknown command"), undefined);
  });
});
