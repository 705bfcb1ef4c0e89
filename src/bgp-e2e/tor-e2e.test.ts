// BGP end to end with routers twill does not configure: the lab's
// leaf-spine topology, FRR top-of-rack routers and a spine (Debian's FRR,
// configured by the lab as an operator would), eBGP from every host's BIRD
// to its ToR, and a plain namespace behind a ToR with no twill component at
// all. One lab for every assertion in this file.
//
//                spine1 (AS 65001)
//               /        \
//      tor1 (65101)      tor2 (65102) ── plain1 (10.1.200.10, nothing of twill)
//       /      \            |
//     h1        h2          h3          each host its own AS (64513..64515)
//     h1w1      h2w1        h3w1
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { labUp } from "../lab/lab.js";
import type { LabInfo } from "../lab/lab.js";
import { run } from "../lab/lab-os.js";
import type { RouterPlan } from "../lab/topology.js";
import { checkMatrix, formatMatrix, startResponder } from "../netcheck/netcheck.js";
import type { ResponderHandle } from "../netcheck/netcheck.js";
import {
  applyResources,
  blockOf,
  e2eUnavailable,
  getResource,
  hostAddress,
  kernelRoutes,
  nextHops,
  testLab,
  waitFor,
} from "./e2e-kit.js";

const skip = e2eUnavailable();
const PORT = 8080;
/** Announced by every host (BGPConfiguration serviceExternalIPs): anycast. */
const SERVICE_RANGE = "10.96.100.0/24";

describe(
  "BGP to routers twill does not configure (lab leaf-spine: FRR ToRs and spine, eBGP)",
  { skip },
  () => {
    let env: ReturnType<typeof testLab> | undefined;
    let lab: LabInfo;
    const responders: ResponderHandle[] = [];
    const router = (name: string): RouterPlan => {
      const r = lab.plan.routers.find((x) => x.name === name);
      assert.ok(r, `router ${name}`);
      return r;
    };

    before(async () => {
      env = testLab();
      lab = await labUp(
        { name: env.name, topology: "leaf-spine", hosts: 3, racks: 2, workloadsPerHost: 1 },
        { stateRoot: env.root, timeoutMs: 60_000 },
      );
      for (const w of lab.workloads) {
        responders.push(await startResponder(w.ns, { tcpPorts: [PORT], udpPorts: [] }));
      }
    });

    after(async () => {
      await Promise.all(responders.map((r) => r.stop()));
      await env?.remove();
    });

    it("ToRs learn each block of their rack from its host, and of other racks through the spine", async () => {
      assert.deepEqual(
        lab.plan.routers.map((r) => r.name),
        ["spine1", "tor1", "tor2"],
      );
      for (const w of lab.workloads) {
        const owner = lab.plan.hosts.find((h) => h.name === w.host);
        assert.ok(owner && w.ipv4 !== undefined);
        const block = await blockOf(owner, w.ipv4);
        for (const r of lab.plan.routers) {
          const [route] = await kernelRoutes(r.ns, block);
          assert.ok(route, `${r.name} has a route to ${block} (${w.name})`);
          assert.equal(route.protocol, "bgp", `${r.name} learned ${block} over BGP`);
          // Own rack: straight to the host. Other rack: towards the spine. Spine: the rack's ToR.
          const want: string =
            r.role === "spine"
              ? `10.1.${100 + (owner.rack ?? 0)}.2`
              : r.rack === owner.rack
                ? hostAddress(owner)
                : `10.1.${100 + (r.rack ?? 0)}.1`;
          assert.deepEqual(
            nextHops(route),
            [want],
            `${r.name} → ${block}: ${JSON.stringify(route)}`,
          );
        }
      }
    });

    it("a plain namespace behind a ToR, with no twill component, reaches every workload by plain routing", async () => {
      const plain = lab.plan.plains[0];
      assert.ok(plain);
      // Nothing of twill there: only its connected subnet and a default route, no nftables.
      const routes = await kernelRoutes(plain.ns);
      assert.deepEqual(
        routes.map((r) => r.dst).sort(),
        ["10.1.200.0/24", "default"],
        "plain1's routes",
      );
      const nft = await run("ip", ["netns", "exec", plain.ns, "nft", "list", "tables"]);
      assert.equal(nft.stdout.trim(), "", "plain1 has no nftables table");
      const report = await checkMatrix(
        lab.workloads.flatMap((w) => [
          {
            from: plain.ns,
            target: { proto: "tcp" as const, addr: w.ipv4 ?? "", port: PORT },
            allowed: true,
          },
          { from: plain.ns, target: { proto: "icmp" as const, addr: w.ipv4 ?? "" }, allowed: true },
        ]),
        { attempts: 10, retryDelayMs: 250 },
      );
      assert.deepEqual(report.mismatches, [], formatMatrix(report.results));
      // The responder saw plain1's own address: plain routing, no NAT anywhere.
      for (const r of report.results.filter((x) => x.target.proto === "tcp")) {
        assert.equal(r.outcome.seenAs, plain.ipv4.split("/")[0]);
      }
    });

    it("anycast: one address announced by two hosts of a rack is one ECMP route at their ToR", async () => {
      const current = await getResource(lab, "BGPConfiguration", "default");
      const spec = current.spec as Record<string, unknown>;
      await applyResources(lab, [
        { ...current, spec: { ...spec, serviceExternalIPs: [{ cidr: SERVICE_RANGE }] } },
      ]);
      try {
        const rack1 = lab.plan.hosts.filter((h) => h.rack === 1);
        assert.equal(rack1.length, 2);
        const want = rack1.map(hostAddress).sort();
        const route = await waitFor(
          `tor1: ECMP route to ${SERVICE_RANGE} via ${want.join(", ")}`,
          async () => {
            const [r] = await kernelRoutes(router("tor1").ns, SERVICE_RANGE);
            const hops = nextHops(r);
            return hops.join() === want.join() ? r : `next hops now [${hops.join(", ")}]`;
          },
        );
        assert.equal(route?.protocol, "bgp");
        // The spine sees the address behind both ToRs: ECMP again, one level up.
        const spineWant = ["10.1.101.2", "10.1.102.2"];
        await waitFor(`spine1: ECMP route to ${SERVICE_RANGE}`, async () => {
          const [r] = await kernelRoutes(router("spine1").ns, SERVICE_RANGE);
          const hops = nextHops(r);
          return hops.join() === spineWant.join() ? r : `next hops now [${hops.join(", ")}]`;
        });
        // Hosts do not take the range from their ToR: it is not inside an IP pool.
        for (const h of lab.plan.hosts) {
          assert.deepEqual(
            await kernelRoutes(h.ns, SERVICE_RANGE),
            [],
            `${h.name} has no route to the service range`,
          );
        }
      } finally {
        await applyResources(lab, [current]);
      }
      await waitFor(`tor1: ${SERVICE_RANGE} withdrawn`, async () =>
        (await kernelRoutes(router("tor1").ns, SERVICE_RANGE)).length === 0 ? true : "still there",
      );
    });
  },
);
