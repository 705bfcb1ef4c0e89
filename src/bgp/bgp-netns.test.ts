// BGP end to end, as root: two host namespaces on one L2 segment (a bridge
// in a third, "fabric" namespace, which also runs a throw-away etcd), each
// running the real `twill agent` with BGP on, hence its own supervised BIRD.
// Each host claims an IPAM block; the other host must install it with a
// `via` (not unreachable), `twill node status` must show the mesh session
// Established, and an agent restart must adopt its BIRD and withdraw nothing.
//
//        ns a                      ns fab                       ns b
//   agent host-a ─ BIRD        br0 10.99.0.254/24           agent host-b ─ BIRD
//   e0 10.99.0.1/24 ──veth── pa ┤  etcd :2379  ├ pb ──veth── e0 10.99.0.2/24
//
// Nothing touches the machine's own namespace: etcd listens inside fab, and
// the test reaches it only by running commands in the namespaces.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { DEFAULT_ETCD_BINARY } from "../datastore/etcd-server.js";
import { NetnsPool } from "../dataplane/netns-testkit.js";
import type { Netns } from "../dataplane/netns-testkit.js";
import { birdPaths } from "./bgp-inputs.js";
import { alive, birdPid, birdUnavailable, killBird, tempDir, until } from "./testing/bird-netns.js";

const TWILL = fileURLToPath(new URL("../bin/twill.js", import.meta.url));
const IPAM_JS = fileURLToPath(new URL("../ipam/ipam.js", import.meta.url));
const CONNECT_JS = fileURLToPath(new URL("../datastore/connect.js", import.meta.url));
const ETCD = "http://10.99.0.254:2379";

const why = birdUnavailable() ?? (existsSync(DEFAULT_ETCD_BINARY) ? undefined : "needs etcd");

const RESOURCES = `
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: { name: pool-a }
spec: { cidr: 10.66.0.0/16, blockSize: 26, natOutgoing: false }
`;

/** Allocates one address for a fake workload on argv[2]; prints it. */
const ALLOCATE = `
const [ipamJs, connectJs, endpoint, host] = process.argv.slice(1);
const { Ipam } = await import(ipamJs);
const { openDatastore, datastoreOptionsFrom } = await import(connectJs);
const store = await openDatastore(datastoreOptionsFrom({ etcdEndpoints: endpoint }, {}));
const r = await new Ipam(store).autoAssign({ host, handle: "test." + host, num4: 1 });
process.stdout.write(r.ipv4[0]);
await store.backend.close();
`;

interface Host {
  name: string;
  ns: Netns;
  address: string;
  dir: string;
  agent?: ChildProcess;
  lines: Record<string, unknown>[];
  block?: string;
}

interface Route {
  dst: string;
  gateway?: string;
  type?: string;
  protocol?: string;
}

