import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { validateResource } from "../api/validate.js";
import { isErrorCode } from "../util/errors.js";
import { labResources } from "./lab-resources.js";
import { renderFrr } from "./render-frr.js";
import { renderConfigure, renderCreate } from "./render-ip-batch.js";
import { labOfNamespace, planLab, planWorkload, rackSizes, resolveLabOptions } from "./topology.js";
import type { LabOptions, LabPlan } from "./topology.js";

const plan = (input: Partial<LabOptions>): LabPlan => planLab(resolveLabOptions(input));

function shorts(p: LabPlan): string[] {
  return p.namespaces.map((n) => n.short);
}

function peersOf(p: LabPlan): Record<string, unknown>[] {
  return labResources(p)
    .filter((r) => r.kind === "BGPPeer")
    .map((r) => ({ name: r.metadata.name, ...(r.spec as Record<string, unknown>) }));
}

describe("resolveLabOptions", () => {
  it("defaults to the demo: leaf-spine, 2 racks, 4 hosts, 2 workloads each", () => {
    assert.deepEqual(resolveLabOptions(), {
      name: "lab",
      topology: "leaf-spine",
      hosts: 4,
      racks: 2,
      workloadsPerHost: 2,
      etcd: 1,
      ipv6: false,
      sites: 1,
    });
    assert.equal(resolveLabOptions({ topology: "flat" }).hosts, 3);
    assert.equal(resolveLabOptions({ topology: "flat" }).racks, 1);
  });

  const rejected: [string, Partial<LabOptions>, RegExp][] = [
    ["a name with a dash (it would make one lab's prefix another's)", { name: "a-b" }, /name/],
    ["a name too long for namespace names", { name: "abcdefghijklm" }, /name/],
    ["racks in a flat lab", { topology: "flat", racks: 2 }, /racks/],
    [
      "more racks than hosts with reflectors",
      { topology: "reflectors", hosts: 2, racks: 3 },
      /racks/,
    ],
    ["more racks than hosts", { hosts: 2, racks: 3 }, /racks/],
    ["zero hosts", { hosts: 0 }, /hosts/],
    ["a fraction of a host", { hosts: 2.5 }, /hosts/],
    ["two etcd members", { etcd: 2 as 1 }, /etcd/],
    ["three sites", { sites: 3 as 1 }, /sites/],
    ["too many hosts in all", { hosts: 300, racks: 2, sites: 2 }, /hosts/],
    ["an unknown topology", { topology: "ring" as "flat" }, /topology/],
  ];
  for (const [what, input, field] of rejected) {
    it(`rejects ${what}`, () => {
      assert.throws(
        () => resolveLabOptions(input),
        (err) => isErrorCode(err, "Invalid") && field.test(err.message),
      );
    });
  }
});

