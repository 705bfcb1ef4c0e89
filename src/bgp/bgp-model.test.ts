// The model's semantics, case by case: who peers with whom, how, and what is
// announced and accepted. Calico's documented behaviour is the reference;
// twill's own choices (docs/bgp.md) are tested as such.
import { test } from "node:test";
import assert from "node:assert/strict";
import { isErrorCode } from "../util/errors.js";
import { buildBgpModel, DEFAULT_BGP_TIMERS, hashRouterId } from "./bgp-model.js";
import type { BgpModel, BgpSession } from "./bgp-model.js";
import type { BgpInputs } from "./bgp-inputs.js";
import { baseInputs, bgpConfig, node, peer, pool } from "./testdata/bgp-fixtures.js";

/** "name kind address:port as" per session, for compact comparisons. */
function brief(m: BgpModel): string[] {
  return m.sessions.map((s) => `${s.name} ${s.kind} ${s.peerAddress}:${s.port} as${s.peerAS}`);
}

function session(m: BgpModel, address: string): BgpSession {
  const s = m.sessions.find((x) => x.peerAddress === address);
  assert.ok(s, `no session to ${address} in ${brief(m).join(", ")}`);
  return s;
}

const rrNodes = [
  node("rr-1", { v4: "10.0.0.11/24", clusterId: "244.0.0.1", labels: { rr: "true" } }),
  node("rr-2", { v4: "10.0.0.12/24", clusterId: "244.0.0.1", labels: { rr: "true" } }),
  node("rr-9", { v4: "10.0.0.19/24", clusterId: "244.0.0.9", labels: { rr: "true" } }),
  node("host-1", { v4: "10.0.0.1/24" }),
  node("host-2", { v4: "10.0.0.2/24" }),
];
const rrPeer = peer("with-rr", { nodeSelector: "all()", peerSelector: "rr == 'true'" });
const meshOff = bgpConfig("default", { nodeToNodeMeshEnabled: false });

interface Case {
  name: string;
  inputs: BgpInputs;
  check(m: BgpModel): void;
}

