// Table-driven tests of the infrastructure kinds (Node, IPPool,
// IPReservation, IPAMConfiguration, BGPConfiguration, BGPPeer,
// FelixConfiguration, ClusterInformation) through validateResource: valid
// documents come back with Calico's defaults filled in; invalid ones report
// every error at its exact path with a reason naming the value.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { validateResource } from "../validate.js";
import type { FieldError } from "../resource.js";
import { parseDuration } from "./common.js";
import { parsePeerIP } from "./bgp-peer.js";
import {
  DEFAULT_FAILSAFE_INBOUND,
  IGNORED_FELIX_FIELDS,
  TWILL_FELIX_FIELDS,
  TWILL_ROUTE_PROTOCOL,
} from "./felix-configuration.js";

type Doc = Record<string, unknown>;

function doc(kind: string, name: string, spec?: unknown, extra?: Doc): Doc {
  const d: Doc = { apiVersion: "projectcalico.org/v3", kind, metadata: { name }, ...extra };
  if (spec !== undefined) d.spec = spec;
  return d;
}

/** Validates and returns the stored spec, failing with the errors when invalid. */
function storedSpec(d: Doc): Record<string, unknown> {
  const r = validateResource(d);
  if (!r.ok) assert.fail(`expected valid, got ${JSON.stringify(r.errors, null, 1)}`);
  return (r.resource.spec ?? {}) as Record<string, unknown>;
}

interface Expected {
  path: string;
  /** Words every message at this path must contain (case-insensitive). */
  words: string[];
}

/** Asserts the errors are exactly at `expected`'s paths and each mentions its words. */
function assertErrors(d: Doc, expected: Expected[]): void {
  const r = validateResource(d);
  if (r.ok)
    assert.fail(`expected errors at ${expected.map((e) => e.path).join(", ")}, but it validated`);
  const errors: FieldError[] = r.errors;
  const paths = [...new Set(errors.map((e) => e.path))].sort();
  assert.deepEqual(
    paths,
    [...new Set(expected.map((e) => e.path))].sort(),
    JSON.stringify(errors, null, 1),
  );
  for (const e of expected) {
    const messages = errors.filter((x) => x.path === e.path).map((x) => x.message.toLowerCase());
    for (const w of e.words) {
      assert.ok(
        messages.some((m) => m.includes(w.toLowerCase())),
        `no message at ${e.path} mentions "${w}": ${JSON.stringify(messages)}`,
      );
    }
  }
}

interface ValidCase {
  name: string;
  doc: Doc;
  /** Fields the stored spec must have (compared with deepEqual each). */
  stored?: Record<string, unknown>;
  /** The whole stored spec, when it must be exactly this. */
  exactly?: Record<string, unknown>;
}

interface InvalidCase {
  name: string;
  doc: Doc;
  errors: Expected[];
}

function runTables(valid: ValidCase[], invalid: InvalidCase[]): void {
  for (const c of valid) {
    it(`accepts ${c.name}`, () => {
      const spec = storedSpec(c.doc);
      if (c.exactly) assert.deepEqual(spec, c.exactly);
      for (const [k, v] of Object.entries(c.stored ?? {}))
        assert.deepEqual(spec[k], v, `spec.${k}`);
    });
  }
  for (const c of invalid) {
    it(`rejects ${c.name}`, () => assertErrors(c.doc, c.errors));
  }
}

