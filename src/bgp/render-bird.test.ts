// Golden files for the BIRD renderer, and the real BIRD as the judge of their
// syntax. Each scenario is a BgpInputs (one node's view of the cluster); its
// rendering is compared with testdata/<scenario>.conf (UPDATE_GOLDEN=1
// rewrites them). As root with bird2 installed, every golden is parsed by
// `bird -p -c` (parse only: no socket, no namespace, no kernel change).
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildBgpModel } from "./bgp-model.js";
import { birdPaths } from "./bgp-inputs.js";
import type { BgpInputs } from "./bgp-inputs.js";
import { birdConfigHash, fnv1a64, renderBird } from "./render-bird.js";
import { baseInputs, bgpConfig, node, peer, pool } from "./testdata/bgp-fixtures.js";

// dist/src/bgp/render-bird.test.js → src/bgp/testdata
const GOLDEN = fileURLToPath(new URL("../../../src/bgp/testdata/", import.meta.url));
const UPDATE = process.env["UPDATE_GOLDEN"] === "1";
const PATHS = birdPaths("/run/twill/bird");

// Route reflector topology: two reflectors (same cluster) and three clients,
// mesh off, one BGPPeer making every node peer with the reflectors.
const rrNodes = [
  node("rr-1", {
    v4: "10.0.0.11/24",
    clusterId: "244.0.0.1",
    labels: { "route-reflector": "true" },
  }),
  node("rr-2", {
    v4: "10.0.0.12/24",
    clusterId: "244.0.0.1",
    labels: { "route-reflector": "true" },
  }),
  node("host-1", { v4: "10.0.0.1/24" }),
  node("host-2", { v4: "10.0.0.2/24" }),
  node("host-3", { v4: "10.0.0.3/24" }),
];
const rrInputs = (nodeName: string, ownBlocks: string[]): BgpInputs =>
  baseInputs({
    nodeName,
    nodes: rrNodes,
    bgpConfigurations: [bgpConfig("default", { nodeToNodeMeshEnabled: false })],
    bgpPeers: [
      peer("peer-with-reflectors", {
        nodeSelector: "all()",
        peerSelector: "route-reflector == 'true'",
      }),
    ],
    ownBlocks,
    localWorkloadAddresses: [],
  });

const dualNodes = [
  node("host-1", { v4: "10.0.0.1/24", v6: "fd00::1/64" }),
  node("host-2", { v4: "10.0.0.2/24", v6: "fd00::2/64" }),
  node("host-3", { v4: "10.0.0.3/24" }),
];

