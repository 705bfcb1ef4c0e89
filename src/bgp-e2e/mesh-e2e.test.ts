// BGP end to end on one L2 segment: the lab's flat topology, three hosts in
// the node-to-node mesh, each with its agent and BIRD, and the fabric router
// (FRR, eBGP, configured by the lab, not by twill). One lab for every
// assertion in this file; the tests run in order and each puts back what it
// changed.
//
//        fab1 (FRR, AS 65001) ── plain1
//          │ br0 10.1.1.0/24
//   ┌──────┼──────────┐
//   h1     h2         h3        AS 64512, full mesh (BIRD)
//   client server     other     workloads, labels e2e=<role>
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { labAddWorkload, labUp } from "../lab/lab.js";
import type { LabInfo } from "../lab/lab.js";
import type { WorkloadRecord } from "../lab/lab-state.js";
import type { HostPlan } from "../lab/topology.js";
import { checkMatrix, formatMatrix, startResponder } from "../netcheck/netcheck.js";
import type { MatrixCase, ResponderHandle } from "../netcheck/netcheck.js";
import {
  agentPid,
  applyResources,
  birdPid,
  blockOf,
  deleteResource,
  e2eUnavailable,
  getResource,
  globalPolicy,
  hostAddress,
  kernelRoutes,
  nextHops,
  pathsOf,
  restartAgent,
  startTcpFlow,
  testLab,
  traceroute,
  waitFor,
  waitSessionsUp,
  watchRoute,
} from "./e2e-kit.js";
import type { TcpFlow } from "./e2e-kit.js";

const skip = e2eUnavailable();
const PORT = 8080;
const FLOW_PORT = 9000;

