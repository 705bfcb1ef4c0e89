// The dataplane manager over the fake drivers: what it writes, in what order,
// and what status it reports per endpoint.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Resource } from "../api/resource.js";
import { CalcGraph } from "../calc/calc-graph.js";
import type { CalcInput } from "../calc/calc-graph.js";
import { Random, randomCluster, randomEdit } from "../calc/testing/random-cluster.js";
import { namespaceProfile, transition, workload } from "../calc/testing/resources.js";
import { isErrorCode } from "../util/errors.js";
import { Dataplane } from "./dataplane.js";
import type { DataplaneSettings } from "./dataplane.js";
import { fakeNftKernel } from "./nft-driver.js";
import { diffRulesets } from "./nft-listing.js";
import { renderFullTransaction, renderRuleset } from "./render-nft.js";
import { fakeRouteTable } from "./route-driver.js";
import { fakeSysctls } from "./sysctl-driver.js";

const SETTINGS: DataplaneSettings = {
  render: {
    interfacePrefix: "tw",
    defaultEndpointToHostAction: "Drop",
    failsafeInbound: [],
    failsafeOutbound: [],
    natOutgoingPools: [],
    allPools: [],
    logPrefix: "twill-packet",
  },
  routeProtocol: 116,
  ipv6: true,
  forwarding: true,
  allowSourceSpoofing: false,
  routeSyncDisabled: false,
};

function ifaceOf(r: Resource): string {
  return (r.spec as { interfaceName: string }).interfaceName;
}

function setup() {
  const nft = fakeNftKernel();
  const routes = fakeRouteTable();
  const sysctls = fakeSysctls();
  const up = (name: string) => routes.links.get(name) === true;
  const dp = new Dataplane({ nft, routes, sysctls, isUp: up }, SETTINGS);
  const calc = new CalcGraph({ hostname: "node-1" });
  /** Bring an interface into being, as the CNI plugin (or the test) would. */
  const link = (name: string, isUp = true) => {
    routes.setLink(name, isUp);
    if (!sysctls.values.has(`net/ipv4/conf/${name}/proxy_arp`)) sysctls.addInterface(name);
    dp.onLinkChange(name, { name, index: 1, up: isUp });
  };
  const feed = (inputs: CalcInput[]) => {
    calc.onUpdates(inputs);
    dp.onMessages(calc.flush());
  };
  return { nft, routes, sysctls, dp, link, feed };
}

const A = workload({ namespace: "ns", pod: "a", node: "node-1", ips: ["10.65.0.1", "fd00::1"] });
const B = workload({ namespace: "ns", pod: "b", node: "node-1", ips: ["10.65.0.2"] });
const put = (resource: Resource): CalcInput => ({ type: "put", resource });