const cases: Case[] = [
  {
    name: "the router ID is the node's IPv4 address and the AS the cluster default",
    inputs: baseInputs(),
    check(m) {
      assert.equal(m.routerId, "10.0.0.1");
      assert.equal(m.localAS, 64512);
      assert.equal(m.listenPort, 179);
      assert.equal(m.logSeverity, "Info");
      assert.equal(m.meshEnabled, true);
      assert.deepEqual(m.timers, DEFAULT_BGP_TIMERS);
    },
  },
  {
    name: "a node's own AS number wins over BGPConfiguration's, which wins over 64512",
    inputs: baseInputs({
      nodes: [
        node("host-1", { v4: "10.0.0.1/24", as: 65001 }),
        node("host-2", { v4: "10.0.0.2/24" }),
      ],
      bgpConfigurations: [bgpConfig("default", { asNumber: 64999 })],
    }),
    check(m) {
      assert.equal(m.localAS, 65001);
      assert.equal(session(m, "10.0.0.2").peerAS, 64999);
      assert.equal(session(m, "10.0.0.2").localAS, 65001);
    },
  },
  {
    name: "an IPv6-only node gets a router ID derived from its name",
    inputs: baseInputs({
      nodes: [node("host-1", { v6: "fd00::1/64" }), node("host-2", { v6: "fd00::2/64" })],
      ownBlocks: [],
      localWorkloadAddresses: [],
    }),
    check(m) {
      assert.equal(m.routerId, hashRouterId("host-1"));
      assert.match(m.routerId, /^\d+\.\d+\.\d+\.\d+$/);
      assert.deepEqual(brief(m), ["mesh6_fd00__2 mesh fd00::2:179 as64512"]);
    },
  },
  {
    name: "the mesh peers with every other node with an address, skipping itself",
    inputs: baseInputs({
      nodes: [
        node("host-1", { v4: "10.0.0.1/24", v6: "fd00::1/64" }),
        node("host-2", { v4: "10.0.0.2/24", v6: "fd00::2/64" }),
        node("host-3", { v4: "10.0.0.3/24" }),
        node("no-bgp"),
      ],
    }),
    check(m) {
      assert.deepEqual(brief(m), [
        "mesh_10_0_0_2 mesh 10.0.0.2:179 as64512",
        "mesh_10_0_0_3 mesh 10.0.0.3:179 as64512",
        "mesh6_fd00__2 mesh fd00::2:179 as64512",
      ]);
      const s = session(m, "10.0.0.2");
      assert.equal(s.source, "node-to-node mesh");
      assert.equal(s.sourceAddress, "10.0.0.1");
      assert.equal(s.connection, "multihop");
      assert.equal(s.nextHop, "auto");
      assert.equal(s.restartTime, 120);
      assert.equal(s.exportLearned, false);
      assert.equal(session(m, "fd00::2").sourceAddress, "fd00::1");
    },
  },
  {
    name: "the mesh dials one way: the higher address connects, the lower waits",
    inputs: baseInputs({ nodeName: "host-2" }),
    check(m) {
      assert.equal(session(m, "10.0.0.1").passive, false);
      assert.equal(session(m, "10.0.0.3").passive, true);
    },
  },
  {
    name: "nodeToNodeMeshEnabled false: no mesh",
    inputs: baseInputs({ bgpConfigurations: [meshOff] }),
    check(m) {
      assert.equal(m.meshEnabled, false);
      assert.deepEqual(m.sessions, []);
    },
  },
  {
    name: "mesh password and restart time come from BGPConfiguration",
    inputs: baseInputs({
      bgpConfigurations: [
        bgpConfig("default", {
          nodeMeshPassword: { secretKeyRef: { name: "s", key: "k" } },
          nodeMeshMaxRestartTime: "1m30s",
        }),
      ],
      secrets: { s: { k: "pw" } },
    }),
    check(m) {
      for (const s of m.sessions) {
        assert.equal(s.password, "pw");
        assert.equal(s.restartTime, 90);
      }
    },
  },
  {
    name: "listen ports: the node's own BGPConfiguration, else the cluster's; peers dialled on theirs",
    inputs: baseInputs({
      bgpConfigurations: [
        bgpConfig("default", { listenPort: 1790 }),
        bgpConfig("node.host-1", { listenPort: 1791, logSeverityScreen: "Warning" }),
        bgpConfig("node.host-3", { listenPort: 1793 }),
      ],
    }),
    check(m) {
      assert.equal(m.listenPort, 1791);
      assert.equal(m.logSeverity, "Warning");
      assert.deepEqual(brief(m), [
        "mesh_10_0_0_2_port_1790 mesh 10.0.0.2:1790 as64512",
        "mesh_10_0_0_3_port_1793 mesh 10.0.0.3:1793 as64512",
      ]);
    },
  },
  {
    name: "a reflector stays out of the mesh, and mesh nodes skip reflectors",
    inputs: baseInputs({ nodes: rrNodes, nodeName: "host-1" }),
    check(m) {
      assert.deepEqual(brief(m), ["mesh_10_0_0_2 mesh 10.0.0.2:179 as64512"]);
    },
  },
  {
    name: "a reflector has no mesh sessions even with the mesh on",
    inputs: baseInputs({ nodes: rrNodes, nodeName: "rr-1" }),
    check(m) {
      assert.equal(m.routeReflectorClusterId, "244.0.0.1");
      assert.deepEqual(m.sessions, []);
    },
  },
  {
    name: "reflector view: clients are rr clients, same-cluster reflectors plain iBGP, other clusters clients",
    inputs: baseInputs({
      nodes: rrNodes,
      nodeName: "rr-1",
      bgpConfigurations: [meshOff],
      bgpPeers: [rrPeer],
    }),
    check(m) {
      assert.deepEqual(brief(m), [
        "node_10_0_0_1 rr-client 10.0.0.1:179 as64512",
        "node_10_0_0_2 rr-client 10.0.0.2:179 as64512",
        "node_10_0_0_12 reflector 10.0.0.12:179 as64512",
        "node_10_0_0_19 rr-client 10.0.0.19:179 as64512",
      ]);
      const client = session(m, "10.0.0.1");
      assert.equal(client.rrClient, true);
      assert.equal(client.clusterId, "244.0.0.1");
      assert.equal(client.exportLearned, true);
      assert.equal(client.peerNode, "host-1");
      const sibling = session(m, "10.0.0.12");
      assert.equal(sibling.rrClient, false);
      assert.equal(sibling.clusterId, undefined);
      assert.equal(sibling.exportLearned, true);
    },
  },
  {
    name: "client view: a session to each reflector, nothing reflected",
    inputs: baseInputs({
      nodes: rrNodes,
      nodeName: "host-2",
      bgpConfigurations: [meshOff],
      bgpPeers: [rrPeer],
    }),
    check(m) {
      assert.deepEqual(brief(m), [
        "node_10_0_0_11 reflector 10.0.0.11:179 as64512",
        "node_10_0_0_12 reflector 10.0.0.12:179 as64512",
        "node_10_0_0_19 reflector 10.0.0.19:179 as64512",
      ]);
      assert.ok(m.sessions.every((s) => !s.rrClient && !s.exportLearned));
    },
  },
  {
    name: "an external router peering with the reflectors learns every block: reflectors pass on learned routes to it, clients do not",
    inputs: baseInputs({
      nodes: rrNodes,
      nodeName: "rr-1",
      bgpConfigurations: [meshOff],
      bgpPeers: [rrPeer, peer("tor", { peerIP: "10.0.0.254", asNumber: 65000 })],
    }),
    check(m) {
      assert.equal(session(m, "10.0.0.254").exportLearned, true);
      const client = buildBgpModel({ ...this.inputs, nodeName: "host-1" });
      assert.equal(session(client, "10.0.0.254").exportLearned, false);
    },
  },
  {
    name: "reversePeering Manual: selected nodes do not peer back",
    inputs: baseInputs({
      nodes: rrNodes,
      nodeName: "rr-1",
      bgpConfigurations: [meshOff],
      bgpPeers: [
        peer("with-rr", {
          nodeSelector: "!has(rr)",
          peerSelector: "rr == 'true'",
          reversePeering: "Manual",
        }),
      ],
    }),
    check(m) {
      assert.deepEqual(m.sessions, []);
    },
  },
  {
    name: "a global peerIP is on every node, but never a session to oneself",
    inputs: baseInputs({
      nodeName: "host-2",
      bgpConfigurations: [meshOff],
      bgpPeers: [
        peer("tor", { peerIP: "10.0.0.254", asNumber: 65000 }),
        peer("to-host-2", { peerIP: "10.0.0.2", asNumber: 64512 }),
      ],
    }),
    check(m) {
      assert.deepEqual(brief(m), ["global_10_0_0_254 global 10.0.0.254:179 as65000"]);
      const s = session(m, "10.0.0.254");
      assert.equal(s.source, 'BGPPeer "tor"');
      assert.equal(s.connection, "direct", "eBGP to a peer on our subnet is direct");
    },
  },
  {
    name: "node and nodeSelector scopes pick their nodes",
    inputs: baseInputs({
      nodes: [
        node("host-1", { v4: "10.0.0.1/24", labels: { rack: "a" } }),
        node("host-2", { v4: "10.0.0.2/24", labels: { rack: "b" } }),
      ],
      bgpConfigurations: [meshOff],
      bgpPeers: [
        peer("mine", { node: "host-1", peerIP: "192.168.1.1", asNumber: 65001 }),
        peer("theirs", { node: "host-2", peerIP: "192.168.2.1", asNumber: 65001 }),
        peer("rack-a", {
          nodeSelector: "rack == 'a'",
          peerIP: "192.168.3.1:1179",
          asNumber: 65002,
        }),
        peer("rack-b", { nodeSelector: "rack == 'b'", peerIP: "192.168.4.1", asNumber: 65002 }),
      ],
    }),
    check(m) {
      assert.deepEqual(brief(m), [
        "node_192_168_1_1 node 192.168.1.1:179 as65001",
        "node_192_168_3_1_port_1179 node 192.168.3.1:1179 as65002",
      ]);
      assert.equal(session(m, "192.168.1.1").connection, "multihop");
    },
  },
  {
    name: "a peerIP that is a twill node's address uses that node's port and role",
    inputs: baseInputs({
      nodes: rrNodes,
      nodeName: "host-1",
      bgpConfigurations: [meshOff, bgpConfig("node.rr-1", { listenPort: 1790 })],
      bgpPeers: [peer("to-rr-1", { peerIP: "10.0.0.11", asNumber: 64512 })],
    }),
    check(m) {
      assert.deepEqual(brief(m), ["global_10_0_0_11_port_1790 reflector 10.0.0.11:1790 as64512"]);
      assert.equal(session(m, "10.0.0.11").peerNode, "rr-1");
    },
  },
  {
    name: "an explicit peer replaces the mesh session to the same address",
    inputs: baseInputs({
      bgpPeers: [peer("to-host-2", { peerIP: "10.0.0.2", asNumber: 64512, maxRestartTime: "10s" })],
    }),
    check(m) {
      assert.deepEqual(brief(m), [
        "global_10_0_0_2 global 10.0.0.2:179 as64512",
        "mesh_10_0_0_3 mesh 10.0.0.3:179 as64512",
      ]);
      assert.equal(session(m, "10.0.0.2").restartTime, 10);
      assert.ok(
        m.problems.some((p) => p.includes("already peered by BGPPeer")),
        m.problems.join(),
      );
    },
  },
  {
    name: "peer options: next hop, restart time cap, keepalive, local AS, GTSM, source address",
    inputs: baseInputs({
      bgpConfigurations: [meshOff],
      bgpPeers: [
        peer("keep", { peerIP: "10.0.0.201", asNumber: 65000, keepOriginalNextHop: true }),
        peer("self", { peerIP: "10.0.0.202", asNumber: 65000, nextHopMode: "Self" }),
        peer("k2", {
          peerIP: "10.0.0.203",
          asNumber: 65000,
          nextHopMode: "Keep",
          maxRestartTime: "2h",
        }),
        peer("ka", {
          peerIP: "10.0.0.204",
          asNumber: 65000,
          keepaliveTime: "20s",
          localASNumber: 65500,
        }),
        peer("gtsm", {
          peerIP: "10.0.0.205",
          asNumber: 65000,
          ttlSecurity: 2,
          sourceAddress: "None",
        }),
      ],
    }),
    check(m) {
      assert.equal(session(m, "10.0.0.201").nextHop, "keep");
      assert.equal(session(m, "10.0.0.202").nextHop, "self");
      assert.equal(session(m, "10.0.0.203").nextHop, "keep");
      assert.equal(session(m, "10.0.0.203").restartTime, 4095);
      const ka = session(m, "10.0.0.204");
      assert.equal(ka.timers.keepaliveTime, 20);
      assert.equal(ka.timers.holdTime, 60);
      assert.equal(ka.localAS, 65500);
      const gtsm = session(m, "10.0.0.205");
      assert.equal(gtsm.ttlSecurityHops, 2);
      assert.equal(gtsm.connection, "multihop");
      assert.equal(gtsm.sourceAddress, undefined);
    },
  },
  {
    name: "passwords: missing secret disables the session; optional missing means none; bad values refused",
    inputs: baseInputs({
      bgpConfigurations: [meshOff],
      bgpPeers: [
        peer("ok", {
          peerIP: "10.0.0.201",
          asNumber: 65000,
          password: { secretKeyRef: { name: "s", key: "ok" } },
        }),
        peer("missing", {
          peerIP: "10.0.0.202",
          asNumber: 65000,
          password: { secretKeyRef: { name: "s", key: "x" } },
        }),
        peer("optional", {
          peerIP: "10.0.0.203",
          asNumber: 65000,
          password: { secretKeyRef: { name: "t", key: "x", optional: true } },
        }),
        peer("quote", {
          peerIP: "10.0.0.204",
          asNumber: 65000,
          password: { secretKeyRef: { name: "s", key: "bad" } },
        }),
      ],
      secrets: { s: { ok: "p4ss word", bad: 'a"b' } },
    }),
    check(m) {
      assert.equal(session(m, "10.0.0.201").password, "p4ss word");
      assert.equal(session(m, "10.0.0.201").disabledReason, undefined);
      assert.match(session(m, "10.0.0.202").disabledReason ?? "", /secret "s" has no key "x"/);
      assert.equal(session(m, "10.0.0.203").password, undefined);
      assert.equal(session(m, "10.0.0.203").disabledReason, undefined);
      assert.equal(session(m, "10.0.0.204").password, undefined);
      assert.match(session(m, "10.0.0.204").disabledReason ?? "", /printable/);
    },
  },
  {
    name: "a node without an IPv4 address has no IPv4 sessions",
    inputs: baseInputs({
      nodes: [
        node("host-1", { v6: "fd00::1/64" }),
        node("host-2", { v4: "10.0.0.2/24", v6: "fd00::2/64" }),
      ],
      bgpPeers: [peer("tor", { peerIP: "10.0.0.254", asNumber: 65000 })],
    }),
    check(m) {
      assert.deepEqual(brief(m), ["mesh6_fd00__2 mesh fd00::2:179 as64512"]);
      assert.ok(m.problems.some((p) => p.includes("no IPv4 BGP address")));
    },
  },
  {
    name: "announced: own blocks, borrowed addresses and service ranges; disableBGPExport pools left out",
    inputs: baseInputs({
      ipPools: [
        pool("a", "10.65.0.0/16"),
        pool("b", "10.66.0.0/16", { disableBGPExport: true }),
        pool("c", "fd00:65::/48"),
      ],
      ownBlocks: ["10.66.0.0/26", "10.65.0.0/26", "fd00:65::/122"],
      localWorkloadAddresses: [
        "10.65.0.3",
        "10.65.7.7",
        "10.66.3.3",
        "192.168.9.9",
        "fd00:65::1:1",
        "fd00:65::1:1",
      ],
      bgpConfigurations: [
        bgpConfig("default", {
          serviceClusterIPs: [{ cidr: "10.96.0.0/12" }],
          serviceExternalIPs: [{ cidr: "192.0.2.0/24" }],
          serviceLoadBalancerIPs: [{ cidr: "198.51.100.0/24" }],
        }),
      ],
    }),
    check(m) {
      assert.deepEqual(m.blocks, ["10.65.0.0/26", "10.66.0.0/26", "fd00:65::/122"]);
      assert.deepEqual(m.borrowed, ["10.65.7.7/32", "fd00:65::1:1/128"]);
      assert.deepEqual(
        m.exported.map((e) => `${e.cidr} ${e.origin}`),
        [
          "10.65.0.0/26 block",
          "10.65.7.7/32 borrowed",
          "10.96.0.0/12 service-cluster-ip",
          "192.0.2.0/24 service-external-ip",
          "198.51.100.0/24 service-loadbalancer-ip",
          "fd00:65::/122 block",
          "fd00:65::1:1/128 borrowed",
        ],
      );
    },
  },
  {
    name: "workload addresses may carry a host prefix length; anything else is reported",
    inputs: baseInputs({
      localWorkloadAddresses: ["10.65.8.8/32", "10.65.9.0/24", "nonsense"],
      workloadInterfacePrefix: 'tw" bad',
    }),
    check(m) {
      assert.deepEqual(m.borrowed, ["10.65.8.8/32"]);
      assert.equal(m.workloadInterfacePrefix, "tw");
      assert.equal(m.problems.length, 3, m.problems.join("\n"));
    },
  },
  {
    name: "accepted: every pool and configured prefixes; rejected: our own blocks",
    inputs: baseInputs({
      ipPools: [pool("a", "10.65.0.0/16"), pool("b", "10.66.0.0/16", { disableBGPExport: true })],
      acceptedPrefixes: ["0.0.0.0/0", "10.65.0.0/16"],
    }),
    check(m) {
      assert.deepEqual(m.accepted, ["0.0.0.0/0", "10.65.0.0/16", "10.66.0.0/16"]);
      assert.deepEqual(m.rejected, ["10.65.0.0/26"]);
    },
  },
  {
    name: "communities: names and literals, on every announced prefix inside the advertisement",
    inputs: baseInputs({
      ownBlocks: ["10.65.0.0/26"],
      localWorkloadAddresses: ["10.65.3.3"],
      bgpConfigurations: [
        bgpConfig("default", {
          communities: [{ name: "pods", value: "64512:100" }],
          prefixAdvertisements: [
            { cidr: "10.65.0.0/16", communities: ["pods", "1:2:3"] },
            { cidr: "10.65.0.0/24", communities: ["64512:100", "7:7"] },
          ],
        }),
      ],
    }),
    check(m) {
      const by = new Map(m.exported.map((e) => [e.cidr, e.communities.map((c) => c.text)]));
      assert.deepEqual(by.get("10.65.0.0/26"), ["7:7", "64512:100", "1:2:3"]);
      assert.deepEqual(by.get("10.65.3.3/32"), ["64512:100", "1:2:3"]);
    },
  },
  {
    name: "a node's prefixAdvertisements replace the cluster's",
    inputs: baseInputs({
      bgpConfigurations: [
        bgpConfig("default", {
          prefixAdvertisements: [{ cidr: "10.65.0.0/16", communities: ["1:1"] }],
        }),
        bgpConfig("node.host-1", {
          prefixAdvertisements: [{ cidr: "10.65.0.0/16", communities: ["2:2"] }],
        }),
      ],
    }),
    check(m) {
      assert.deepEqual(
        m.exported.flatMap((e) => e.communities.map((c) => c.text)),
        ["2:2"],
      );
    },
  },
  {
    name: "agent settings and ignored interfaces pass through; timers can be overridden",
    inputs: baseInputs({
      workloadRouteProtocol: 99,
      workloadInterfacePrefix: "cali",
      timers: { holdTime: 30, keepaliveTime: 10 },
      bgpConfigurations: [
        bgpConfig("default", { ignoredInterfaces: ["virbr*", "docker0"], bindMode: "NodeIP" }),
      ],
    }),
    check(m) {
      assert.equal(m.workloadRouteProtocol, 99);
      assert.equal(m.workloadInterfacePrefix, "cali");
      assert.deepEqual(m.ignoredInterfaces, ["docker0", "virbr*"]);
      assert.equal(m.strictBind, true);
      assert.equal(m.timers.holdTime, 30);
      assert.equal(m.sessions[0]?.timers.keepaliveTime, 10);
      assert.equal(m.timers.connectRetryTime, DEFAULT_BGP_TIMERS.connectRetryTime);
    },
  },
];

