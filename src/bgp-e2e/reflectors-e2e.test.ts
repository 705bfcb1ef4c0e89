// BGP end to end through route reflectors, the node-to-node mesh off: the
// lab's reflectors topology (h1 and h2 are reflectors, cluster 244.0.0.1;
// every host peers with both through one BGPPeer with a peerSelector), each
// host with its agent and BIRD. One lab for every assertion in this file.
//
//        fab1 (FRR) ── plain1
//          │ br0 10.1.1.0/24
//   ┌──────┬──────┬──────┐
//   h1 RR  h2 RR  h3     h4         AS 64512, no mesh
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { labUp } from "../lab/lab.js";
import type { LabInfo } from "../lab/lab.js";
import { run } from "../lab/lab-os.js";
import { checkMatrix, formatMatrix } from "../netcheck/netcheck.js";
import {
  birdPeers,
  blockOf,
  e2eUnavailable,
  getResource,
  hostAddress,
  kernelRoutes,
  nextHops,
  pathsOf,
  testLab,
  waitFor,
} from "./e2e-kit.js";

const skip = e2eUnavailable();

describe("BGP through two route reflectors, mesh off (lab reflectors: 4 hosts)", { skip }, () => {
  let env: ReturnType<typeof testLab> | undefined;
  let lab: LabInfo;

  before(async () => {
    env = testLab();
    lab = await labUp(
      { name: env.name, topology: "reflectors", hosts: 4, workloadsPerHost: 1 },
      { stateRoot: env.root, timeoutMs: 60_000 },
    );
  });

  after(async () => {
    await env?.remove();
  });

  it("has the mesh off, and clients peer with the two reflectors and no other host", async () => {
    const config = await getResource(lab, "BGPConfiguration", "default");
    assert.equal((config.spec as { nodeToNodeMeshEnabled?: boolean }).nodeToNodeMeshEnabled, false);
    const reflectors = lab.plan.hosts.filter((h) => h.routeReflector);
    assert.deepEqual(
      reflectors.map((h) => h.name),
      ["h1", "h2"],
    );
    const hostAddresses = new Set(lab.plan.hosts.map(hostAddress));
    const paths = pathsOf(lab);
    for (const h of lab.plan.hosts) {
      const peers = await birdPeers(paths, h);
      const withHosts = peers.filter(
        (p) => p.neighbor !== undefined && hostAddresses.has(p.neighbor),
      );
      const want = lab.plan.hosts
        .filter((x) => x !== h && (h.routeReflector || x.routeReflector))
        .map(hostAddress)
        .sort();
      assert.deepEqual(
        withHosts.map((p) => p.neighbor).sort(),
        want,
        `${h.name} peers with ${h.routeReflector ? "every other host" : "the reflectors only"}`,
      );
      assert.ok(
        withHosts.every((p) => p.established),
        `${h.name}: ${JSON.stringify(withHosts)}`,
      );
    }
  });

  it("every host learns every other host's block, next hop the owner, reflected to clients", async () => {
    const paths = pathsOf(lab);
    const reflectorAddresses = lab.plan.hosts.filter((h) => h.routeReflector).map(hostAddress);
    for (const w of lab.workloads) {
      const owner = lab.plan.hosts.find((h) => h.name === w.host);
      assert.ok(owner && w.ipv4 !== undefined);
      const block = await blockOf(owner, w.ipv4);
      for (const h of lab.plan.hosts.filter((x) => x !== owner)) {
        const route = await waitFor(`${h.name}: route to ${block}`, async () => {
          const [r] = await kernelRoutes(h.ns, block);
          return r === undefined ? "no route" : r;
        });
        assert.equal(route.protocol, "bird");
        // Reflection keeps the originator as next hop: traffic goes straight to the owner.
        assert.deepEqual(nextHops(route), [hostAddress(owner)], `${h.name} → ${block}`);
        if (h.routeReflector || owner.routeReflector) continue;
        // Client to client: only a reflector can have passed it on.
        const bird = await run(
          "birdc",
          ["-s", `${paths.bird(h.name)}/bird.ctl`, "show", "route", "for", block, "all"],
          { timeoutMs: 5000 },
        );
        const from = [...bird.stdout.matchAll(/ from (\S+)\]/g)].map((m) => m[1]);
        assert.ok(from.length > 0, `${h.name}: BIRD has ${block}:\n${bird.stdout}`);
        assert.ok(
          from.every((a) => a !== undefined && reflectorAddresses.includes(a)),
          `${h.name} learned ${block} from the reflectors only:\n${bird.stdout}`,
        );
        assert.match(bird.stdout, /BGP\.cluster_list: 244\.0\.0\.1/);
        assert.match(
          bird.stdout,
          new RegExp(`BGP\\.originator_id: ${hostAddress(owner).replaceAll(".", "\\.")}`),
        );
      }
    }
  });

  it("workloads reach each other over the reflected routes", async () => {
    const cases = lab.workloads.flatMap((a) =>
      lab.workloads
        .filter((b) => b !== a)
        .map((b) => ({
          from: a.ns,
          target: { proto: "icmp" as const, addr: b.ipv4 ?? "" },
          allowed: true,
        })),
    );
    const report = await checkMatrix(cases, { attempts: 10, retryDelayMs: 250 });
    assert.deepEqual(report.mismatches, [], formatMatrix(report.results));
  });
});