describe("Node", () => {
  runTables(
    [
      { name: "a node with no spec", doc: doc("Node", "host-1"), exactly: {} },
      {
        name: "BGP identity, addresses and orchestrator refs",
        doc: doc("Node", "host-1.rack-a", {
          bgp: {
            ipv4Address: "10.0.1.5/24",
            ipv6Address: "fd00:1::5/64",
            routeReflectorClusterID: "244.0.0.1",
          },
          addresses: [{ address: "10.0.1.5", type: "InternalIP" }],
          orchRefs: [{ orchestrator: "k8s", nodeName: "host-1" }],
        }),
        stored: {
          bgp: {
            ipv4Address: "10.0.1.5/24",
            ipv6Address: "fd00:1::5/64",
            routeReflectorClusterID: "244.0.0.1",
          },
        },
      },
      {
        name: "an asdot AS number, normalised to a number",
        doc: doc("Node", "host-1", { bgp: { asNumber: "1.10" } }),
        stored: { bgp: { asNumber: 65546 } },
      },
      {
        name: "Calico's tunnel fields and status, which twill ignores",
        doc: doc(
          "Node",
          "host-1",
          {
            ipv4VXLANTunnelAddr: "10.65.0.1",
            vxlanTunnelMACAddr: "66:1f:2a:3b:4c:5d",
            bgp: { ipv4IPIPTunnelAddr: "10.65.0.2" },
          },
          { status: { podCIDRs: ["10.244.0.0/24"] } },
        ),
        stored: { ipv4VXLANTunnelAddr: "10.65.0.1" },
      },
    ],
    [
      {
        name: "a name that is not a DNS subdomain",
        doc: doc("Node", "Host_1"),
        errors: [{ path: "metadata.name", words: ["Host_1", "DNS-1123"] }],
      },
      {
        name: "an IPv6 ipv4Address and an IPv6 route reflector cluster ID",
        doc: doc("Node", "host-1", {
          bgp: { ipv4Address: "fd00::1/64", routeReflectorClusterID: "fd00::1" },
        }),
        errors: [
          { path: "spec.bgp.ipv4Address", words: ["fd00::1/64", "IPv4"] },
          { path: "spec.bgp.routeReflectorClusterID", words: ["fd00::1", "IPv4 address"] },
        ],
      },
      {
        name: "an empty bgp block",
        doc: doc("Node", "host-1", { bgp: {} }),
        errors: [{ path: "spec.bgp", words: ["must not be empty"] }],
      },
      {
        name: "an unknown address type, a bad address and an unknown field",
        doc: doc("Node", "host-1", {
          addresses: [{ address: "10.0.0.300", type: "Public" }],
          hostname: "x",
        }),
        errors: [
          { path: "spec.addresses[0].address", words: ["10.0.0.300"] },
          { path: "spec.addresses[0].type", words: ['"Public"', "CalicoNodeIP"] },
          { path: "spec.hostname", words: ["unknown field"] },
        ],
      },
      {
        name: "an AS number out of range",
        doc: doc("Node", "host-1", { bgp: { asNumber: 4294967296 } }),
        errors: [{ path: "spec.bgp.asNumber", words: ["4294967296", "0-4294967295"] }],
      },
    ],
  );
});