export const SCENARIOS: Record<string, BgpInputs> = {
  // Three nodes on one subnet, the default full mesh.
  mesh: baseInputs(),

  "rr-reflector": rrInputs("rr-1", []),
  "rr-client": rrInputs("host-2", ["10.65.0.64/26"]),

  // Mesh on, plus a global ToR peer with a port, a peer for host-1 only and
  // one for host-2 only (not rendered here).
  "explicit-peers": baseInputs({
    bgpPeers: [
      peer("tor", { peerIP: "10.0.0.254:1179", asNumber: 65000 }),
      peer("host-1-edge", { node: "host-1", peerIP: "192.168.7.1", asNumber: 65010 }),
      peer("host-2-edge", { node: "host-2", peerIP: "192.168.8.1", asNumber: 65010 }),
    ],
  }),

  // Mesh off; rack-a nodes peer with their ToR; nodes labelled edge peer with
  // the nodes labelled gateway (and, by reverse peering, the other way round).
  selectors: baseInputs({
    nodes: [
      node("host-1", { v4: "10.0.0.1/24", labels: { rack: "a", edge: "true" } }),
      node("host-2", { v4: "10.0.0.2/24", labels: { rack: "a" } }),
      node("host-3", { v4: "10.0.1.3/24", labels: { rack: "b", gateway: "true" } }),
      node("host-4", { v4: "10.0.1.4/24", labels: { rack: "b", gateway: "true" }, as: 64600 }),
    ],
    bgpConfigurations: [bgpConfig("default", { nodeToNodeMeshEnabled: false })],
    bgpPeers: [
      peer("rack-a-tor", { nodeSelector: "rack == 'a'", peerIP: "10.0.0.254", asNumber: 65001 }),
      peer("rack-b-tor", { nodeSelector: "rack == 'b'", peerIP: "10.0.1.254", asNumber: 65002 }),
      peer("edge-to-gateways", { nodeSelector: "has(edge)", peerSelector: "gateway == 'true'" }),
    ],
  }),

  // Mesh password from a secret; a peer with a password; one whose secret is
  // missing (rendered disabled); one whose optional secret is missing.
  passwords: baseInputs({
    bgpConfigurations: [
      bgpConfig("default", {
        nodeMeshPassword: { secretKeyRef: { name: "bgp", key: "mesh" } },
        nodeMeshMaxRestartTime: "90s",
      }),
    ],
    bgpPeers: [
      peer("tor", {
        peerIP: "10.0.0.254",
        asNumber: 65000,
        password: { secretKeyRef: { name: "bgp", key: "tor" } },
      }),
      peer("tor-missing", {
        peerIP: "10.0.0.253",
        asNumber: 65000,
        password: { secretKeyRef: { name: "bgp", key: "nope" } },
      }),
      peer("tor-optional", {
        peerIP: "10.0.0.252",
        asNumber: 65000,
        password: { secretKeyRef: { name: "absent", key: "k", optional: true } },
      }),
    ],
    secrets: { bgp: { mesh: "mesh-secret", tor: "t0r!pass" } },
  }),

  // Dual stack: IPv6 mesh where both ends have IPv6, an IPv6 ToR with a port.
  "dual-stack": baseInputs({
    nodes: dualNodes,
    ipPools: [pool("default-v4", "10.65.0.0/16"), pool("default-v6", "fd00:65::/48")],
    ownBlocks: ["10.65.0.0/26", "fd00:65::/122"],
    localWorkloadAddresses: ["10.65.0.2", "fd00:65::2"],
    bgpPeers: [peer("tor6", { peerIP: "[fd00::fe]:1179", asNumber: 65000 })],
  }),

  // Named and literal communities on the pool's prefixes, service ranges
  // announced, host-1's own prefixAdvertisements replacing the cluster's.
  communities: baseInputs({
    ownBlocks: ["10.65.0.0/26", "10.65.9.0/26"],
    bgpConfigurations: [
      bgpConfig("default", {
        communities: [{ name: "pods", value: "64512:100" }],
        prefixAdvertisements: [{ cidr: "10.65.0.0/16", communities: ["pods"] }],
        serviceClusterIPs: [{ cidr: "10.96.0.0/12" }],
        serviceExternalIPs: [{ cidr: "192.0.2.0/24" }],
      }),
      bgpConfig("node.host-1", {
        communities: [
          { name: "pods", value: "64512:101" },
          { name: "big", value: "64512:300:7" },
        ],
        prefixAdvertisements: [
          { cidr: "10.65.0.0/16", communities: ["pods", "big"] },
          { cidr: "10.65.9.0/24", communities: ["65000:9"] },
          { cidr: "10.96.0.0/12", communities: ["64512:200"] },
        ],
      }),
    ],
  }),

  // A pool with disableBGPExport: its blocks get blackholes but are not
  // announced; a borrowed address in it is not announced either.
  "disable-export": baseInputs({
    ipPools: [
      pool("default-v4", "10.65.0.0/16"),
      pool("private", "10.66.0.0/16", { disableBGPExport: true }),
    ],
    ownBlocks: ["10.65.0.0/26", "10.66.0.0/26"],
    localWorkloadAddresses: ["10.65.0.2", "10.66.0.2", "10.66.5.9"],
  }),

  // Workloads whose addresses lie in other nodes' blocks (and one outside
  // every pool, which is not announced).
  borrowed: baseInputs({
    nodes: dualNodes,
    ipPools: [pool("default-v4", "10.65.0.0/16"), pool("default-v6", "fd00:65::/48")],
    ownBlocks: ["10.65.0.0/26", "fd00:65::/122"],
    localWorkloadAddresses: ["10.65.0.2", "10.65.1.77", "10.65.2.5", "fd00:65::1:5", "172.16.0.9"],
  }),

  // eBGP peers with the per-peer knobs: keepOriginalNextHop, nextHopMode Self,
  // maxRestartTime, keepaliveTime, localASNumber, ttlSecurity, reachableBy,
  // numAllowedLocalASNumbers; node on its own AS, port 1790, bindMode NodeIP,
  // Debug logging, ignored interfaces.
  "keep-next-hop": baseInputs({
    nodes: [
      node("host-1", { v4: "10.0.0.1/24", as: 64601 }),
      node("host-2", { v4: "10.0.0.2/24" }),
    ],
    bgpConfigurations: [
      bgpConfig("default", {
        nodeToNodeMeshEnabled: false,
        bindMode: "NodeIP",
        listenPort: 1790,
        ignoredInterfaces: ["docker0", "virbr*"],
      }),
      bgpConfig("node.host-1", { logSeverityScreen: "Debug" }),
    ],
    bgpPeers: [
      peer("tor-keep", {
        peerIP: "10.0.0.254",
        asNumber: 65000,
        keepOriginalNextHop: true,
        maxRestartTime: "300s",
      }),
      peer("tor-self", {
        peerIP: "10.0.0.253",
        asNumber: 65000,
        nextHopMode: "Self",
        keepaliveTime: "10s",
        localASNumber: 64700,
      }),
      peer("far", {
        peerIP: "172.20.0.1",
        asNumber: 65100,
        ttlSecurity: 3,
        numAllowedLocalASNumbers: 1,
        sourceAddress: "None",
      }),
      peer("via-gw", { peerIP: "172.21.0.1", asNumber: 65100, reachableBy: "10.0.0.250" }),
    ],
  }),
};

