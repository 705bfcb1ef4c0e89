// twill agent end to end, as root: a real etcd, a "host" network namespace
// running `twill agent` (ip netns exec … node dist/src/bin/twill.js agent),
// and two "workload" namespaces wired to it by hand the way the CNI plugin
// does (veth, /32 address, routes via 169.254.1.1). Nothing here touches the
// machine's own namespace: etcd listens on its loopback, and a relay through
// a unix socket (which crosses namespaces) gives the host namespace its own
// 127.0.0.1:2379.
//
//   test process ── etcd (127.0.0.1:N) ◄── unix socket relay ◄── host ns 127.0.0.1:2379
//                                                                   │ twill agent
//                              wa: eth0 10.65.0.1 ── twa ─┤ host ├─ twb ── eth0 10.65.0.2 :wb
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import type { Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { kindById } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { globalPolicy, profile, workload } from "../calc/testing/resources.js";
import { endpointStatusKey, parseEndpointStatus } from "../datastore/endpoint-status.js";
import { EtcdBackend } from "../datastore/etcd-backend.js";
import { DEFAULT_ETCD_BINARY, startEtcd } from "../datastore/etcd-server.js";
import type { EtcdServer } from "../datastore/etcd-server.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { NetnsPool, netnsUnavailable } from "../dataplane/netns-testkit.js";
import type { Netns } from "../dataplane/netns-testkit.js";

const TWILL = fileURLToPath(new URL("../bin/twill.js", import.meta.url));
const HEALTH = "http://127.0.0.1:9099";

const why = netnsUnavailable() ?? (existsSync(DEFAULT_ETCD_BINARY) ? undefined : "needs etcd");

// ---------------------------------------------------------------------------
// Small programs run inside the namespaces (node is all they need).

/** TCP servers on the given ports: greet with "hi\n", then echo. */
const SERVER = `
const net = require("node:net");
for (const port of process.argv.slice(1).map(Number)) {
  net.createServer((s) => { s.on("error", () => {}); s.write("hi\\n"); s.pipe(s); }).listen(port, "0.0.0.0");
}
setInterval(() => {}, 1 << 30);
`;

/** Connects to every "ip:port" given (JSON list) at once; prints {"ip:port": true|false}. */
const PROBE = `
const net = require("node:net");
const targets = JSON.parse(process.argv[1]);
Promise.all(targets.map((t) => new Promise((resolve) => {
  const [host, port] = t.split(":");
  const s = net.connect({ host, port: Number(port) });
  const done = (ok) => { s.destroy(); resolve([t, ok]); };
  s.setTimeout(700, () => done(false));
  s.on("data", (d) => done(String(d).startsWith("hi")));
  s.on("error", () => done(false));
}))).then((r) => process.stdout.write(JSON.stringify(Object.fromEntries(r))));
`;

/** One long TCP flow: a byte every 20 ms for argv[2] ms; prints what came back and the longest silence. */
const FLOW = `
const net = require("node:net");
const [host, port, ms] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const s = net.connect({ host, port });
let sent = 0, received = 0, last = Date.now(), maxGap = 0, greeted = false;
s.on("data", (d) => {
  const now = Date.now(); maxGap = Math.max(maxGap, now - last); last = now;
  const text = String(d);
  if (!greeted && text.startsWith("hi\\n")) { greeted = true; received += text.length - 3; } else received += text.length;
});
s.on("error", (e) => { process.stdout.write(JSON.stringify({ error: e.message, sent, received })); process.exit(1); });
s.on("connect", () => {
  process.stdout.write("connected\\n");
  const t = setInterval(() => { s.write("x"); sent++; }, 20);
  setTimeout(() => { clearInterval(t); setTimeout(() => {
    process.stdout.write(JSON.stringify({ sent, received, maxGap })); s.destroy(); process.exit(0);
  }, 300); }, ms);
});
`;

/** host-namespace side of the etcd relay: 127.0.0.1:port → the unix socket. */
const RELAY = `
const net = require("node:net");
const [sock, port] = [process.argv[1], Number(process.argv[2])];
net.createServer((c) => {
  const u = net.connect(sock);
  c.pipe(u); u.pipe(c);
  c.on("error", () => u.destroy()); u.on("error", () => c.destroy());
}).listen(port, "127.0.0.1", () => process.stdout.write("ready\\n"));
`;

function lineOf(child: ChildProcess, pred: (line: string) => boolean, ms: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const t = setTimeout(
      () => reject(new Error(`no matching output within ${ms} ms; got: ${buf.slice(-500)}`)),
      ms,
    );
    child.stdout?.on("data", (d: Buffer) => {
      buf += d.toString("utf8");
      for (const line of buf.split("\n")) {
        if (pred(line)) {
          clearTimeout(t);
          resolve(line);
        }
      }
    });
  });
}