describe(
  "BGP mesh on one L2 segment (lab flat: 3 hosts, agents + BIRD, FRR fabric router)",
  { skip },
  () => {
    let env: ReturnType<typeof testLab> | undefined;
    let lab: LabInfo;
    const roles = ["client", "server", "other"] as const;
    const w = {} as Record<(typeof roles)[number], WorkloadRecord>;
    const responders: ResponderHandle[] = [];
    const host = (name: string): HostPlan => {
      const h = lab.plan.hosts.find((x) => x.name === name);
      assert.ok(h, `host ${name}`);
      return h;
    };
    const ip = (r: WorkloadRecord): string =>
      r.ipv4 ?? assert.fail(`${r.name} has no IPv4 address`);
    const tcp = (from: WorkloadRecord, to: WorkloadRecord, allowed: boolean): MatrixCase => ({
      from: from.ns,
      target: { proto: "tcp", addr: ip(to), port: PORT },
      allowed,
    });
    const expectMatrix = async (cases: MatrixCase[]): Promise<void> => {
      const report = await checkMatrix(cases, { attempts: 20, retryDelayMs: 250 });
      assert.deepEqual(report.mismatches, [], formatMatrix(report.results));
    };

    before(async () => {
      env = testLab();
      lab = await labUp(
        { name: env.name, topology: "flat", hosts: 3, workloadsPerHost: 0 },
        { stateRoot: env.root, timeoutMs: 60_000 },
      );
      // One workload per host, labelled by its role in the policy tests.
      for (const [i, role] of roles.entries()) {
        w[role] = await labAddWorkload(env!.name, `h${i + 1}`, {
          stateRoot: env!.root,
          labels: { e2e: role },
        });
      }
      for (const role of roles) {
        responders.push(await startResponder(w[role].ns, { tcpPorts: [PORT], udpPorts: [] }));
      }
    });

    after(async () => {
      await Promise.all(responders.map((r) => r.stop()));
      await env?.remove();
    });

    it("puts every host's block in the other hosts' kernel tables, with the owning host as next hop", async () => {
      const blocks = await Promise.all(
        roles.map(async (role) => ({
          owner: host(w[role].host),
          block: await blockOf(host(w[role].host), ip(w[role])),
        })),
      );
      for (const h of lab.plan.hosts) {
        for (const { owner, block } of blocks.filter((b) => b.owner.name !== h.name)) {
          const route = await waitFor(`${h.name}: route to ${block} of ${owner.name}`, async () => {
            const [r] = await kernelRoutes(h.ns, block);
            return r === undefined ? "no route" : r;
          });
          assert.deepEqual(
            nextHops(route),
            [hostAddress(owner)],
            `${h.name} → ${block}: ${JSON.stringify(route)}`,
          );
          assert.equal(route.protocol, "bird");
          assert.equal(route.type ?? "unicast", "unicast");
        }
      }
    });

    it("lets workloads on different hosts reach each other", async () => {
      const cases = roles.flatMap((a) =>
        roles.filter((b) => b !== a).map((b) => tcp(w[a], w[b], true)),
      );
      await expectMatrix(cases);
    });

    it("shows only the two hosts on a traceroute between workloads", async () => {
      const want = [
        hostAddress(host(w.client.host)),
        hostAddress(host(w.server.host)),
        ip(w.server),
      ];
      // Probes are UDP; one lost probe shows as "*": try again a few times.
      let hops: string[] = [];
      for (let attempt = 0; attempt < 3; attempt++) {
        hops = await traceroute(w.client.ns, ip(w.server));
        if (!hops.includes("*")) break;
      }
      assert.deepEqual(hops, want);
    });

    it("enforces a deny on the destination's ingress (on the destination host)", async () => {
      await applyResources(lab, [
        globalPolicy("e2e-server-ingress", {
          selector: "e2e == 'server'",
          types: ["Ingress"],
          ingress: [
            { action: "Deny", protocol: "TCP", source: { selector: "e2e == 'client'" } },
            { action: "Allow" },
          ],
        }),
      ]);
      try {
        await expectMatrix([
          tcp(w.client, w.server, false),
          tcp(w.other, w.server, true),
          tcp(w.client, w.other, true),
        ]);
      } finally {
        await deleteResource(lab, "GlobalNetworkPolicy", "e2e-server-ingress");
      }
      await expectMatrix([tcp(w.client, w.server, true)]);
    });

    it("enforces a deny on the source's egress (on the source host)", async () => {
      await applyResources(lab, [
        globalPolicy("e2e-client-egress", {
          selector: "e2e == 'client'",
          types: ["Egress"],
          egress: [
            { action: "Deny", protocol: "TCP", destination: { selector: "e2e == 'server'" } },
            { action: "Allow" },
          ],
        }),
      ]);
      try {
        await expectMatrix([
          tcp(w.client, w.server, false),
          tcp(w.client, w.other, true),
          tcp(w.other, w.server, true),
        ]);
      } finally {
        await deleteResource(lab, "GlobalNetworkPolicy", "e2e-client-egress");
      }
      await expectMatrix([tcp(w.client, w.server, true)]);
    });

    it("keeps a long TCP flow and every route through a kill -9 of BIRD, then an agent restart", async (t) => {
      // Policy on both ends that lets the flow through, so the restarted agent
      // has real rules to take over, not an empty table.
      await applyResources(lab, [
        globalPolicy("e2e-flow", {
          selector: "has(e2e)",
          types: ["Ingress", "Egress"],
          ingress: [{ action: "Allow", protocol: "TCP", source: { selector: "has(e2e)" } }],
          egress: [{ action: "Allow" }],
        }),
      ]);
      const paths = pathsOf(lab);
      const h1 = host(w.client.host);
      const h2 = host(w.server.host);
      const fab = lab.plan.routers[0];
      assert.ok(fab);
      const serverBlock = await blockOf(h2, ip(w.server));
      const clientBlock = await blockOf(h1, ip(w.client));
      let flow: TcpFlow | undefined;
      const watches: { what: string; watch: ReturnType<typeof watchRoute> }[] = [];
      try {
        await expectMatrix([tcp(w.client, w.server, true)]);
        flow = await startTcpFlow(w.server.ns, w.client.ns, ip(w.server), FLOW_PORT);
        watches.push(
          {
            what: `${h1.name} (mesh peer) → ${serverBlock}`,
            watch: watchRoute(h1.ns, serverBlock, hostAddress(h2)),
          },
          {
            what: `${fab.name} (FRR) → ${serverBlock}`,
            watch: watchRoute(fab.ns, serverBlock, hostAddress(h2)),
          },
          {
            what: `${h2.name} (restarted host) → ${clientBlock}`,
            watch: watchRoute(h2.ns, clientBlock, hostAddress(h1)),
          },
        );
        const flowed = async (since: number, what: string): Promise<number> => {
          const stat = await waitFor(`data flowing after ${what}`, async () => {
            const s = await flow!.stat();
            if (s.error !== null) return `flow error ${s.error}`;
            return (s.echoed ?? 0) > since + 10_240
              ? s
              : `echoed ${s.echoed ?? 0} bytes, was ${since}`;
          });
          assert.equal(stat.error, null);
          return stat.echoed ?? 0;
        };
        let echoed = await flowed(0, "start");

        // 1. BIRD on the server's host dies; its supervisor (the agent) starts it again with -R.
        const oldBird = birdPid(paths, h2);
        assert.ok(oldBird, "BIRD runs on h2");
        process.kill(oldBird, "SIGKILL");
        const newBird = await waitFor(`a new BIRD on ${h2.name}`, async () => {
          const pid = birdPid(paths, h2);
          return pid !== undefined && pid !== oldBird ? pid : "not yet";
        });
        await waitSessionsUp(paths, h2);
        echoed = await flowed(echoed, "BIRD was killed");

        // 2. The agent on that host restarts; BIRD keeps running (adopted, not restarted).
        const oldAgent = agentPid(paths, h2);
        assert.ok(oldAgent, "the lab recorded h2's agent");
        await restartAgent(lab, h2);
        assert.notEqual(agentPid(paths, h2), oldAgent, "the lab recorded the new agent");
        await waitSessionsUp(paths, h2);
        assert.equal(birdPid(paths, h2), newBird, "the restarted agent adopted the running BIRD");
        await flowed(echoed, "the agent restarted");

        const reports = await Promise.all(
          watches.splice(0).map(async (x) => ({ what: x.what, r: await x.watch.stop() })),
        );
        for (const { what, r } of reports) {
          t.diagnostic(
            `${what}: ${r.polls} polls, ${r.missing.length} missing, ${r.deleted.length} deletions`,
          );
          assert.ok(r.polls >= 20, `${what}: polled ${r.polls} times`);
          assert.deepEqual(r.missing, [], `${what}: the route was missing`);
          assert.deepEqual(r.deleted, [], `${what}: the route was deleted`);
        }
        const done = await flow.stop();
        flow = undefined;
        t.diagnostic(`flow: ${JSON.stringify(done)}`);
        assert.equal(done.client.error, null, "no reset or error at the client");
        assert.equal(done.server.error, null, "no reset or error at the server");
        assert.equal(done.client.echoed, done.client.sent, "every byte came back");
        assert.equal(done.server.received, done.client.sent, "the server got every byte");
      } finally {
        flow?.kill();
        await Promise.all(watches.map((x) => x.watch.stop()));
        await deleteResource(lab, "GlobalNetworkPolicy", "e2e-flow");
      }
    });

    it("announces every block a host claims, also a second one next to its first", async () => {
      // Blocks of 4 addresses, the lab's pool closed to new allocations: the
      // fifth workload on h3 makes it claim a second block, usually the next
      // one. Each claim reconfigures h3's BIRD with one more prefix to export.
      const pool = await getResource(lab, "IPPool", "default-ipv4-ippool");
      const poolSpec = pool.spec as Record<string, unknown>;
      await applyResources(lab, [
        {
          apiVersion: "projectcalico.org/v3",
          kind: "IPPool",
          metadata: { name: "e2e-small-blocks" },
          spec: { cidr: "10.66.0.0/16", blockSize: 30, nodeSelector: "all()" },
        },
        { ...pool, spec: { ...poolSpec, disabled: true } },
      ]);
      try {
        const h1 = host(w.client.host);
        const h3 = host(w.other.host);
        const added: WorkloadRecord[] = [];
        for (let i = 0; i < 5; i++) {
          added.push(await labAddWorkload(env!.name, h3.name, { stateRoot: env!.root }));
        }
        const blocks = [...new Set(await Promise.all(added.map((a) => blockOf(h3, ip(a)))))];
        assert.ok(blocks.length >= 2, `h3 claimed a second block: ${blocks.join(", ")}`);
        for (const block of blocks) {
          const route = await waitFor(
            `${h1.name}: route to ${h3.name}'s block ${block}`,
            async () => {
              const [r] = await kernelRoutes(h1.ns, block);
              return r === undefined ? `no route (h3's blocks: ${blocks.join(", ")})` : r;
            },
            { timeoutMs: 10_000 },
          );
          assert.deepEqual(nextHops(route), [hostAddress(h3)]);
        }
        await expectMatrix(
          added.map((a) => ({
            from: w.client.ns,
            target: { proto: "icmp", addr: ip(a) },
            allowed: true,
          })),
        );
      } finally {
        await applyResources(lab, [pool]);
      }
    });
  },
);