for (const c of cases) {
  test(c.name, () => c.check(buildBgpModel(c.inputs)));
}

test("a node missing from the inputs is NotFound", () => {
  assert.throws(
    () => buildBgpModel(baseInputs({ nodeName: "ghost" })),
    (err) => isErrorCode(err, "NotFound") && /"ghost"/.test(err.message),
  );
});

test("session names are unique BIRD symbols", () => {
  const m = buildBgpModel(
    baseInputs({
      nodes: [
        node("host-1", { v4: "10.0.0.1/24", v6: "fd00::1/64" }),
        node("host-2", { v4: "10.0.0.2/24", v6: "fd00::2/64" }),
      ],
      bgpPeers: [
        peer("a", { peerIP: "10.0.0.254", asNumber: 65000 }),
        peer("b", { peerIP: "10.0.0.254:1179", asNumber: 65000 }),
        peer("c", { peerIP: "[fd00::fe]:1179", asNumber: 65000 }),
      ],
    }),
  );
  const names = m.sessions.map((s) => s.name);
  assert.equal(new Set(names).size, names.length);
  for (const n of names) assert.match(n, /^[a-z][a-z0-9_]{0,63}$/);
});

test("hashRouterId is stable and never 0.0.0.0", () => {
  assert.equal(hashRouterId("host-1"), hashRouterId("host-1"));
  assert.notEqual(hashRouterId("host-1"), hashRouterId("host-2"));
});
