// BGP end to end through route reflectors across racks, the node-to-node
// mesh off: the lab's reflectors topology with 2 racks × 2 hosts. h1 (rack
// 1) and h3 (rack 2) are the reflectors (cluster 244.0.0.1); every host
// peers with both through one BGPPeer with a peerSelector, by multihop iBGP
// across the racks, and eBGP with its rack's ToR (which learns the blocks
// it must forward to, and whose copies hosts drop: they carry the hosts'
// own AS). Each host runs its agent and BIRD. One lab for every assertion.
//
//                    spine1 (FRR, AS 65001)
//                   ╱                      ╲
//        tor1 (AS 65101) 10.1.1.0/24   tor2 (AS 65102) 10.1.2.0/24 ── plain1
//          │         │                   │         │
//        h1 RR      h2                 h3 RR      h4         AS 64512, no mesh
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

describe(
  "BGP through two route reflectors in two racks, mesh off (lab reflectors: 2 racks × 2 hosts)",
  { skip },
  () => {
    let env: ReturnType<typeof testLab> | undefined;
    let lab: LabInfo;

    before(async () => {
      env = testLab();
      lab = await labUp(
        { name: env.name, topology: "reflectors", racks: 2, hosts: 4, workloadsPerHost: 1 },
        { stateRoot: env.root, timeoutMs: 60_000 },
      );
    });

    after(async () => {
      await env?.remove();
    });

    it("has the mesh off, a reflector in each rack, and clients peer with both and no other host", async () => {
      const config = await getResource(lab, "BGPConfiguration", "default");
      assert.equal(
        (config.spec as { nodeToNodeMeshEnabled?: boolean }).nodeToNodeMeshEnabled,
        false,
      );
      const reflectors = lab.plan.hosts.filter((h) => h.routeReflector);
      assert.deepEqual(
        reflectors.map((h) => [h.name, h.rack]),
        [
          ["h1", 1],
          ["h3", 2],
        ],
      );
      for (const h of reflectors) {
        const node = await getResource(lab, "Node", h.name);
        assert.equal(
          (node.spec as { bgp?: { routeReflectorClusterID?: string } }).bgp
            ?.routeReflectorClusterID,
          "244.0.0.1",
        );
      }
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

    it("every host learns every other host's block from hosts only, next hop the owner, reflected to clients", async () => {
      const paths = pathsOf(lab);
      const reflectorAddresses = lab.plan.hosts.filter((h) => h.routeReflector).map(hostAddress);
      const hostAddresses = lab.plan.hosts.map(hostAddress);
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
          // Reflection keeps the originator as BGP next hop; BIRD resolves it
          // recursively: the owner itself in the same rack, else through the
          // host's default route, its ToR.
          const via: string = h.rack === owner.rack ? hostAddress(owner) : h.gateway4;
          assert.deepEqual(nextHops(route), [via], `${h.name} → ${block}`);
          const bird = await run(
            "birdc",
            ["-s", `${paths.bird(h.name)}/bird.ctl`, "show", "route", "for", block, "all"],
            { timeoutMs: 5000 },
          );
          const from = [...bird.stdout.matchAll(/ from (\S+)\]/g)].map((m) => m[1]);
          assert.ok(from.length > 0, `${h.name}: BIRD has ${block}:\n${bird.stdout}`);
          // The ToR's copy carries AS 64512 in its path: only hosts' copies are taken.
          assert.ok(
            from.every((a) => a !== undefined && hostAddresses.includes(a)),
            `${h.name} learned ${block} from hosts only, never from its ToR:\n${bird.stdout}`,
          );
          const nextHop = [...bird.stdout.matchAll(/BGP\.next_hop: (\S+)/g)].map((m) => m[1]);
          assert.ok(
            nextHop.length > 0 && nextHop.every((a) => a === hostAddress(owner)),
            `${h.name}: BGP next hop of ${block} is its owner ${owner.name}:\n${bird.stdout}`,
          );
          if (h.routeReflector || owner.routeReflector) continue;
          // Client to client: only a reflector can have passed it on.
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

    it("workloads reach each other within and across racks; the plain machine reaches them all", async () => {
      const plain = lab.plan.plains[0];
      assert.ok(plain, "the lab has a plain machine");
      const sources = [...lab.workloads.map((w) => ({ ns: w.ns, name: w.name })), plain];
      const cases = sources.flatMap((a) =>
        lab.workloads
          .filter((b) => b.name !== a.name)
          .map((b) => ({
            from: a.ns,
            target: { proto: "icmp" as const, addr: b.ipv4 ?? "" },
            allowed: true,
          })),
      );
      const hostRack = new Map(lab.plan.hosts.map((h) => [h.name, h.rack]));
      const racks = new Set(lab.workloads.map((w) => hostRack.get(w.host)));
      assert.equal(racks.size, 2, "workloads in both racks");
      const report = await checkMatrix(cases, { attempts: 10, retryDelayMs: 250 });
      assert.deepEqual(report.mismatches, [], formatMatrix(report.results));
    });
  },
);