// ---------------------------------------------------------------------------

interface AgentRun {
  child: ChildProcess;
  /** Parsed JSON log lines so far. */
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
}

describe(
  "twill agent end to end (network namespaces, etcd)",
  { skip: why, timeout: 120_000 },
  () => {
    const pool = new NetnsPool();
    let etcd: EtcdServer | undefined;
    let store: ResourceStore;
    let unixRelay: Server | undefined;
    let sockDir: string | undefined;
    let host: Netns;
    let wa: Netns;
    let wb: Netns;
    let agent: AgentRun | undefined;
    let A: Resource;
    let B: Resource;

    /** Every agent run's log, written to $TWILL_TEST_AGENT_LOG at the end when set (debugging). */
    const allLines: Record<string, unknown>[][] = [];

    const startAgent = (): AgentRun => {
      const child = host.spawn("node", [
        TWILL,
        "--etcd-endpoints",
        "http://127.0.0.1:2379",
        "agent",
        "--node-name",
        "host-1",
        "--node-ipv4",
        "192.0.2.1/24",
        "--bgp-enabled",
        "false",
        "--min-apply-interval",
        "20ms",
        "--log-severity-screen",
        "Debug",
      ]);
      const lines: Record<string, unknown>[] = [];
      allLines.push(lines);
      let buf = "";
      child.stdout?.on("data", (d: Buffer) => {
        buf += d.toString("utf8");
        const parts = buf.split("\n");
        buf = parts.pop() ?? "";
        for (const p of parts) {
          try {
            lines.push(JSON.parse(p) as Record<string, unknown>);
          } catch {
            lines.push({ msg: p });
          }
        }
      });
      let stderr = "";
      child.stderr?.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
      const exited = new Promise<number | null>((resolve) =>
        child.once("close", (code) => {
          if (code !== 0 && stderr) lines.push({ msg: "stderr", stderr });
          resolve(code);
        }),
      );
      return { child, lines, exited };
    };

    const logTail = () =>
      (agent?.lines ?? [])
        .slice(-15)
        .map((l) => JSON.stringify(l))
        .join("\n");

    const httpStatus = async (path: string) =>
      (await host.try("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", `${HEALTH}${path}`]))
        .stdout;

    const until = async (what: string, pred: () => Promise<boolean>, ms = 10_000) => {
      const end = Date.now() + ms;
      while (!(await pred())) {
        if (Date.now() > end)
          throw new Error(`timed out waiting for ${what}\nagent log:\n${logTail()}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    /** Checks every pair at once, retrying until all match (policy takes a moment to arrive). */
    const expectConnectivity = async (from: Netns, want: Record<string, boolean>, ms = 8_000) => {
      let last: Record<string, boolean> = {};
      const end = Date.now() + ms;
      for (;;) {
        const r = await from.try("node", ["-e", PROBE, JSON.stringify(Object.keys(want))]);
        last = JSON.parse(r.stdout || "{}") as Record<string, boolean>;
        if (Object.entries(want).every(([k, v]) => last[k] === v)) return;
        if (Date.now() > end) {
          assert.deepEqual(last, want, `connectivity from ${from.name}\nagent log:\n${logTail()}`);
        }
        await new Promise((r) => setTimeout(r, 150));
      }
    };

    const kernelState = async () => ({
      nft: await host.sh("nft", "list", "table", "inet", "twill"),
      routes: await host.sh("ip", "-j", "route", "show", "proto", "116"),
      routes6: await host.sh("ip", "-6", "-j", "route", "show", "proto", "116"),
    });

    before(async () => {
      etcd = await startEtcd();
      store = new ResourceStore(new EtcdBackend({ endpoints: [etcd.endpoint] }));
      host = await pool.create("host");
      wa = await pool.create("wa");
      wb = await pool.create("wb");

      // The relay: unix socket in the test's namespace → etcd; TCP in the host namespace → the socket.
      sockDir = mkdtempSync(join(tmpdir(), "twt-relay-"));
      const sock = join(sockDir, "etcd.sock");
      const etcdPort = Number(new URL(etcd.endpoint).port);
      unixRelay = createServer((c) => {
        const u = createConnection({ host: "127.0.0.1", port: etcdPort });
        c.pipe(u);
        u.pipe(c);
        c.on("error", () => u.destroy());
        u.on("error", () => c.destroy());
      });
      await new Promise<void>((resolve) => unixRelay?.listen(sock, resolve));
      const relay = host.spawn("node", ["-e", RELAY, sock, "2379"]);
      await lineOf(relay, (l) => l === "ready", 5000);

      // An uplink, so the host has a route covering 169.254.1.1 and answers its ARP by proxy.
      await pool.veth(host, "up0", undefined, "up1");
      await host.sh("ip", "link", "set", "up0", "up");
      await host.sh("ip", "link", "set", "up1", "up");
      await host.sh("ip", "route", "add", "default", "dev", "up0");

      // Workloads, wired as the CNI plugin wires them.
      for (const [ns, hostIf, ip] of [
        [wa, "twa", "10.65.0.1"],
        [wb, "twb", "10.65.0.2"],
      ] as const) {
        await pool.veth(host, hostIf, ns, "eth0");
        await host.sh("ip", "link", "set", hostIf, "address", "ee:ee:ee:ee:ee:ee", "up");
        await ns.sh("ip", "addr", "add", `${ip}/32`, "dev", "eth0");
        await ns.sh("ip", "link", "set", "eth0", "up");
        await ns.sh("ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link");
        await ns.sh("ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0");
      }
      wa.spawn("node", ["-e", SERVER, "8080"]);
      wb.spawn("node", ["-e", SERVER, "8080", "9090"]);

      // Resources: two workloads, a namespace profile that allows nothing, a-egress, b-ingress.
      const wl = (pod: string, ip: string, iface: string) => {
        const r = workload({
          namespace: "ns",
          pod,
          node: "host-1",
          ips: [ip],
          labels: { app: pod },
        });
        (r.spec as { interfaceName: string }).interfaceName = iface;
        return r;
      };
      await store.create(profile("kns.ns"));
      A = await store.create(wl("a", "10.65.0.1", "twa"));
      B = await store.create(wl("b", "10.65.0.2", "twb"));
      await store.create(
        globalPolicy("a-egress", {
          selector: "app == 'a'",
          types: ["Egress"],
          egress: [{ action: "Allow" }],
        }),
      );
      await store.create(
        globalPolicy("b-ingress", {
          selector: "app == 'b'",
          types: ["Ingress"],
          ingress: [
            {
              action: "Allow",
              protocol: "TCP",
              source: { selector: "app == 'a'" },
              destination: { ports: [8080] },
            },
          ],
        }),
      );
    });

    after(async () => {
      if (agent && agent.child.exitCode === null) {
        agent.child.kill("SIGTERM");
        await agent.exited;
      }
      const logFile = process.env["TWILL_TEST_AGENT_LOG"];
      if (logFile)
        writeFileSync(
          logFile,
          allLines.map((ls) => ls.map((l) => JSON.stringify(l)).join("\n")).join("\n---\n"),
        );
      await pool.cleanup();
      await new Promise<void>((resolve) =>
        unixRelay ? unixRelay.close(() => resolve()) : resolve(),
      );
      if (sockDir) rmSync(sockDir, { recursive: true, force: true });
      await store?.backend.close();
      await etcd?.stop();
    });

    it("programs the host: ready, policy enforced both ways, status keys written", async () => {
      agent = startAgent();
      await until("/readyz 200", async () => (await httpStatus("/readyz")) === "200");
      assert.equal(await httpStatus("/livez"), "200");
      await expectConnectivity(wa, { "10.65.0.2:8080": true, "10.65.0.2:9090": false });
      await expectConnectivity(wb, { "10.65.0.1:8080": false });

      for (const wep of [A, B]) {
        const key = endpointStatusKey(store.prefix, {
          node: "host-1",
          namespace: "ns",
          name: wep.metadata.name,
        });
        await until(
          `status of ${wep.metadata.name}`,
          async () => (await store.backend.get(key)) !== undefined,
        );
        assert.deepEqual(parseEndpointStatus((await store.backend.get(key))!.value), {
          state: "programmed",
          resourceVersion: wep.metadata.resourceVersion,
        });
      }
      const routes = JSON.parse(await host.sh("ip", "-j", "route", "show", "proto", "116")) as {
        dst: string;
        dev: string;
      }[];
      assert.deepEqual(routes.map((r) => `${r.dst} ${r.dev}`).sort(), [
        "10.65.0.1 twa",
        "10.65.0.2 twb",
      ]);
      assert.equal((await host.sh("cat", "/proc/sys/net/ipv4/conf/twa/proxy_arp")).trim(), "1");
      const node = await store.get(kindById("Node"), "host-1");
      assert.equal(
        (node.spec as { bgp?: { ipv4Address?: string } }).bgp?.ipv4Address,
        "192.0.2.1/24",
      );
      const metrics = await host.sh("curl", "-s", `${HEALTH}/metrics`);
      assert.match(metrics, /twill_programmed_endpoints 2/);
    });

    it("follows a policy change", async () => {
      const p = await store.get(kindById("GlobalNetworkPolicy"), "b-ingress");
      const spec = structuredClone(p.spec) as { ingress: { destination: { ports: number[] } }[] };
      spec.ingress[0]!.destination.ports = [8080, 9090];
      await store.update({ ...p, spec });
      await expectConnectivity(wa, { "10.65.0.2:8080": true, "10.65.0.2:9090": true });
    });

    it("a restarted agent changes nothing in the kernel and an established flow survives", async () => {
      assert.ok(agent);
      const flow = wa.spawn("node", ["-e", FLOW, "10.65.0.2", "8080", "5000"]);
      const flowDone = new Promise<string>((resolve) => {
        let out = "";
        flow.stdout?.on("data", (d: Buffer) => (out += d.toString("utf8")));
        flow.once("close", () => resolve(out));
      });
      await lineOf(flow, (l) => l === "connected", 3000);
      const before = await kernelState();

      agent.child.kill("SIGTERM");
      assert.equal(await agent.exited, 0);
      assert.ok(agent.lines.some((l) => l["msg"] === "agent stopped; kernel state left in place"));
      agent = startAgent();
      await until("/readyz 200 after restart", async () => (await httpStatus("/readyz")) === "200");
      const first = agent.lines.find((l) => l["msg"] === "dataplane programmed (first apply)");
      assert.ok(first, logTail());
      assert.equal(first["nft"], "nothing", "no nftables transaction on restart");
      assert.equal(first["routesChanged"], 0);
      assert.equal(first["sysctlWrites"], 0);
      assert.deepEqual(await kernelState(), before);

      const result = JSON.parse((await flowDone).split("\n").pop() ?? "{}") as {
        sent?: number;
        received?: number;
        maxGap?: number;
        error?: string;
      };
      assert.equal(result.error, undefined);
      assert.ok((result.sent ?? 0) > 100, JSON.stringify(result));
      assert.equal(result.received, result.sent, "every byte echoed");
      assert.ok((result.maxGap ?? 0) < 500, `longest silence ${result.maxGap} ms`);
    });

    it("after the restart, still converges: deleting the allow policy denies", async () => {
      await store.delete(kindById("GlobalNetworkPolicy"), "b-ingress");
      await expectConnectivity(wa, { "10.65.0.2:8080": false, "10.65.0.2:9090": false });
    });

    it("stops cleanly on SIGTERM, leaving the table in place", async () => {
      assert.ok(agent);
      agent.child.kill("SIGTERM");
      assert.equal(await agent.exited, 0);
      assert.match(await host.sh("nft", "list", "tables"), /table inet twill/);
      await expectConnectivity(wa, { "10.65.0.2:8080": false });
    });
  },
);