describe("IPPool", () => {
  const pool = (spec: unknown, name = "pool-1") => doc("IPPool", name, spec);
  runTables(
    [
      {
        name: "an IPv4 pool, with every default filled in (block size 26)",
        doc: pool({ cidr: "10.65.0.0/16" }),
        exactly: {
          cidr: "10.65.0.0/16",
          blockSize: 26,
          ipipMode: "Never",
          vxlanMode: "Never",
          natOutgoing: false,
          disabled: false,
          disableBGPExport: false,
          nodeSelector: "all()",
          allowedUses: ["Workload", "Tunnel"],
          assignmentMode: "Automatic",
        },
      },
      {
        name: "an IPv6 pool: block size 122, CIDR in canonical form",
        doc: pool({ cidr: "fd00:0065:0:0::/48" }),
        stored: { cidr: "fd00:65::/48", blockSize: 122 },
      },
      {
        name: "explicit block size, NAT and node selector",
        doc: pool({
          cidr: "10.65.0.0/16",
          blockSize: 24,
          natOutgoing: true,
          nodeSelector: "rack == 'a'",
        }),
        stored: { blockSize: 24, natOutgoing: true, nodeSelector: "rack == 'a'" },
      },
      {
        name: "ipipMode and vxlanMode Never, as Calico manifests carry them",
        doc: pool({ cidr: "10.65.0.0/16", ipipMode: "Never", vxlanMode: "Never" }),
        stored: { ipipMode: "Never", vxlanMode: "Never" },
      },
      {
        name: "a pool smaller than a block when disabled (as Calico)",
        doc: pool({ cidr: "10.65.0.0/28", disabled: true }),
        stored: { blockSize: 26, disabled: true },
      },
      {
        name: "an empty allowedUses list, meaning the default",
        doc: pool({ cidr: "10.65.0.0/16", allowedUses: [] }),
        stored: { allowedUses: ["Workload", "Tunnel"] },
      },
      {
        name: "a LoadBalancer pool",
        doc: pool({ cidr: "10.70.0.0/24", allowedUses: ["LoadBalancer"], blockSize: 28 }),
        stored: { allowedUses: ["LoadBalancer"] },
      },
    ],
    [
      {
        name: "a missing cidr",
        doc: pool({ natOutgoing: true }),
        errors: [{ path: "spec.cidr", words: ["required"] }],
      },
      {
        name: "a CIDR with host bits set, naming the network",
        doc: pool({ cidr: "10.65.1.0/16" }),
        errors: [{ path: "spec.cidr", words: ["host bits", '"10.65.0.0/16"'] }],
      },
      {
        name: "overlay modes, with twill's reason",
        doc: pool({ cidr: "10.65.0.0/16", ipipMode: "Always", vxlanMode: "CrossSubnet" }),
        errors: [
          { path: "spec.ipipMode", words: ['"Always"', "natively", "Never"] },
          { path: "spec.vxlanMode", words: ['"CrossSubnet"', "natively", "VXLAN"] },
        ],
      },
      {
        name: "an IPv4 block size below 20",
        doc: pool({ cidr: "10.0.0.0/8", blockSize: 19 }),
        errors: [{ path: "spec.blockSize", words: ["19", "20-32"] }],
      },
      {
        name: "an IPv6 block size below 116",
        doc: pool({ cidr: "fd00::/48", blockSize: 115 }),
        errors: [{ path: "spec.blockSize", words: ["115", "116-128"] }],
      },
      {
        name: "a pool smaller than one block",
        doc: pool({ cidr: "10.65.0.0/28" }),
        errors: [{ path: "spec.blockSize", words: ["/26", "10.65.0.0/28"] }],
      },
      {
        name: "a pool overlapping link-local addresses",
        doc: pool({ cidr: "169.254.0.0/16" }),
        errors: [{ path: "spec.cidr", words: ["link-local"] }],
      },
      {
        name: "an invalid node selector",
        doc: pool({ cidr: "10.65.0.0/16", nodeSelector: "rack ==" }),
        errors: [{ path: "spec.nodeSelector", words: ["rack ==", "position"] }],
      },
      {
        name: "LoadBalancer mixed with Workload, with BGP export off and a node selector",
        doc: pool({
          cidr: "10.70.0.0/24",
          blockSize: 28,
          allowedUses: ["LoadBalancer", "Workload"],
          disableBGPExport: true,
          nodeSelector: "rack == 'a'",
        }),
        errors: [
          { path: "spec.allowedUses", words: ["LoadBalancer", "Workload"] },
          { path: "spec.disableBGPExport", words: ["must be false"] },
          { path: "spec.nodeSelector", words: ["all()"] },
        ],
      },
      {
        name: "an unknown use",
        doc: pool({ cidr: "10.65.0.0/16", allowedUses: ["Workload", "Service"] }),
        errors: [{ path: "spec.allowedUses[1]", words: ['"Service"'] }],
      },
      {
        name: "a bad selector and a bad block size together (all errors at once)",
        doc: pool({ cidr: "10.65.1.0/16", blockSize: 33, nodeSelector: "(" }),
        errors: [
          { path: "spec.cidr", words: ["host bits"] },
          { path: "spec.blockSize", words: ["33", "20-32"] },
          { path: "spec.nodeSelector", words: ["position"] },
        ],
      },
    ],
  );
});