describe("planLab", () => {
  it("names every namespace twl-<lab>-<short> and keeps interface names short", () => {
    for (const topology of ["flat", "reflectors", "leaf-spine"] as const) {
      const p = plan({ name: "abcdefghijkl", topology, hosts: 12, ipv6: true, sites: 2 });
      for (const ns of p.namespaces) {
        assert.equal(ns.name, `twl-abcdefghijkl-${ns.short}`);
        assert.equal(labOfNamespace(ns.name), "abcdefghijkl");
        for (const i of [...ns.interfaces, ...ns.bridges]) {
          assert.ok(i.name.length <= 15, `${ns.short}: ${i.name}`);
        }
      }
      for (const w of p.workloads) assert.equal(labOfNamespace(w.ns), "abcdefghijkl");
      assert.equal(new Set(shorts(p)).size, shorts(p).length, "namespace names are unique");
    }
  });

  it("builds a flat lab: one fabric segment with a router, mgmt, hosts, a plain machine", () => {
    const p = plan({ name: "t", topology: "flat", hosts: 3 });
    assert.deepEqual(shorts(p), ["mgmt", "fab1", "h1", "h2", "h3", "plain1"]);
    assert.deepEqual(
      p.hosts.map((h) => [h.name, h.ipv4, h.mgmt, h.asNumber, h.gateway4]),
      [
        ["h1", "10.1.1.11/24", "172.30.1.1/16", 64512, "10.1.1.1"],
        ["h2", "10.1.1.12/24", "172.30.1.2/16", 64512, "10.1.1.1"],
        ["h3", "10.1.1.13/24", "172.30.1.3/16", 64512, "10.1.1.1"],
      ],
    );
    assert.deepEqual(p.etcdEndpoints, ["http://172.30.0.11:2379"]);
    const fab = p.routers.find((r) => r.name === "fab1");
    assert.deepEqual(
      fab?.neighbors.map((n) => [n.address, n.asNumber]),
      [
        ["10.1.1.11", 64512],
        ["10.1.1.12", 64512],
        ["10.1.1.13", 64512],
      ],
    );
    assert.deepEqual(p.plains, [
      {
        name: "plain1",
        ns: "twl-t-plain1",
        site: 1,
        ipv4: "10.1.200.10/24",
        ipv6: undefined,
        router: "fab1",
      },
    ]);
    assert.deepEqual(
      p.workloads.map((w) => [w.name, w.host, w.labels["tenant"]]),
      [
        ["h1w1", "h1", "a"],
        ["h1w2", "h1", "b"],
        ["h2w1", "h2", "a"],
        ["h2w2", "h2", "b"],
        ["h3w1", "h3", "a"],
        ["h3w2", "h3", "b"],
      ],
    );
  });

  it("gives each leaf-spine host its own AS and peers it with its rack's ToR", () => {
    const p = plan({ name: "t", topology: "leaf-spine", hosts: 5, racks: 2 });
    assert.deepEqual(shorts(p), [
      "mgmt",
      "spine1",
      "tor1",
      "h1",
      "h2",
      "h3",
      "tor2",
      "h4",
      "h5",
      "plain1",
    ]);
    assert.deepEqual(
      p.hosts.map((h) => [h.name, h.rack, h.ipv4, h.asNumber, h.labels["rack"]]),
      [
        ["h1", 1, "10.1.1.11/24", 64513, "rack1"],
        ["h2", 1, "10.1.1.12/24", 64514, "rack1"],
        ["h3", 1, "10.1.1.13/24", 64515, "rack1"],
        ["h4", 2, "10.1.2.11/24", 64516, "rack2"],
        ["h5", 2, "10.1.2.12/24", 64517, "rack2"],
      ],
    );
    const byName = new Map(p.routers.map((r) => [r.name, r]));
    assert.deepEqual(
      byName.get("tor2")?.neighbors.map((n) => [n.description, n.address, n.asNumber]),
      [
        ["spine1", "10.1.102.1", 65001],
        ["h4", "10.1.2.11", 64516],
        ["h5", "10.1.2.12", 64517],
      ],
    );
    assert.deepEqual(
      byName.get("spine1")?.neighbors.map((n) => [n.description, n.address, n.asNumber]),
      [
        ["tor1", "10.1.101.2", 65101],
        ["tor2", "10.1.102.2", 65102],
      ],
    );
    assert.equal(p.plains[0]?.router, "tor2");
    assert.deepEqual(
      peersOf(p).map((x) => [x["name"], x["nodeSelector"], x["peerIP"], x["asNumber"]]),
      [
        ["lab-rack1-tor", "rack == 'rack1'", "10.1.1.1", 65101],
        ["lab-rack2-tor", "rack == 'rack2'", "10.1.2.1", 65102],
      ],
    );
  });

  it("makes the first two hosts of each site reflectors; every host peers with the router", () => {
    const p = plan({ name: "t", topology: "reflectors", hosts: 4, sites: 2 });
    assert.deepEqual(
      p.hosts.map((h) => [h.name, h.site, h.routeReflector, h.asNumber]),
      [
        ["h1", 1, true, 64512],
        ["h2", 1, true, 64512],
        ["h3", 1, false, 64512],
        ["h4", 1, false, 64512],
        ["h5", 2, true, 64513],
        ["h6", 2, true, 64513],
        ["h7", 2, false, 64513],
        ["h8", 2, false, 64513],
      ],
    );
    const nodes = labResources(p).filter((r) => r.kind === "Node");
    const rr = nodes.find((n) => n.metadata.name === "h5");
    assert.deepEqual(rr?.metadata.labels, { site: "site2", "route-reflector": "true" });
    assert.equal(
      (rr?.spec as { bgp: { routeReflectorClusterID: string } }).bgp.routeReflectorClusterID,
      "244.0.0.2",
    );
    assert.deepEqual(
      p.routers.find((r) => r.name === "fab2")?.neighbors.map((n) => n.description),
      ["h5", "h6", "h7", "h8", "fab1"],
    );
    const cfg = labResources(p).find((r) => r.kind === "BGPConfiguration");
    assert.equal((cfg?.spec as { nodeToNodeMeshEnabled: boolean }).nodeToNodeMeshEnabled, false);
    assert.deepEqual(
      peersOf(p).map((x) => [x["name"], x["nodeSelector"], x["peerSelector"], x["peerIP"]]),
      [
        [
          "lab-site1-reflectors",
          "site == 'site1'",
          "site == 'site1' && has(route-reflector)",
          undefined,
        ],
        ["lab-site1-fabric-router", "site == 'site1'", undefined, "10.1.1.1"],
        [
          "lab-site2-reflectors",
          "site == 'site2'",
          "site == 'site2' && has(route-reflector)",
          undefined,
        ],
        ["lab-site2-fabric-router", "site == 'site2'", undefined, "10.2.1.1"],
      ],
    );
  });

  it("puts reflectors with racks behind ToRs and a spine, a reflector in each of the first two racks", () => {
    assert.deepEqual(resolveLabOptions({ topology: "reflectors", racks: 2 }).hosts, 4);
    const p = plan({ name: "t", topology: "reflectors", racks: 3, hosts: 5 });
    assert.deepEqual(shorts(p), [
      "mgmt",
      "spine1",
      "tor1",
      "h1",
      "h2",
      "tor2",
      "h3",
      "h4",
      "tor3",
      "h5",
      "plain1",
    ]);
    assert.deepEqual(
      p.hosts.map((h) => [h.name, h.rack, h.ipv4, h.asNumber, h.routeReflector, h.gateway4]),
      [
        ["h1", 1, "10.1.1.11/24", 64512, true, "10.1.1.1"],
        ["h2", 1, "10.1.1.12/24", 64512, false, "10.1.1.1"],
        ["h3", 2, "10.1.2.11/24", 64512, true, "10.1.2.1"],
        ["h4", 2, "10.1.2.12/24", 64512, false, "10.1.2.1"],
        ["h5", 3, "10.1.3.11/24", 64512, false, "10.1.3.1"],
      ],
    );
    const byName = new Map(p.routers.map((r) => [r.name, r]));
    assert.deepEqual(
      p.routers.map((r) => [r.name, r.role, r.asNumber]),
      [
        ["spine1", "spine", 65001],
        ["tor1", "tor", 65101],
        ["tor2", "tor", 65102],
        ["tor3", "tor", 65103],
      ],
    );
    // Each ToR peers eBGP with the spine and its own hosts only (they announce
    // their blocks, so the routers can forward); hosts peer iBGP across racks.
    assert.deepEqual(
      byName.get("tor2")?.neighbors.map((n) => [n.description, n.address, n.asNumber]),
      [
        ["spine1", "10.1.102.1", 65001],
        ["h3", "10.1.2.11", 64512],
        ["h4", "10.1.2.12", 64512],
      ],
    );
    assert.equal(p.plains[0]?.router, "tor3");
    const nodes = labResources(p).filter((r) => r.kind === "Node");
    const h3 = nodes.find((n) => n.metadata.name === "h3");
    assert.deepEqual(h3?.metadata.labels, {
      site: "site1",
      rack: "rack2",
      "route-reflector": "true",
    });
    assert.equal(
      (h3?.spec as { bgp: { routeReflectorClusterID: string } }).bgp.routeReflectorClusterID,
      "244.0.0.1",
    );
    const cfg = labResources(p).find((r) => r.kind === "BGPConfiguration");
    assert.equal((cfg?.spec as { nodeToNodeMeshEnabled: boolean }).nodeToNodeMeshEnabled, false);
    assert.deepEqual(
      peersOf(p).map((x) => [
        x["name"],
        x["nodeSelector"],
        x["peerSelector"],
        x["peerIP"],
        x["asNumber"],
      ]),
      [
        [
          "lab-site1-reflectors",
          "site == 'site1'",
          "site == 'site1' && has(route-reflector)",
          undefined,
          undefined,
        ],
        ["lab-rack1-tor", "rack == 'rack1'", undefined, "10.1.1.1", 65101],
        ["lab-rack2-tor", "rack == 'rack2'", undefined, "10.1.2.1", 65102],
        ["lab-rack3-tor", "rack == 'rack3'", undefined, "10.1.3.1", 65103],
      ],
    );
  });

  it("numbers racks across sites for reflectors, a reflector pair per site", () => {
    const p = plan({ name: "t", topology: "reflectors", racks: 2, hosts: 2, sites: 2 });
    assert.deepEqual(
      p.hosts.map((h) => [h.name, h.site, h.rack, h.asNumber, h.routeReflector]),
      [
        ["h1", 1, 1, 64512, true],
        ["h2", 1, 2, 64512, true],
        ["h3", 2, 3, 64513, true],
        ["h4", 2, 4, 64513, true],
      ],
    );
    assert.deepEqual(
      p.routers.map((r) => r.name),
      ["spine1", "tor1", "tor2", "spine2", "tor3", "tor4"],
    );
    assert.deepEqual(
      peersOf(p).map((x) => x["name"]),
      [
        "lab-site1-reflectors",
        "lab-rack1-tor",
        "lab-rack2-tor",
        "lab-site2-reflectors",
        "lab-rack3-tor",
        "lab-rack4-tor",
      ],
    );
  });

  it("keeps one-rack reflectors as they were: one segment, fab1, no rack label", () => {
    const p = plan({ name: "t", topology: "reflectors", racks: 1, hosts: 3 });
    assert.deepEqual(shorts(p), ["mgmt", "fab1", "h1", "h2", "h3", "plain1"]);
    assert.deepEqual(
      p.hosts.map((h) => [h.rack, h.labels["rack"], h.routeReflector]),
      [
        [undefined, undefined, true],
        [undefined, undefined, true],
        [undefined, undefined, false],
      ],
    );
  });

  it("keeps the mesh for one flat site, and meshes per site for two", () => {
    const one = labResources(plan({ name: "t", topology: "flat" }));
    const mesh = (rs: typeof one): unknown =>
      (rs.find((r) => r.kind === "BGPConfiguration")?.spec as Record<string, unknown>)[
        "nodeToNodeMeshEnabled"
      ];
    assert.equal(mesh(one), true);
    assert.deepEqual(
      peersOf(plan({ name: "t", topology: "flat" })).map((x) => x["name"]),
      ["lab-fabric-router"],
    );
    const two = plan({ name: "t", topology: "flat", sites: 2, hosts: 2 });
    assert.equal(mesh(labResources(two)), false);
    assert.deepEqual(
      peersOf(two).map((x) => [x["name"], x["nodeSelector"], x["peerSelector"]]),
      [
        ["lab-site1-mesh", "site == 'site1'", "site == 'site1'"],
        ["lab-site1-fabric-router", "site == 'site1'", undefined],
        ["lab-site2-mesh", "site == 'site2'", "site == 'site2'"],
        ["lab-site2-fabric-router", "site == 'site2'", undefined],
      ],
    );
  });

  it("joins two sites only through their core routers", () => {
    const p = plan({ name: "t", topology: "leaf-spine", hosts: 2, racks: 1, sites: 2, ipv6: true });
    assert.deepEqual(shorts(p), [
      "mgmt",
      "spine1",
      "tor1",
      "h1",
      "h2",
      "plain1",
      "spine2",
      "tor2",
      "h3",
      "h4",
      "plain2",
    ]);
    const siteLinks = p.links.filter((l) => l.from.ifname === "site0");
    assert.deepEqual(siteLinks, [
      { from: { ns: "spine1", ifname: "site0" }, to: { ns: "spine2", ifname: "site0" } },
    ]);
    assert.deepEqual(
      p.routers.find((r) => r.name === "spine2")?.neighbors.map((n) => [n.description, n.address]),
      [
        ["tor2", "10.2.101.2"],
        ["tor2", "fd00:2:101::2"],
        ["spine1", "10.0.0.1"],
        ["spine1", "fd00::1"],
      ],
    );
    // Only routers link sites: no host, mgmt aside, has a link outside its site.
    const site = new Map(p.namespaces.map((n) => [n.short, n.site]));
    for (const l of p.links) {
      if (l.from.ns === "mgmt") continue;
      if (site.get(l.from.ns) !== site.get(l.to.ns)) assert.equal(l.from.ifname, "site0");
    }
  });

  it("gives every host a default route inside the lab (proxy ARP for 169.254.1.1 needs one)", () => {
    const p = plan({ name: "t", ipv6: true });
    for (const host of p.hosts) {
      const ns = p.namespaces.find((n) => n.short === host.name);
      assert.deepEqual(ns?.routes, [
        { to: "default", via: host.gateway4, dev: "fab0" },
        { to: "::/0", via: host.gateway6, dev: "fab0" },
      ]);
    }
    // Every router and the mgmt namespace have no default route: nothing leaves the lab.
    for (const ns of p.namespaces.filter((n) => n.role !== "host" && n.role !== "plain")) {
      assert.deepEqual(ns.routes, []);
    }
  });

  it("spreads hosts over racks evenly", () => {
    assert.deepEqual(rackSizes(5, 2), [3, 2]);
    assert.deepEqual(rackSizes(4, 4), [1, 1, 1, 1]);
    assert.deepEqual(rackSizes(7, 3), [3, 2, 2]);
  });

  it("plans added workloads with the next index and the given labels", () => {
    assert.deepEqual(planWorkload("t", "h2", 3, { app: "x" }), {
      name: "h2w3",
      ns: "twl-t-h2w3",
      host: "h2",
      labels: { app: "x" },
    });
    assert.deepEqual(planWorkload("t", "h2", 3).labels, { tenant: "a", app: "cache" });
  });
});

