// twill agent end to end, as root: the process itself (readiness, status
// keys, routes, sysctls, metrics, restart, SIGTERM) in a "host" network
// namespace against a real etcd, with two workload namespaces wired by hand
// the way the CNI plugin does. The namespaces, etcd and the relay that gives
// the host namespace its own 127.0.0.1:2379 come from src/e2e/host-lab.ts;
// connectivity is checked with src/netcheck. Policy semantics scenario by
// scenario are in src/e2e/policy-e2e.test.ts.
//
//   wa: eth0 10.65.0.1 ── twa ─┤ host (twill agent) ├─ twb ── eth0 10.65.0.2 :wb
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { kindById } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { globalPolicy, profile, workload } from "../calc/testing/resources.js";
import { endpointStatusKey, parseEndpointStatus } from "../datastore/endpoint-status.js";
import { DEFAULT_ETCD_BINARY } from "../datastore/etcd-server.js";
import { netnsUnavailable } from "../dataplane/netns-testkit.js";
import type { Netns } from "../dataplane/netns-testkit.js";
import { lineOf, startHostLab } from "../e2e/host-lab.js";
import type { AgentRun, HostLab } from "../e2e/host-lab.js";
import { checkMatrix, formatMatrix, startResponder } from "../netcheck/netcheck.js";
import type { ResponderHandle } from "../netcheck/netcheck.js";

const HEALTH = "http://127.0.0.1:9099";

const why = netnsUnavailable() ?? (existsSync(DEFAULT_ETCD_BINARY) ? undefined : "needs etcd");

/**
 * One long TCP flow to a responder (which greets with a line, then echoes): a
 * byte every 20 ms for argv[3] ms; prints what came back and the longest silence.
 */
const FLOW = `
const net = require("node:net");
const [host, port, ms] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const s = net.connect({ host, port });
let sent = 0, received = 0, last = Date.now(), maxGap = 0, greeting = true;
s.on("data", (d) => {
  const now = Date.now(); maxGap = Math.max(maxGap, now - last); last = now;
  let text = String(d);
  if (greeting) { const nl = text.indexOf("\\n"); if (nl < 0) return; greeting = false; text = text.slice(nl + 1); }
  received += text.length;
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

describe(
  "twill agent end to end (network namespaces, etcd)",
  { skip: why, timeout: 120_000 },
  () => {
    let lab: HostLab;
    let wa: Netns;
    let wb: Netns;
    let agent: AgentRun | undefined;
    let A: Resource;
    let B: Resource;
    const responders: ResponderHandle[] = [];

    const httpStatus = (path: string) => lab.httpStatus(path);
    const until = (what: string, pred: () => Promise<boolean>, ms?: number) =>
      lab.until(what, pred, ms);

    /** Checks every port from `from` at once, retrying until all match (policy takes a moment). */
    const expectConnectivity = async (from: Netns, want: Record<string, boolean>) => {
      const report = await checkMatrix(
        Object.entries(want).map(([where, allowed]) => {
          const [addr = "", port] = where.split(":");
          return { from: from.name, target: { proto: "tcp", addr, port: Number(port) }, allowed };
        }),
        { attempts: 20, retryDelayMs: 150, timeoutMs: 700 },
      );
      assert.deepEqual(
        report.mismatches,
        [],
        `${formatMatrix(report.results)}\nagent log:\n${lab.logTail()}`,
      );
    };

    const kernelState = async () => ({
      nft: await lab.host.sh("nft", "list", "table", "inet", "twill"),
      routes: await lab.host.sh("ip", "-j", "route", "show", "proto", "116"),
      routes6: await lab.host.sh("ip", "-6", "-j", "route", "show", "proto", "116"),
    });

    before(async () => {
      lab = await startHostLab();
      wa = await lab.wire({ label: "wa", iface: "twa", ipv4: "10.65.0.1" });
      wb = await lab.wire({ label: "wb", iface: "twb", ipv4: "10.65.0.2" });
      responders.push(
        await startResponder(wa.name, { tcpPorts: [8080], udpPorts: [] }),
        await startResponder(wb.name, { tcpPorts: [8080, 9090], udpPorts: [], echo: true }),
      );

      // Resources: two workloads, a namespace profile that allows nothing, a-egress, b-ingress.
      const { store } = lab;
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
      await Promise.all(responders.map((r) => r.stop()));
      const logFile = process.env["TWILL_TEST_AGENT_LOG"];
      if (logFile && lab) writeFileSync(logFile, lab.allLogs());
      await lab?.close();
    });

    it("programs the host: ready, policy enforced both ways, status keys written", async () => {
      const { store } = lab;
      agent = lab.startAgent();
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
      const routes = JSON.parse(await lab.host.sh("ip", "-j", "route", "show", "proto", "116")) as {
        dst: string;
        dev: string;
      }[];
      assert.deepEqual(routes.map((r) => `${r.dst} ${r.dev}`).sort(), [
        "10.65.0.1 twa",
        "10.65.0.2 twb",
      ]);
      assert.equal((await lab.host.sh("cat", "/proc/sys/net/ipv4/conf/twa/proxy_arp")).trim(), "1");
      const node = await store.get(kindById("Node"), "host-1");
      assert.equal(
        (node.spec as { bgp?: { ipv4Address?: string } }).bgp?.ipv4Address,
        "192.168.254.1/24",
      );
      const metrics = await lab.host.sh("curl", "-s", `${HEALTH}/metrics`);
      assert.match(metrics, /twill_programmed_endpoints 2/);
    });

    it("follows a policy change", async () => {
      const { store } = lab;
      const p = await store.get(kindById("GlobalNetworkPolicy"), "b-ingress");
      const spec = structuredClone(p.spec) as { ingress: { destination: { ports: number[] } }[] };
      spec.ingress[0]!.destination.ports = [8080, 9090];
      await store.update({ ...p, spec });
      await expectConnectivity(wa, { "10.65.0.2:8080": true, "10.65.0.2:9090": true });
    });

    it("a restarted agent changes nothing in the kernel and an established flow survives", async () => {
      assert.ok(agent);
      const flow = wa.spawn(process.execPath, ["-e", FLOW, "10.65.0.2", "8080", "5000"]);
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
      agent = lab.startAgent();
      await until("/readyz 200 after restart", async () => (await httpStatus("/readyz")) === "200");
      const first = agent.lines.find((l) => l["msg"] === "dataplane programmed (first apply)");
      assert.ok(first, lab.logTail());
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
      await lab.store.delete(kindById("GlobalNetworkPolicy"), "b-ingress");
      await expectConnectivity(wa, { "10.65.0.2:8080": false, "10.65.0.2:9090": false });
    });

    it("stops cleanly on SIGTERM, leaving the table in place", async () => {
      assert.ok(agent);
      agent.child.kill("SIGTERM");
      assert.equal(await agent.exited, 0);
      assert.match(await lab.host.sh("nft", "list", "tables"), /table inet twill/);
      await expectConnectivity(wa, { "10.65.0.2:8080": false });
    });
  },
);