describe("IPReservation", () => {
  runTables(
    [
      {
        name: "addresses and ranges of both families",
        doc: doc("IPReservation", "gw", {
          reservedCIDRs: ["10.65.0.1", "10.65.255.0/24", "fd00:65::1"],
        }),
        stored: { reservedCIDRs: ["10.65.0.1", "10.65.255.0/24", "fd00:65::1"] },
      },
    ],
    [
      {
        name: "a bad address and a duplicate",
        doc: doc("IPReservation", "gw", {
          reservedCIDRs: ["10.0.0.300", "10.65.0.1", "10.65.0.1"],
        }),
        errors: [
          { path: "spec.reservedCIDRs[0]", words: ["10.0.0.300"] },
          { path: "spec.reservedCIDRs[2]", words: ["already listed", "reservedCIDRs[1]"] },
        ],
      },
    ],
  );
});

describe("IPAMConfiguration", () => {
  runTables(
    [
      {
        name: "no spec: strictAffinity false, maxBlocksPerHost 20, autoAllocateBlocks true",
        doc: doc("IPAMConfiguration", "default"),
        exactly: { strictAffinity: false, maxBlocksPerHost: 20, autoAllocateBlocks: true },
      },
      {
        name: "0 blocks per host (no limit) and strict affinity",
        doc: doc("IPAMConfiguration", "default", { strictAffinity: true, maxBlocksPerHost: 0 }),
        stored: { strictAffinity: true, maxBlocksPerHost: 0, autoAllocateBlocks: true },
      },
    ],
    [
      {
        name: "a name other than default",
        doc: doc("IPAMConfiguration", "ipam", {}),
        errors: [{ path: "metadata.name", words: ['"ipam"', '"default"'] }],
      },
      {
        name: "a negative block limit and a string boolean",
        doc: doc("IPAMConfiguration", "default", { maxBlocksPerHost: -1, strictAffinity: "yes" }),
        errors: [
          { path: "spec.maxBlocksPerHost", words: ["at least 0"] },
          { path: "spec.strictAffinity", words: ["boolean"] },
        ],
      },
    ],
  );
});