describe("labResources", () => {
  const shapes = [
    ["flat", 1],
    ["reflectors", 1],
    ["reflectors", 2],
    ["leaf-spine", 2],
  ] as const;
  for (const [topology, racks] of shapes) {
    for (const sites of [1, 2] as const) {
      it(`are all valid for ${topology} with ${racks} rack(s) and ${sites} site(s)`, () => {
        const p = plan({ name: "t", topology, racks, sites, ipv6: true, hosts: 4 });
        for (const r of labResources(p)) {
          const result = validateResource(r);
          assert.ok(
            result.ok,
            `${r.kind} ${r.metadata.name}: ${result.ok ? "" : JSON.stringify(result.errors)}`,
          );
        }
      });
    }
  }
});

describe("renderers", () => {
  it("creates each veth once, from the namespace that owns the bridge", () => {
    const p = plan({ name: "t", topology: "leaf-spine", hosts: 2, racks: 1 });
    const tor = p.namespaces.find((n) => n.short === "tor1");
    const host = p.namespaces.find((n) => n.short === "h1");
    assert.ok(tor && host);
    assert.equal(
      renderCreate(p, tor),
      [
        "link add br0 type bridge mcast_snooping 0",
        "link add h1 type veth peer name fab0 netns twl-t-h1",
        "link add h2 type veth peer name fab0 netns twl-t-h2",
        "link add plain0 type veth peer name eth0 netns twl-t-plain1",
        "",
      ].join("\n"),
    );
    assert.equal(renderCreate(p, host), "");
    assert.equal(
      renderConfigure(host),
      [
        "link set lo up",
        "addr add 172.30.1.1/16 dev mgmt0",
        "link set mgmt0 up",
        "addr add 10.1.1.11/24 dev fab0",
        "link set fab0 up",
        "route add default via 10.1.1.1 dev fab0",
        "",
      ].join("\n"),
    );
    const every = p.links.map((l) => `${l.from.ns}/${l.from.ifname}`);
    assert.equal(new Set(every).size, every.length);
  });

  it("renders a ToR's FRR config with its hosts and spine", () => {
    const p = plan({ name: "t", topology: "leaf-spine", hosts: 2, racks: 1, ipv6: true });
    const tor = p.routers.find((r) => r.name === "tor1");
    assert.ok(tor);
    const { bgpd, zebra } = renderFrr(tor, { logDir: "/x" });
    assert.match(zebra, /^frr defaults datacenter\nhostname tor1\n/);
    assert.equal(
      bgpd,
      [
        "frr defaults datacenter",
        "hostname tor1",
        "log file /x/bgpd.log informational",
        "!",
        "router bgp 65101",
        " bgp router-id 10.1.1.1",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " bgp bestpath as-path multipath-relax",
        " timers bgp 3 9",
        " neighbor 10.1.101.1 remote-as 65001",
        " neighbor 10.1.101.1 description spine1",
        " neighbor 10.1.101.1 timers connect 1",
        " neighbor fd00:1:101::1 remote-as 65001",
        " neighbor fd00:1:101::1 description spine1",
        " neighbor fd00:1:101::1 timers connect 1",
        " neighbor 10.1.1.11 remote-as 64513",
        " neighbor 10.1.1.11 description h1",
        " neighbor 10.1.1.11 timers connect 1",
        " neighbor fd00:1:1::11 remote-as 64513",
        " neighbor fd00:1:1::11 description h1",
        " neighbor fd00:1:1::11 timers connect 1",
        " neighbor 10.1.1.12 remote-as 64514",
        " neighbor 10.1.1.12 description h2",
        " neighbor 10.1.1.12 timers connect 1",
        " neighbor fd00:1:1::12 remote-as 64514",
        " neighbor fd00:1:1::12 description h2",
        " neighbor fd00:1:1::12 timers connect 1",
        " address-family ipv4 unicast",
        "  redistribute connected",
        "  maximum-paths 16",
        "  neighbor 10.1.101.1 activate",
        "  neighbor 10.1.1.11 activate",
        "  neighbor 10.1.1.12 activate",
        " exit-address-family",
        " address-family ipv6 unicast",
        "  redistribute connected",
        "  maximum-paths 16",
        "  neighbor fd00:1:101::1 activate",
        "  neighbor fd00:1:1::11 activate",
        "  neighbor fd00:1:1::12 activate",
        " exit-address-family",
        "!",
        "",
      ].join("\n"),
    );
  });
});