describe("dataplane manager", () => {
  it("writes nothing and refuses to apply before the calc's in-sync", async () => {
    const t = setup();
    t.feed([put(namespaceProfile("ns")), put(A)]);
    assert.equal(t.dp.inSync, false);
    await assert.rejects(t.dp.apply(), (e: unknown) => isErrorCode(e, "Internal"));
    assert.equal(t.nft.table, undefined);
    assert.deepEqual(t.routes.dump(), []);
    assert.deepEqual(t.sysctls.writes, []);
  });

  it("programs policy, sysctls and routes once in sync, and reports each endpoint", async () => {
    const t = setup();
    t.link(ifaceOf(A));
    t.feed([put(namespaceProfile("ns")), put(A), put(B), { type: "status", status: "in-sync" }]);
    const r = await t.dp.apply();
    assert.equal(r.nft.wrote, "full");
    assert.deepEqual(t.routes.dump(), [
      `10.65.0.1/32 dev ${ifaceOf(A)} proto 116`,
      `fd00::1/128 dev ${ifaceOf(A)} proto 116`,
    ]);
    assert.equal(t.sysctls.values.get(`net/ipv4/conf/${ifaceOf(A)}/proxy_arp`), "1");
    assert.equal(t.sysctls.values.get("net/ipv4/ip_forward"), "1");
    const status = (r: Resource) => t.dp.endpointStatus.get(`workload/ns/${r.metadata.name}`);
    assert.equal(status(A)?.state, "programmed");
    assert.equal(status(B)?.state, "pending");
    assert.match(status(B)?.message ?? "", /not up/);
    assert.equal(t.dp.dirty, false);
    const written = t.nft.scripts.length;

    // B's veth appears after its endpoint: sysctls and route follow, no nft write.
    t.link(ifaceOf(B));
    assert.equal(t.dp.dirty, true);
    const r2 = await t.dp.apply();
    assert.equal(r2.nft.wrote, "nothing");
    assert.equal(status(B)?.state, "programmed");
    assert.ok(t.routes.dump().includes(`10.65.0.2/32 dev ${ifaceOf(B)} proto 116`));
    assert.equal(t.nft.scripts.length, written);
  });

  it("removes the route of an endpoint that is gone, by a delta", async () => {
    const t = setup();
    t.link(ifaceOf(A));
    t.link(ifaceOf(B));
    t.feed([put(namespaceProfile("ns")), put(A), put(B), { type: "status", status: "in-sync" }]);
    await t.dp.apply();
    t.feed([
      { type: "delete", kind: { id: "WorkloadEndpoint" }, name: B.metadata.name, namespace: "ns" },
    ]);
    const r = await t.dp.apply();
    assert.equal(r.nft.wrote, "delta");
    assert.ok(!t.routes.dump().some((x) => x.includes(ifaceOf(B))));
    assert.equal(t.dp.endpointStatus.has(`workload/ns/${B.metadata.name}`), false);
  });

  it("when nftables refuses, touches no route or sysctl and stays dirty", async () => {
    const t = setup();
    t.link(ifaceOf(A));
    t.feed([put(namespaceProfile("ns")), put(A), { type: "status", status: "in-sync" }]);
    t.nft.failNext(1, "nft: Could not process rule");
    await assert.rejects(t.dp.apply(), /Could not process rule/);
    assert.deepEqual(t.routes.dump(), []);
    assert.deepEqual(t.sysctls.writes, []);
    assert.equal(t.dp.dirty, true);
    await t.dp.apply();
    assert.equal(t.routes.dump().length, 2);
  });

  it("once the table is in place, writes routes along with nft: a refused transaction leaves the new interface dropped", async () => {
    const t = setup();
    t.link(ifaceOf(A));
    t.link(ifaceOf(B));
    t.feed([put(namespaceProfile("ns")), put(A), { type: "status", status: "in-sync" }]);
    await t.dp.apply();
    t.feed([put(B)]);
    t.nft.failNext(1, "nft: Could not process rule");
    await assert.rejects(t.dp.apply(), /Could not process rule/);
    // The route went in while nft worked; B's interface is in no verdict map,
    // so the table's fail-closed rule drops its traffic.
    assert.ok(t.routes.dump().includes(`10.65.0.2/32 dev ${ifaceOf(B)} proto 116`));
    const table = t.nft.table;
    assert.ok(table);
    assert.equal(table.maps.get("from-wl")?.elements.has(ifaceOf(B)), false);
    assert.ok(table.chains.get("from-wl-dispatch")?.some((r) => /iifname "tw\*" drop/.test(r)));
    assert.notEqual(t.dp.endpointStatus.get(`workload/ns/${B.metadata.name}`)?.state, "programmed");
    assert.equal(t.dp.dirty, true);
    // After a failure the next apply reads back first, and then B is programmed.
    await t.dp.apply();
    assert.equal(t.dp.endpointStatus.get(`workload/ns/${B.metadata.name}`)?.state, "programmed");
    assert.equal(t.nft.table?.maps.get("from-wl")?.elements.has(ifaceOf(B)), true);
  });

  it("reports an endpoint whose interface another endpoint holds as an error", async () => {
    const t = setup();
    const twin = workload({ namespace: "ns", pod: "twin", node: "node-1", ips: ["10.65.0.9"] });
    (twin.spec as { interfaceName: string }).interfaceName = ifaceOf(A);
    t.link(ifaceOf(A));
    t.feed([put(namespaceProfile("ns")), put(A), put(twin), { type: "status", status: "in-sync" }]);
    await t.dp.apply();
    const states = [...t.dp.endpointStatus.values()].map((s) => s.state).sort();
    assert.deepEqual(states, ["error", "programmed"]);
    const err = [...t.dp.endpointStatus.values()].find((s) => s.state === "error");
    assert.match(err?.message ?? "", /already used by endpoint/);
  });

  it("with routeSyncDisabled programs policy but no routes", async () => {
    const t = setup();
    t.dp.configure({ ...SETTINGS, routeSyncDisabled: true });
    t.link(ifaceOf(A));
    t.feed([put(namespaceProfile("ns")), put(A), { type: "status", status: "in-sync" }]);
    await t.dp.apply();
    assert.deepEqual(t.routes.dump(), []);
    assert.equal(t.dp.endpointStatus.get(`workload/ns/${A.metadata.name}`)?.state, "programmed");
  });

  it("a new config re-renders the ruleset", async () => {
    const t = setup();
    t.link(ifaceOf(A));
    t.feed([put(namespaceProfile("ns")), put(A), { type: "status", status: "in-sync" }]);
    await t.dp.apply();
    t.dp.configure({
      ...SETTINGS,
      render: { ...SETTINGS.render, defaultEndpointToHostAction: "Accept" },
    });
    const r = await t.dp.apply();
    assert.equal(r.nft.wrote, "delta");
    assert.match(t.nft.scripts.at(-1) ?? "", /wl-to-host/);
  });
});