describe("BGPConfiguration", () => {
  const bgp = (name: string, spec?: unknown) => doc("BGPConfiguration", name, spec);
  runTables(
    [
      {
        name: "default with no spec: AS 64512, mesh on, port 179, log Info",
        doc: bgp("default"),
        exactly: {
          logSeverityScreen: "Info",
          nodeToNodeMeshEnabled: true,
          asNumber: 64512,
          listenPort: 179,
        },
      },
      {
        name: "default with its own values, which win over the defaults",
        doc: bgp("default", {
          asNumber: "1.10",
          nodeToNodeMeshEnabled: false,
          logSeverityScreen: "Debug",
        }),
        stored: {
          asNumber: 65546,
          nodeToNodeMeshEnabled: false,
          logSeverityScreen: "Debug",
          listenPort: 179,
        },
      },
      {
        name: "a node's override, stored without defaults",
        doc: bgp("node.host-1", { listenPort: 1790, logSeverityScreen: "Warning" }),
        exactly: { listenPort: 1790, logSeverityScreen: "Warning" },
      },
      {
        name: "communities and prefix advertisements (names and literal values)",
        doc: bgp("default", {
          communities: [
            { name: "std", value: "65535:65535" },
            { name: "large", value: "4294967295:1:2" },
          ],
          prefixAdvertisements: [
            { cidr: "10.65.0.0/16", communities: ["std", "large", "64512:300"] },
          ],
        }),
        stored: { asNumber: 64512 },
      },
      {
        name: "service ranges, mesh password and restart time",
        doc: bgp("default", {
          serviceClusterIPs: [{ cidr: "10.96.0.0/12" }],
          serviceExternalIPs: [{ cidr: "192.0.2.7" }],
          nodeMeshPassword: { secretKeyRef: { name: "bgp", key: "mesh" } },
          nodeMeshMaxRestartTime: "2m",
          bindMode: "NodeIP",
          ignoredInterfaces: ["docker*", "kube-ipvs0"],
        }),
        stored: { nodeMeshMaxRestartTime: "2m" },
      },
    ],
    [
      {
        name: "a name that is neither default nor node.<name>",
        doc: bgp("global"),
        errors: [{ path: "metadata.name", words: ['"global"', '"default"', "node.<node name>"] }],
      },
      {
        name: "a node name that is not a DNS subdomain",
        doc: bgp("node.Host_1"),
        errors: [{ path: "metadata.name", words: ["node.Host_1", "DNS-1123"] }],
      },
      {
        name: "cluster-wide fields on a node's resource",
        doc: bgp("node.host-1", {
          asNumber: 65001,
          nodeToNodeMeshEnabled: false,
          listenPort: 1790,
        }),
        errors: [
          { path: "spec.asNumber", words: ["cluster-wide", '"default"'] },
          { path: "spec.nodeToNodeMeshEnabled", words: ["cluster-wide"] },
        ],
      },
      {
        name: "community values out of range or malformed",
        doc: bgp("default", {
          communities: [
            { name: "a", value: "65536:1" },
            { name: "b", value: "1:2:4294967296" },
            { name: "c", value: "abc" },
          ],
          prefixAdvertisements: [{ cidr: "10.65.0.0/16", communities: ["a"] }],
        }),
        errors: [
          { path: "spec.communities[0].value", words: ["65536:1", "16-bit"] },
          { path: "spec.communities[1].value", words: ["32-bit"] },
          { path: "spec.communities[2].value", words: ['"abc"', "aa:nn"] },
        ],
      },
      {
        name: "communities that no prefix advertisement uses",
        doc: bgp("default", { communities: [{ name: "a", value: "1:1" }] }),
        errors: [{ path: "spec.communities", words: ["no prefixAdvertisements"] }],
      },
      {
        name: "a prefix advertisement naming an undefined community",
        doc: bgp("default", {
          prefixAdvertisements: [{ cidr: "10.65.0.0/16", communities: ["nope"] }],
        }),
        errors: [{ path: "spec.prefixAdvertisements[0].communities[0]", words: ['"nope"'] }],
      },
      {
        name: "mesh password and restart time with the mesh off",
        doc: bgp("default", {
          nodeToNodeMeshEnabled: false,
          nodeMeshPassword: { secretKeyRef: { name: "bgp", key: "mesh" } },
          nodeMeshMaxRestartTime: "120s",
        }),
        errors: [
          { path: "spec.nodeMeshPassword", words: ["mesh"] },
          { path: "spec.nodeMeshMaxRestartTime", words: ["mesh"] },
        ],
      },
      {
        name: "a bad duration, a port 0, a log level and a service range with host bits",
        doc: bgp("default", {
          nodeMeshMaxRestartTime: "2 minutes",
          listenPort: 0,
          logSeverityScreen: "Verbose",
          serviceClusterIPs: [{ cidr: "10.96.0.1/12" }],
        }),
        errors: [
          { path: "spec.nodeMeshMaxRestartTime", words: ['"2 minutes"', "duration"] },
          { path: "spec.listenPort", words: ["at least 1"] },
          { path: "spec.logSeverityScreen", words: ['"Verbose"', '"Info"'] },
          { path: "spec.serviceClusterIPs[0].cidr", words: ["host bits", "10.96.0.0/12"] },
        ],
      },
      {
        name: "ignoring every interface",
        doc: bgp("default", { ignoredInterfaces: ["*"] }),
        errors: [{ path: "spec.ignoredInterfaces[0]", words: ["every interface"] }],
      },
    ],
  );
});