function render(name: string): string {
  const inputs = SCENARIOS[name];
  assert.ok(inputs, `no scenario ${name}`);
  return renderBird(buildBgpModel(inputs), PATHS);
}

function checkGolden(file: string, text: string): void {
  const path = join(GOLDEN, file);
  if (UPDATE) {
    writeFileSync(path, text);
    return;
  }
  assert.ok(existsSync(path), `golden ${file} is missing: run with UPDATE_GOLDEN=1`);
  assert.equal(
    text,
    readFileSync(path, "utf8"),
    `golden ${file} differs (UPDATE_GOLDEN=1 rewrites)`,
  );
}

for (const name of Object.keys(SCENARIOS)) {
  test(`renders the ${name} scenario as its golden file`, () => {
    checkGolden(`${name}.conf`, render(name));
  });
}

test("every golden file has a scenario", () => {
  const files = readdirSync(GOLDEN).filter((f) => f.endsWith(".conf"));
  assert.deepEqual(
    files.sort(),
    Object.keys(SCENARIOS)
      .map((n) => `${n}.conf`)
      .sort(),
  );
});

test("the text does not depend on the order of the inputs", () => {
  for (const [name, inputs] of Object.entries(SCENARIOS)) {
    const reversed: BgpInputs = {
      ...inputs,
      nodes: [...inputs.nodes].reverse(),
      bgpPeers: [...inputs.bgpPeers].reverse(),
      bgpConfigurations: [...inputs.bgpConfigurations].reverse(),
      ipPools: [...inputs.ipPools].reverse(),
      ownBlocks: [...inputs.ownBlocks].reverse(),
      localWorkloadAddresses: [...inputs.localWorkloadAddresses].reverse(),
    };
    assert.equal(renderBird(buildBgpModel(reversed), PATHS), render(name), name);
  }
});

test("the header's hash is the hash of the body", () => {
  const text = render("mesh");
  const body = text.slice(text.indexOf("\n\n") + 2);
  assert.equal(birdConfigHash(text), `fnv1a64:${fnv1a64(body)}`);
  assert.notEqual(birdConfigHash(render("rr-client")), birdConfigHash(text));
  assert.equal(birdConfigHash("router id 1.2.3.4;\n"), undefined);
});

test("fnv1a64 matches the reference vectors", () => {
  assert.equal(fnv1a64(""), "cbf29ce484222325");
  assert.equal(fnv1a64("a"), "af63dc4c8601ec8c");
  assert.equal(fnv1a64("foobar"), "85944171f73967e8");
});

function birdUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root";
  try {
    execFileSync("bird", ["--version"], { stdio: "ignore" });
  } catch {
    return "needs bird (Debian bird2)";
  }
  return undefined;
}

const noBird = birdUnavailable();

test("BIRD parses every golden file", { skip: noBird ?? false }, () => {
  for (const name of Object.keys(SCENARIOS)) {
    const path = join(GOLDEN, `${name}.conf`);
    try {
      execFileSync("bird", ["-p", "-c", path], { stdio: ["ignore", "pipe", "pipe"] });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? String(err);
      assert.fail(`bird -p rejects ${name}.conf: ${stderr.trim()}`);
    }
  }
});