describe("dataplane manager: workload source spoofing", () => {
  const spoofer = workload({ namespace: "ns", pod: "s", node: "node-1", ips: ["10.65.0.5"] });
  (spoofer.spec as { allowSpoofedSourcePrefixes?: string[] }).allowSpoofedSourcePrefixes = [
    "192.0.2.0/24",
  ];

  for (const allow of [false, true]) {
    it(`${allow ? "honours" : "ignores"} allowSpoofedSourcePrefixes when spoofing is ${allow ? "allowed" : "disabled"}`, async () => {
      const t = setup();
      t.dp.configure({ ...SETTINGS, allowSourceSpoofing: allow });
      t.link(ifaceOf(spoofer));
      t.feed([put(namespaceProfile("ns")), put(spoofer), { type: "status", status: "in-sync" }]);
      await t.dp.apply();
      const text = t.nft.scripts.join("\n");
      assert.equal(text.includes("192.0.2.0/24"), allow);
      assert.equal(
        t.sysctls.values.get(`net/ipv4/conf/${ifaceOf(spoofer)}/rp_filter`),
        allow ? "0" : "1",
      );
    });
  }
});

describe("dataplane manager: rendering change by change", () => {
  it("keeps the kernel at what a fresh rendering of the state gives, through edits and new settings", async () => {
    for (const seed of [5, 9, 12]) {
      const t = setup();
      const r = new Random(seed);
      let resources: readonly Resource[] = randomCluster(r);
      // Every local workload may spoof 192.0.2.0/24: it shows when allowed.
      const spoofing = (rs: readonly Resource[]) =>
        rs.map((x) =>
          x.kind === "WorkloadEndpoint"
            ? {
                ...x,
                spec: { ...(x.spec as object), allowSpoofedSourcePrefixes: ["192.0.2.0/24"] },
              }
            : x,
        );
      resources = spoofing(resources);
      t.feed([...transition([], resources), { type: "status", status: "in-sync" }]);
      let settings = SETTINGS;
      let spoofed = false;
      for (let step = 0; step < 15; step++) {
        if (step % 5 === 4) {
          settings = { ...settings, allowSourceSpoofing: !settings.allowSourceSpoofing };
          t.dp.configure(settings);
        }
        if (step === 7) {
          settings = { ...settings, render: { ...settings.render, logPrefix: "other" } };
          t.dp.configure(settings);
        }
        await t.dp.apply();
        const desired = t.dp.desired;
        const seen = settings.allowSourceSpoofing
          ? desired
          : {
              ...desired,
              endpoints: new Map(
                [...desired.endpoints].map(([id, ep]) => [
                  id,
                  { ...ep, allowSpoofedSourcePrefixes: [] },
                ]),
              ),
            };
        const fresh = renderRuleset(seen, settings.render);
        assert.deepEqual(diffRulesets(t.nft.table!, fresh), [], `seed ${seed} step ${step}`);
        const workloads = [...desired.endpoints.values()].some((ep) => ep.kind === "workload");
        const text = renderFullTransaction(t.nft.table!);
        assert.equal(text.includes("192.0.2.0/24"), workloads && settings.allowSourceSpoofing);
        spoofed ||= workloads && settings.allowSourceSpoofing;
        const next = spoofing(randomEdit(r, resources, step));
        t.feed(transition(resources, next));
        resources = next;
      }
      assert.ok(spoofed, `seed ${seed}: some workload was allowed to spoof`);
    }
  });
});