describe("BGPPeer", () => {
  const peer = (spec: unknown) => doc("BGPPeer", "peer-1", spec);
  runTables(
    [
      {
        name: "a router by address and AS, with defaults sourceAddress UseNodeIP and keepOriginalNextHop false",
        doc: peer({ peerIP: "10.0.1.1", asNumber: 65001 }),
        exactly: {
          peerIP: "10.0.1.1",
          asNumber: 65001,
          sourceAddress: "UseNodeIP",
          keepOriginalNextHop: false,
        },
      },
      {
        name: "an IPv4 peer with a port and an asdot AS",
        doc: peer({ node: "host-1", peerIP: "10.0.1.1:1790", asNumber: "1.10" }),
        stored: { asNumber: 65546, peerIP: "10.0.1.1:1790" },
      },
      {
        name: "an IPv6 peer with a port, a password and timers",
        doc: peer({
          nodeSelector: "rack == 'a'",
          peerIP: "[fd00:1::1]:179",
          asNumber: 65001,
          password: { secretKeyRef: { name: "bgp", key: "tor" } },
          maxRestartTime: "2m",
          keepaliveTime: "20s",
          ttlSecurity: 1,
          reachableBy: "fd00:1::fe",
          nextHopMode: "Self",
        }),
        stored: { maxRestartTime: "2m" },
      },
      {
        name: "route reflectors chosen by selector, without an AS number",
        doc: peer({ nodeSelector: "!has(route-reflector)", peerSelector: "has(route-reflector)" }),
        stored: { peerSelector: "has(route-reflector)" },
      },
    ],
    [
      {
        name: "a peerIP without an AS number",
        doc: peer({ peerIP: "10.0.1.1" }),
        errors: [{ path: "spec.asNumber", words: ["required with peerIP"] }],
      },
      {
        name: "node with nodeSelector, peerIP with peerSelector, and an AS with peerSelector",
        doc: peer({
          node: "host-1",
          nodeSelector: "all()",
          peerIP: "10.0.1.1",
          peerSelector: "all()",
          asNumber: 65001,
        }),
        errors: [
          { path: "spec.node", words: ["node and nodeSelector", "exclusive"] },
          { path: "spec.peerSelector", words: ["peerIP and peerSelector", "exclusive"] },
          { path: "spec.asNumber", words: ["peerSelector"] },
        ],
      },
      {
        name: "a peer that peers with nobody",
        doc: peer({ node: "host-1" }),
        errors: [{ path: "spec", words: ["peerIP, peerSelector or localWorkloadSelector"] }],
      },
      {
        name: "malformed peer addresses",
        doc: peer({ peerIP: "10.0.1.1:70000", asNumber: 65001 }),
        errors: [{ path: "spec.peerIP", words: ['"10.0.1.1:70000"', "[<IPv6>]:<port>"] }],
      },
      {
        name: "a gateway of the other family",
        doc: peer({ peerIP: "10.0.1.1", asNumber: 65001, reachableBy: "fd00::1" }),
        errors: [{ path: "spec.reachableBy", words: ["IPv6", "IPv4"] }],
      },
      {
        name: "a gateway without peerIP",
        doc: peer({ peerSelector: "all()", reachableBy: "10.0.0.1" }),
        errors: [{ path: "spec.reachableBy", words: ["needs peerIP"] }],
      },
      {
        name: "keepOriginalNextHop with nextHopMode, BGP filters and bad timers",
        doc: peer({
          peerIP: "10.0.1.1",
          asNumber: 65001,
          keepOriginalNextHop: true,
          nextHopMode: "Keep",
          filters: ["export-only-pools"],
          maxRestartTime: "120",
          ttlSecurity: 256,
        }),
        errors: [
          { path: "spec.keepOriginalNextHop", words: ["nextHopMode"] },
          { path: "spec.filters", words: ["BGPFilter"] },
          { path: "spec.maxRestartTime", words: ['"120"', "duration"] },
          { path: "spec.ttlSecurity", words: ["at most 255"] },
        ],
      },
      {
        name: "a password without a key and an invalid selector",
        doc: peer({ peerSelector: "a ==", password: { secretKeyRef: { name: "bgp" } } }),
        errors: [
          { path: "spec.password.secretKeyRef.key", words: ["required"] },
          { path: "spec.peerSelector", words: ["a =="] },
        ],
      },
    ],
  );

  it("parses peer addresses with and without ports", () => {
    const table: [string, { address: string; family: 4 | 6; port?: number } | undefined][] = [
      ["10.0.0.1", { address: "10.0.0.1", family: 4 }],
      ["10.0.0.1:179", { address: "10.0.0.1", family: 4, port: 179 }],
      ["fd00::1", { address: "fd00::1", family: 6 }],
      ["fd00::1:179", { address: "fd00::1:179", family: 6 }],
      ["[fd00::1]:179", { address: "fd00::1", family: 6, port: 179 }],
      ["[10.0.0.1]:179", undefined],
      ["10.0.0.1:0", undefined],
      ["10.0.0.1:65536", undefined],
      ["router:179", undefined],
      ["", undefined],
    ];
    for (const [text, want] of table) {
      const got = parsePeerIP(text);
      const simple = got && {
        address: got.address,
        family: got.ip.family,
        ...(got.port ? { port: got.port } : {}),
      };
      assert.deepEqual(simple, want, text);
    }
  });
});