describe(
  "BGP between two hosts (real agents, BIRD, etcd in namespaces)",
  { skip: why, timeout: 120_000 },
  () => {
    const pool = new NetnsPool();
    const tmp = tempDir("bgp");
    let fab: Netns;
    const hosts: Host[] = [];

    const startAgent = (h: Host) => {
      const child = h.ns.spawn("node", [
        TWILL,
        "--etcd-endpoints",
        ETCD,
        "agent",
        "--node-name",
        h.name,
        "--node-ipv4",
        `${h.address}/24`,
        "--as-number",
        "64512",
        "--bird-dir",
        h.dir,
        "--min-apply-interval",
        "20ms",
      ]);
      h.agent = child;
      h.lines = [];
      let buf = "";
      child.stdout?.on("data", (d: Buffer) => {
        buf += d.toString("utf8");
        const parts = buf.split("\n");
        buf = parts.pop() ?? "";
        for (const p of parts) {
          try {
            h.lines.push(JSON.parse(p) as Record<string, unknown>);
          } catch {
            h.lines.push({ msg: p });
          }
        }
      });
      child.stderr?.on("data", (d: Buffer) => h.lines.push({ msg: "stderr", text: d.toString() }));
    };
    const stopAgent = async (h: Host) => {
      const child = h.agent;
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("close", r));
      child.kill("SIGTERM");
      await exited;
    };
    const logOf = (h: Host) =>
      h.lines
        .slice(-15)
        .map((l) => JSON.stringify(l))
        .join("\n");
    const routes = async (h: Host): Promise<Route[]> =>
      JSON.parse((await h.ns.sh("ip", "-j", "route", "show")) || "[]") as Route[];
    const routeTo = async (h: Host, dst: string) => (await routes(h)).find((r) => r.dst === dst);
    const twill = async (h: Host, ...args: string[]) => {
      const r = await h.ns.try("node", [TWILL, ...args]);
      return { code: r.code, out: r.stdout, err: r.stderr };
    };

    before(async () => {
      fab = await pool.create("fab");
      await fab.sh("ip", "link", "add", "br0", "type", "bridge");
      await fab.sh("ip", "addr", "add", "10.99.0.254/24", "dev", "br0");
      await fab.sh("ip", "link", "set", "br0", "up");
      for (const [i, name] of ["host-a", "host-b"].entries()) {
        const ns = await pool.create(name);
        await pool.veth(ns, "e0", fab, `p${i}`);
        await fab.sh("ip", "link", "set", `p${i}`, "master", "br0", "up");
        const address = `10.99.0.${i + 1}`;
        await ns.sh("ip", "addr", "add", `${address}/24`, "dev", "e0");
        await ns.sh("ip", "link", "set", "e0", "up");
        hosts.push({ name, ns, address, dir: `${tmp.path}/${name}`, lines: [] });
      }
      fab.spawn(DEFAULT_ETCD_BINARY, [
        "--name=twt",
        `--data-dir=${tmp.path}/etcd`,
        `--listen-client-urls=${ETCD},http://127.0.0.1:2379`,
        `--advertise-client-urls=${ETCD}`,
        "--listen-peer-urls=http://127.0.0.1:2380",
        "--initial-advertise-peer-urls=http://127.0.0.1:2380",
        "--initial-cluster=twt=http://127.0.0.1:2380",
        "--heartbeat-interval=10",
        "--election-timeout=100",
        "--log-level=error",
      ]);
      const a = hosts[0]!;
      await until("etcd healthy", async () => {
        const r = await a.ns.try("curl", ["-s", "-m", "1", `${ETCD}/health`]);
        return r.stdout.includes('"true"');
      });
      writeFileSync(`${tmp.path}/resources.yaml`, RESOURCES);
      const applied = await twill(
        a,
        "--etcd-endpoints",
        ETCD,
        "apply",
        "-f",
        `${tmp.path}/resources.yaml`,
      );
      assert.equal(applied.code, 0, applied.err);
    });

    after(async () => {
      for (const h of hosts) await stopAgent(h).catch(() => undefined);
      for (const h of hosts) killBird(birdPaths(h.dir).pidFile);
      await pool.cleanup();
      tmp.remove();
    });

    it("each host's block reaches the other host's kernel with a via", async () => {
      for (const h of hosts) startAgent(h);
      for (const h of hosts) {
        const ip = await h.ns.sh(
          "node",
          "--input-type=module",
          "-e",
          ALLOCATE,
          IPAM_JS,
          CONNECT_JS,
          ETCD,
          h.name,
        );
        assert.match(ip, /^10\.66\.\d+\.\d+$/);
        const [o1, o2, o3, o4] = ip.split(".").map(Number) as [number, number, number, number];
        h.block = `${o1}.${o2}.${o3}.${o4 - (o4 % 64)}/26`;
      }
      const [a, b] = hosts as [Host, Host];
      assert.notEqual(a.block, b.block);
      for (const [from, to] of [
        [a, b],
        [b, a],
      ] as const) {
        await until(
          `${from.name}'s block ${from.block} in ${to.name}'s kernel via ${from.address}`,
          async () => (await routeTo(to, from.block!))?.gateway === from.address,
          20_000,
          async () => `${JSON.stringify(await routes(to))}\n${logOf(to)}`,
        );
        const r = (await routeTo(to, from.block!))!;
        assert.equal(r.protocol, "bird");
        assert.equal(r.type ?? "unicast", "unicast");
        // Its own block: a local blackhole backs it.
        const own = await routeTo(from, from.block!);
        assert.equal(own?.type, "blackhole");
      }
    });

    it("twill node status shows the mesh session Established; node routes shows both directions", async () => {
      const [a, b] = hosts as [Host, Host];
      const json = await twill(b, "node", "status", "--bird-dir", b.dir, "-o", "json");
      assert.equal(json.code, 0, json.err);
      const report = JSON.parse(json.out) as {
        bird: { message: string; routerId: string };
        sessions: {
          kind: string;
          peerAddress: string;
          peerNode?: string;
          state: string;
          routes: { imported: number; exported: number };
        }[];
      };
      assert.equal(report.bird.routerId, b.address);
      assert.equal(report.bird.message, "Daemon is up and running");
      assert.equal(report.sessions.length, 1);
      const s = report.sessions[0]!;
      assert.deepEqual(
        [s.kind, s.peerAddress, s.peerNode, s.state],
        ["mesh", a.address, a.name, "Established"],
      );
      assert.ok(s.routes.imported >= 1 && s.routes.exported >= 1, JSON.stringify(s.routes));

      const text = await twill(b, "node", "status", "--node", b.name, "--bird-dir", b.dir);
      assert.equal(text.code, 0, text.err);
      assert.match(
        text.out,
        new RegExp(`${a.address.replace(/\./g, "\\.")}\\s+mesh\\s+host-a\\s+Established`),
      );
      assert.match(text.out, /1 of 1 sessions established/);

      const rs = await twill(b, "node", "routes", "--bird-dir", b.dir, "-o", "json");
      assert.equal(rs.code, 0, rs.err);
      const routesReport = JSON.parse(rs.out) as {
        announced: { prefix: string; peers: string[] }[];
        learned: { prefix: string; nexthops: { via?: string }[]; best: boolean }[];
      };
      assert.deepEqual(
        routesReport.announced.map((r) => [r.prefix, r.peers]),
        [[b.block, [a.address]]],
      );
      assert.deepEqual(
        routesReport.learned.map((r) => [r.prefix, r.nexthops[0]?.via, r.best]),
        [[a.block, a.address, true]],
      );
    });

    it("an agent restart adopts its running BIRD: no second BIRD, no reload, no route withdrawn", async () => {
      const [a, b] = hosts as [Host, Host];
      const paths = birdPaths(a.dir);
      const pid = birdPid(paths.pidFile);
      assert.ok(pid !== undefined && alive(pid));
      const conf = readFileSync(paths.config, "utf8");
      let missing = 0;
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          if ((await routeTo(b, a.block!))?.gateway !== a.address) missing++;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      try {
        await stopAgent(a);
        assert.ok(
          a.lines.some((l) => l["msg"] === "leaving BIRD running"),
          logOf(a),
        );
        assert.ok(alive(pid), "BIRD outlives the agent");
        startAgent(a);
        await until(
          "adopted",
          () => a.lines.some((l) => l["msg"] === "BIRD already running; adopted"),
          15_000,
          () => logOf(a),
        );
        await until(
          "the first render after the restart",
          () => a.lines.some((l) => l["msg"] === "BIRD configuration up to date"),
          15_000,
          () => logOf(a),
        );
      } finally {
        watching = false;
        await watcher;
      }
      assert.equal(birdPid(paths.pidFile), pid);
      assert.ok(
        !a.lines.some(
          (l) => l["msg"] === "BIRD configuration reloaded" || l["msg"] === "BIRD starting",
        ),
        logOf(a),
      );
      assert.equal(readFileSync(paths.config, "utf8"), conf);
      assert.equal(missing, 0, "host-b never lost host-a's block");
    });

    it("BIRD killed with -9 is restarted (graceful restart): the peer keeps the route meanwhile", async () => {
      const [a, b] = hosts as [Host, Host];
      const paths = birdPaths(a.dir);
      const pid = birdPid(paths.pidFile)!;
      let missing = 0;
      let watching = true;
      const watcher = (async () => {
        while (watching) {
          if ((await routeTo(b, a.block!))?.gateway !== a.address) missing++;
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      try {
        process.kill(pid, "SIGKILL");
        await until(
          "a new BIRD",
          () => {
            const now = birdPid(paths.pidFile);
            return now !== undefined && now !== pid && alive(now);
          },
          15_000,
          () => logOf(a),
        );
        await until(
          "the session back",
          async () => {
            const r = await twill(b, "node", "status", "--bird-dir", b.dir, "-o", "json");
            return (
              r.code === 0 &&
              (JSON.parse(r.out) as { sessions: { state: string }[] }).sessions[0]?.state ===
                "Established"
            );
          },
          20_000,
        );
        // A's own kernel kept what it had learned from B.
        assert.equal((await routeTo(a, b.block!))?.gateway, b.address);
      } finally {
        watching = false;
        await watcher;
      }
      assert.ok(
        a.lines.some((l) => l["msg"] === "BIRD exited; restarting it"),
        logOf(a),
      );
      assert.equal(missing, 0, "host-b never lost host-a's block");
    });
  },
);