describe("FelixConfiguration", () => {
  const felix = (name: string, spec?: unknown) => doc("FelixConfiguration", name, spec);
  runTables(
    [
      {
        name: "default with no spec, every twill default filled in",
        doc: felix("default"),
        stored: {
          logSeverityScreen: "Info",
          reportingInterval: "30s",
          defaultEndpointToHostAction: "Drop",
          interfacePrefix: "tw",
          interfaceExclude: "kube-ipvs0",
          routeSource: "CalicoIPAM",
          deviceRouteProtocol: TWILL_ROUTE_PROTOCOL,
          healthPort: 9099,
          prometheusMetricsPort: 9091,
          ipv6Support: true,
          nftablesFilterDenyAction: "Drop",
          failsafeInboundHostPorts: DEFAULT_FAILSAFE_INBOUND,
        },
      },
      {
        name: "a node's override, stored without defaults",
        doc: felix("node.host-1", { reportingInterval: "1m30s", logSeverityScreen: "Debug" }),
        exactly: { reportingInterval: "1m30s", logSeverityScreen: "Debug" },
      },
      {
        name: "Calico fields twill ignores, stored as given",
        doc: felix("node.host-1", {
          bpfLogLevel: "",
          iptablesBackend: "Auto",
          vxlanVNI: 4096,
          chainInsertMode: "Insert",
        }),
        exactly: {
          bpfLogLevel: "",
          iptablesBackend: "Auto",
          vxlanVNI: 4096,
          chainInsertMode: "Insert",
        },
      },
      {
        name: "failsafe ports in lower case, stored upper case with TCP as the default protocol",
        doc: felix("node.host-1", {
          failsafeInboundHostPorts: [
            { protocol: "udp", port: 68 },
            { port: 22, net: "10.0.0.0/8" },
          ],
        }),
        exactly: {
          failsafeInboundHostPorts: [
            { protocol: "UDP", port: 68 },
            { protocol: "TCP", port: 22, net: "10.0.0.0/8" },
          ],
        },
      },
      {
        name: "overlay and encryption switches when false, several prefixes, a port range",
        doc: felix("node.host-1", {
          ipipEnabled: false,
          vxlanEnabled: false,
          wireguardEnabled: false,
          interfacePrefix: "cali,tap",
          natPortRange: "32768:65535",
          interfaceExclude: "kube-ipvs0,/^docker/",
        }),
        stored: { interfacePrefix: "cali,tap" },
      },
      {
        name: "an empty failsafe list (no failsafe ports)",
        doc: felix("default", { failsafeInboundHostPorts: [] }),
        stored: { failsafeInboundHostPorts: [] },
      },
    ],
    [
      {
        name: "a name that is neither default nor node.<name>",
        doc: felix("felix"),
        errors: [{ path: "metadata.name", words: ['"felix"', '"default"'] }],
      },
      {
        name: "an unknown field",
        doc: felix("default", { fooBar: true }),
        errors: [{ path: "spec.fooBar", words: ["unknown field"] }],
      },
      {
        name: "overlay and encryption switched on, with twill's reasons",
        doc: felix("default", { ipipEnabled: true, vxlanEnabled: true, wireguardEnabled: true }),
        errors: [
          { path: "spec.ipipEnabled", words: ["natively"] },
          { path: "spec.vxlanEnabled", words: ["natively"] },
          { path: "spec.wireguardEnabled", words: ["encrypt"] },
        ],
      },
      {
        name: "durations without units or negative",
        doc: felix("default", { reportingInterval: "90", routeRefreshInterval: "-1s" }),
        errors: [
          { path: "spec.reportingInterval", words: ['"90"', "duration"] },
          { path: "spec.routeRefreshInterval", words: ['"-1s"'] },
        ],
      },
      {
        name: "wrong-case actions and a bad failsafe entry",
        doc: felix("default", {
          defaultEndpointToHostAction: "ACCEPT",
          failsafeOutboundHostPorts: [{ protocol: "ICMP", port: 0 }],
        }),
        errors: [
          { path: "spec.defaultEndpointToHostAction", words: ['"ACCEPT"', '"Drop"'] },
          { path: "spec.failsafeOutboundHostPorts[0].protocol", words: ['"ICMP"'] },
          { path: "spec.failsafeOutboundHostPorts[0].port", words: ["at least 1"] },
        ],
      },
      {
        name: "a bad interface prefix, a reversed port range, an IPv6 NAT address and a bad regex",
        doc: felix("default", {
          interfacePrefix: "tw,bad prefix",
          natPortRange: "2000:1000",
          natOutgoingAddress: "fd00::1",
          mtuIfacePattern: "(eth",
        }),
        errors: [
          { path: "spec.interfacePrefix", words: ['"bad prefix"'] },
          { path: "spec.natPortRange", words: ["2000:1000"] },
          { path: "spec.natOutgoingAddress", words: ["IPv4"] },
          { path: "spec.mtuIfacePattern", words: ["regular expression"] },
        ],
      },
    ],
  );

  it("accepts any value for every ignored field, none of which twill also types", () => {
    const r = validateResource(
      felix("node.x", Object.fromEntries(IGNORED_FELIX_FIELDS.map((f) => [f, "x"]))),
    );
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    assert.equal(new Set(IGNORED_FELIX_FIELDS).size, IGNORED_FELIX_FIELDS.length);
    assert.deepEqual(
      IGNORED_FELIX_FIELDS.filter((f) => TWILL_FELIX_FIELDS.includes(f)),
      [],
    );
  });
});

describe("ClusterInformation", () => {
  runTables(
    [
      {
        name: "the cluster's facts",
        doc: doc("ClusterInformation", "default", {
          clusterGUID: "abc123",
          clusterType: "twill,bgp",
          datastoreReady: true,
        }),
        exactly: { clusterGUID: "abc123", clusterType: "twill,bgp", datastoreReady: true },
      },
      { name: "no spec", doc: doc("ClusterInformation", "default"), exactly: {} },
    ],
    [
      {
        name: "a name other than default and a string readiness",
        doc: doc("ClusterInformation", "cluster", { datastoreReady: "yes" }),
        errors: [
          { path: "metadata.name", words: ['"default"'] },
          { path: "spec.datastoreReady", words: ["boolean"] },
        ],
      },
    ],
  );
});

describe("parseDuration", () => {
  it("reads Go-style durations in milliseconds and refuses the rest", () => {
    const table: [string, number | undefined][] = [
      ["0", 0],
      ["0s", 0],
      ["90s", 90_000],
      ["1m30s", 90_000],
      ["1.5h", 5_400_000],
      ["250ms", 250],
      ["500us", 0.5],
      ["", undefined],
      ["90", undefined],
      ["-1s", undefined],
      ["1x", undefined],
      ["s", undefined],
      ["1m 30s", undefined],
    ];
    for (const [text, ms] of table) assert.equal(parseDuration(text), ms, JSON.stringify(text));
  });
});
