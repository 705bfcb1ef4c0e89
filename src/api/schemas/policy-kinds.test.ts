// Table-driven tests of the policy-side kinds (GlobalNetworkPolicy,
// NetworkPolicy, Tier, Profile, WorkloadEndpoint, HostEndpoint, network sets
// and Kubernetes NetworkPolicy), run through validateResource as the CLI and
// datastore use it. Invalid documents must produce exactly the listed error
// paths, each message containing the listed words.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { FieldError } from "../resource.js";
import { validateResource } from "../validate.js";
import { globalNetworkPolicyKind, networkPolicyKind } from "./network-policy.js";
import { globalNetworkSetKind, networkSetKind } from "./network-set.js";
import { hostEndpointKind } from "./host-endpoint.js";
import { k8sNetworkPolicyKind } from "./k8s-network-policy.js";
import { profileKind } from "./profile.js";
import { tierKind } from "./tier.js";
import { workloadEndpointKind } from "./workload-endpoint.js";

const V3 = "projectcalico.org/v3";

type Doc = Record<string, unknown>;

function gnp(spec: unknown, name = "allow-web"): Doc {
  return { apiVersion: V3, kind: "GlobalNetworkPolicy", metadata: { name }, spec };
}
function np(spec: unknown, name = "allow-web", namespace = "shop"): Doc {
  return { apiVersion: V3, kind: "NetworkPolicy", metadata: { name, namespace }, spec };
}
/** A GNP with one ingress rule. */
function ingressRule(rule: unknown): Doc {
  return gnp({ ingress: [rule] });
}
function tier(spec: unknown, name = "security"): Doc {
  return spec === undefined
    ? { apiVersion: V3, kind: "Tier", metadata: { name } }
    : { apiVersion: V3, kind: "Tier", metadata: { name }, spec };
}
function profile(spec: unknown, name = "dev"): Doc {
  return { apiVersion: V3, kind: "Profile", metadata: { name }, spec };
}
const WEP_SPEC = {
  orchestrator: "k8s",
  node: "node-1",
  pod: "web-1",
  endpoint: "eth0",
  interfaceName: "tw1234567890",
  ipNetworks: ["10.65.0.5/32"],
};
function wep(spec: Doc, name = "node--1-k8s-web--1-eth0"): Doc {
  return { apiVersion: V3, kind: "WorkloadEndpoint", metadata: { name, namespace: "shop" }, spec };
}
function hep(spec: unknown, name = "node-1-eth0"): Doc {
  return { apiVersion: V3, kind: "HostEndpoint", metadata: { name }, spec };
}
function gns(spec: unknown, labels?: Record<string, string>): Doc {
  return {
    apiVersion: V3,
    kind: "GlobalNetworkSet",
    metadata: { name: "office", ...(labels ? { labels } : {}) },
    spec,
  };
}
function knp(spec: unknown): Doc {
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: { name: "web", namespace: "shop" },
    spec,
  };
}

/** [path, ...words the message must contain] */
type Expected = [string, ...string[]];

interface InvalidCase {
  name: string;
  doc: Doc;
  errors: Expected[];
}

function errorsOf(doc: Doc): FieldError[] {
  const result = validateResource(doc);
  assert.equal(result.ok, false, `expected ${JSON.stringify(doc)} to be invalid`);
  return result.ok ? [] : result.errors;
}

function assertErrors(doc: Doc, expected: Expected[]): void {
  const errors = errorsOf(doc);
  const show = errors.map((e) => `${e.path}: ${e.message}`).join("\n");
  assert.deepEqual(
    errors.map((e) => e.path).sort(),
    expected.map((e) => e[0]).sort(),
    `error paths differ; got:\n${show}`,
  );
  for (const [path, ...words] of expected) {
    const messages = errors.filter((e) => e.path === path).map((e) => e.message);
    for (const word of words) {
      assert.ok(
        messages.some((m) => m.includes(word)),
        `no error at ${path} mentions ${JSON.stringify(word)}; got:\n${show}`,
      );
    }
  }
}

function valid(doc: Doc): Doc {
  const result = validateResource(doc);
  assert.ok(
    result.ok,
    result.ok ? "" : result.errors.map((e) => `${e.path}: ${e.message}`).join("\n"),
  );
  return result.resource as unknown as Doc;
}

function specOf(doc: Doc): Doc {
  return valid(doc)["spec"] as Doc;
}

function runInvalid(cases: InvalidCase[]): void {
  for (const c of cases) it(c.name, () => assertErrors(c.doc, c.errors));
}

describe("kind examples", () => {
  const kinds = {
    globalNetworkPolicyKind,
    networkPolicyKind,
    tierKind,
    profileKind,
    workloadEndpointKind,
    hostEndpointKind,
    globalNetworkSetKind,
    networkSetKind,
    k8sNetworkPolicyKind,
  };
  for (const [name, kind] of Object.entries(kinds)) {
    it(`${name} example is valid`, () => {
      valid(kind.example);
    });
  }
});

describe("rule ports", () => {
  it("accepts numbers, numeric strings, ranges and named ports, storing them as Calico does", () => {
    const spec = specOf(
      ingressRule({
        action: "Allow",
        protocol: "TCP",
        destination: { ports: [80, "443", "8000:8080", "90:90", "http"] },
      }),
    );
    const rule = (spec["ingress"] as Doc[])[0] as Doc;
    assert.deepEqual((rule["destination"] as Doc)["ports"], [80, 443, "8000:8080", 90, "http"]);
  });
  it("accepts ports with UDP, SCTP and protocol numbers 6, 17, 132", () => {
    for (const protocol of ["UDP", "SCTP", 6, 17, 132, "17"]) {
      valid(ingressRule({ action: "Allow", protocol, source: { notPorts: [53] } }));
    }
  });
  runInvalid([
    {
      name: "rejects a reversed range with the range in the message",
      doc: ingressRule({ action: "Allow", protocol: "TCP", destination: { ports: [80, "90:80"] } }),
      errors: [["spec.ingress[0].destination.ports[1]", 'port range "90:80" is reversed']],
    },
    {
      name: "rejects ports out of 1-65535",
      doc: ingressRule({
        action: "Allow",
        protocol: "TCP",
        destination: { ports: [0, 65536, "70000", "1:70000"] },
      }),
      errors: [
        ["spec.ingress[0].destination.ports[0]", "port 0", "out of range"],
        ["spec.ingress[0].destination.ports[1]", "65536", "out of range"],
        ["spec.ingress[0].destination.ports[2]", "70000", "out of range"],
        ["spec.ingress[0].destination.ports[3]", "1:70000", "out of range"],
      ],
    },
    {
      name: "rejects malformed port names and fractional ports",
      doc: ingressRule({
        action: "Allow",
        protocol: "TCP",
        destination: { notPorts: ["Web_Port", 80.5, "80-90"] },
      }),
      errors: [
        ["spec.ingress[0].destination.notPorts[0]", "Web_Port", "port name"],
        ["spec.ingress[0].destination.notPorts[1]", "80.5"],
        ["spec.ingress[0].destination.notPorts[2]", "80-90"],
      ],
    },
    {
      name: "rejects ports without a protocol",
      doc: ingressRule({ action: "Allow", destination: { ports: [80] } }),
      errors: [["spec.ingress[0].destination.ports", "protocol", "TCP, UDP or SCTP"]],
    },
    {
      name: "rejects ports (named ones too) with a protocol that has none",
      doc: ingressRule({
        action: "Allow",
        protocol: "ICMP",
        source: { ports: ["http"], notPorts: [22] },
      }),
      errors: [
        ["spec.ingress[0].source.ports", "TCP, UDP or SCTP"],
        ["spec.ingress[0].source.notPorts", "TCP, UDP or SCTP"],
      ],
    },
  ]);
});

describe("rule protocols and actions", () => {
  it("stores a numeric protocol string as a number", () => {
    const spec = specOf(ingressRule({ action: "Deny", protocol: "6", notProtocol: "UDPLite" }));
    const rule = (spec["ingress"] as Doc[])[0] as Doc;
    assert.equal(rule["protocol"], 6);
    assert.equal(rule["notProtocol"], "UDPLite");
  });
  runInvalid([
    {
      name: "names the right spelling of a wrongly cased protocol",
      doc: ingressRule({ action: "Allow", protocol: "tcp" }),
      errors: [["spec.ingress[0].protocol", '"tcp"', '"TCP"']],
    },
    {
      name: "rejects unknown protocols and numbers outside 1-255",
      doc: gnp({
        ingress: [
          { action: "Allow", protocol: "GRE" },
          { action: "Allow", protocol: 0 },
          { action: "Allow", notProtocol: 256 },
        ],
      }),
      errors: [
        ["spec.ingress[0].protocol", "GRE", "1-255"],
        ["spec.ingress[1].protocol", "0"],
        ["spec.ingress[2].notProtocol", "256"],
      ],
    },
    {
      name: "rejects an unknown or missing action",
      doc: gnp({ ingress: [{ action: "allow" }, { protocol: "TCP" }] }),
      errors: [
        ["spec.ingress[0].action", '"allow"', '"Allow"'],
        ["spec.ingress[1].action", "required field is missing"],
      ],
    },
    {
      name: "rejects an ipVersion other than 4 or 6",
      doc: ingressRule({ action: "Allow", ipVersion: 5 }),
      errors: [["spec.ingress[0].ipVersion", "5"]],
    },
    {
      name: "rejects unknown fields in a rule and in an entity rule",
      doc: ingressRule({ action: "Allow", destinaton: {}, source: { net: ["10.0.0.0/8"] } }),
      errors: [
        ["spec.ingress[0].destinaton", "unknown field"],
        ["spec.ingress[0].source.net", "unknown field"],
      ],
    },
  ]);
});

describe("rule ICMP", () => {
  it("accepts ICMP with ipVersion 4 and ICMPv6 with ipVersion 6", () => {
    valid(
      ingressRule({ action: "Allow", protocol: "ICMP", ipVersion: 4, icmp: { type: 8, code: 0 } }),
    );
    valid(
      ingressRule({ action: "Allow", protocol: "ICMPv6", ipVersion: 6, notICMP: { type: 128 } }),
    );
    valid(ingressRule({ action: "Allow", protocol: 58, icmp: { type: 135 } }));
  });
  runInvalid([
    {
      name: "rejects ICMP fields without an ICMP protocol",
      doc: gnp({
        ingress: [
          { action: "Allow", icmp: { type: 8 } },
          { action: "Allow", protocol: "TCP", notICMP: { type: 3 } },
        ],
      }),
      errors: [
        ["spec.ingress[0].icmp", "ICMP or ICMPv6"],
        ["spec.ingress[1].notICMP", "ICMP or ICMPv6"],
      ],
    },
    {
      name: "rejects a code without a type, and values out of range",
      doc: gnp({
        ingress: [
          { action: "Allow", protocol: "ICMP", icmp: { code: 0 } },
          { action: "Allow", protocol: "ICMP", icmp: { type: 255, code: 256 } },
        ],
      }),
      errors: [
        ["spec.ingress[0].icmp.code", "type"],
        ["spec.ingress[1].icmp.type", "254"],
        ["spec.ingress[1].icmp.code", "255"],
      ],
    },
    {
      name: "rejects ICMP with ipVersion 6 and ICMPv6 with ipVersion 4",
      doc: gnp({
        ingress: [
          { action: "Allow", protocol: "ICMP", ipVersion: 6 },
          { action: "Allow", notProtocol: "ICMPv6", ipVersion: 4 },
        ],
      }),
      errors: [
        ["spec.ingress[0].ipVersion", "ICMP", "ipVersion 4"],
        ["spec.ingress[1].ipVersion", "ICMPv6", "ipVersion 6"],
      ],
    },
  ]);
});

describe("rule address families", () => {
  it("accepts IPv6 nets on both sides with ipVersion 6", () => {
    valid(
      ingressRule({
        action: "Allow",
        ipVersion: 6,
        source: { nets: ["2001:db8::/32"] },
        destination: { notNets: ["2001:db8:1::/48"] },
      }),
    );
  });
  runInvalid([
    {
      name: "rejects IPv4 and IPv6 in one field",
      doc: ingressRule({ action: "Allow", source: { nets: ["10.0.0.0/8", "fd00::/8"] } }),
      errors: [["spec.ingress[0].source.nets", "IPv4 and IPv6"]],
    },
    {
      name: "rejects IPv4 on one side and IPv6 on the other",
      doc: ingressRule({
        action: "Allow",
        source: { nets: ["10.0.0.0/8"] },
        destination: { notNets: ["fd00::/8"] },
      }),
      errors: [["spec.ingress[0].destination.notNets", "IPv4 and IPv6"]],
    },
    {
      name: "rejects nets that contradict ipVersion",
      doc: ingressRule({ action: "Allow", ipVersion: 4, destination: { nets: ["fd00::/8"] } }),
      errors: [["spec.ingress[0].destination.nets", "ipVersion 4"]],
    },
    {
      name: "rejects CIDRs with host bits, bare addresses and garbage",
      doc: ingressRule({ action: "Allow", source: { nets: ["10.0.0.1/24", "10.0.0.1", "ten"] } }),
      errors: [
        ["spec.ingress[0].source.nets[0]", "host bits", '"10.0.0.0/24"'],
        ["spec.ingress[0].source.nets[1]", "not a CIDR"],
        ["spec.ingress[0].source.nets[2]", "not a CIDR"],
      ],
    },
  ]);
});

describe("rule selectors", () => {
  it("accepts global() alone in an entity rule's namespaceSelector", () => {
    valid(
      ingressRule({
        action: "Allow",
        source: { namespaceSelector: "global()", selector: "role == 'x'" },
      }),
    );
  });
  runInvalid([
    {
      name: "reports a selector syntax error with its position at the field",
      doc: ingressRule({ action: "Allow", source: { selector: "role == " } }),
      errors: [["spec.ingress[0].source.selector", "position 8", "quoted string"]],
    },
    {
      name: "rejects global() outside a rule's namespaceSelector",
      doc: gnp({
        selector: "global()",
        namespaceSelector: "global()",
        serviceAccountSelector: "global()",
        ingress: [
          {
            action: "Allow",
            source: {
              selector: "global()",
              notSelector: "!global()",
              serviceAccounts: { selector: "global()" },
            },
          },
        ],
      }),
      errors: [
        ["spec.selector", "global()"],
        ["spec.namespaceSelector", "global()"],
        ["spec.serviceAccountSelector", "global()"],
        ["spec.ingress[0].source.selector", "namespaceSelector"],
        ["spec.ingress[0].source.notSelector", "namespaceSelector"],
        ["spec.ingress[0].source.serviceAccounts.selector", "namespaceSelector"],
      ],
    },
    {
      name: "rejects global() combined with other expressions",
      doc: ingressRule({
        action: "Allow",
        destination: { namespaceSelector: "global() && env == 'prod'" },
      }),
      errors: [["spec.ingress[0].destination.namespaceSelector", "combined"]],
    },
  ]);
});

describe("rule services and http", () => {
  it("accepts services as an ingress source (with namespace in a GNP) and http on Allow", () => {
    valid(
      gnp({
        ingress: [
          {
            action: "Allow",
            protocol: "TCP",
            source: { services: { name: "api", namespace: "shop" } },
          },
          {
            action: "Allow",
            http: { methods: ["GET"], paths: [{ exact: "/healthz" }, { prefix: "/api/" }] },
          },
        ],
        egress: [
          {
            action: "Allow",
            destination: { services: { name: "kubernetes", namespace: "default" } },
          },
        ],
      }),
    );
    valid(np({ egress: [{ action: "Allow", destination: { services: { name: "db" } } }] }));
  });
  runInvalid([
    {
      name: "rejects services combined with selectors, nets or service accounts",
      doc: ingressRule({
        action: "Allow",
        source: {
          services: { name: "api", namespace: "shop" },
          selector: "a == 'b'",
          nets: ["10.0.0.0/8"],
          namespaceSelector: "all()",
          serviceAccounts: { names: ["x"] },
        },
      }),
      errors: [
        ["spec.ingress[0].source.services", "selector"],
        ["spec.ingress[0].source.services", "nets"],
        ["spec.ingress[0].source.services", "namespaceSelector"],
        ["spec.ingress[0].source.services", "serviceAccounts"],
      ],
    },
    {
      name: "rejects services on the wrong side and without a namespace in a GNP",
      doc: gnp({
        ingress: [
          { action: "Allow", destination: { services: { name: "api", namespace: "shop" } } },
        ],
        egress: [
          { action: "Allow", source: { services: { name: "api", namespace: "shop" } } },
          {
            action: "Allow",
            protocol: "TCP",
            destination: { services: { name: "db" }, ports: [5432] },
          },
        ],
      }),
      errors: [
        ["spec.ingress[0].destination.services", "ingress"],
        ["spec.egress[0].source.services", "egress"],
        ["spec.egress[1].destination.services.namespace", "namespace"],
        ["spec.egress[1].destination.ports", "services"],
      ],
    },
    {
      name: "rejects http with a non-TCP protocol, on Deny, in egress, and malformed",
      doc: gnp({
        ingress: [
          { action: "Allow", protocol: "UDP", http: { methods: ["GET"] } },
          {
            action: "Deny",
            http: {
              methods: ["GET", "GET"],
              paths: [{ exact: "/a", prefix: "/b" }, { prefix: "api" }],
            },
          },
        ],
        egress: [{ action: "Allow", http: { methods: ["PUT"] } }],
      }),
      errors: [
        ["spec.ingress[0].protocol", "TCP"],
        ["spec.ingress[1].http", "Allow"],
        ["spec.ingress[1].http.methods[1]", "twice"],
        ["spec.ingress[1].http.paths[0]", "exactly one"],
        ["spec.ingress[1].http.paths[1].prefix", '"/"'],
        ["spec.egress[0].http", "egress"],
      ],
    },
  ]);
});

describe("policy defaults", () => {
  const typesCases: { name: string; spec: Doc; types: string[] }[] = [
    { name: "no rules at all", spec: {}, types: ["Ingress"] },
    { name: "ingress rules only", spec: { ingress: [{ action: "Allow" }] }, types: ["Ingress"] },
    { name: "egress rules only", spec: { egress: [{ action: "Allow" }] }, types: ["Egress"] },
    {
      name: "both",
      spec: { ingress: [{ action: "Allow" }], egress: [{ action: "Deny" }] },
      types: ["Ingress", "Egress"],
    },
    {
      name: "an empty types list",
      spec: { types: [], egress: [{ action: "Allow" }] },
      types: ["Egress"],
    },
    {
      name: "explicit types",
      spec: { types: ["Egress"], ingress: [{ action: "Allow" }] },
      types: ["Egress"],
    },
  ];
  for (const c of typesCases) {
    it(`defaults types from the rules: ${c.name}`, () => {
      assert.deepEqual(specOf(gnp(c.spec))["types"], c.types);
      assert.deepEqual(specOf(np(c.spec))["types"], c.types);
    });
  }
  it('defaults tier to "default", also when spec is omitted', () => {
    assert.equal(specOf(gnp({ selector: "all()" }))["tier"], "default");
    const stored = valid({
      apiVersion: V3,
      kind: "GlobalNetworkPolicy",
      metadata: { name: "deny-all" },
    });
    assert.deepEqual(stored["spec"], { tier: "default", types: ["Ingress"] });
  });
  it("keeps order, selectors and flags as given", () => {
    const spec = specOf(
      gnp({
        order: 10.5,
        selector: "has(role)",
        doNotTrack: true,
        applyOnForward: true,
        types: ["Ingress"],
      }),
    );
    assert.deepEqual(spec, {
      tier: "default",
      order: 10.5,
      selector: "has(role)",
      doNotTrack: true,
      applyOnForward: true,
      types: ["Ingress"],
    });
  });
});

describe("policy names and tiers", () => {
  const validNames: [string, string | undefined, "gnp" | "np"][] = [
    ["allow-web", undefined, "gnp"],
    ["default.allow-web", undefined, "gnp"],
    ["security.allow-web", "security", "gnp"],
    ["security.allow-web", "security", "np"],
    ["knp.default.from.k8s", undefined, "np"],
  ];
  for (const [name, tierName, kind] of validNames) {
    it(`accepts ${kind} "${name}" in tier ${tierName ?? "default"}`, () => {
      const spec = tierName ? { tier: tierName } : {};
      valid(kind === "gnp" ? gnp(spec, name) : np(spec, name));
    });
  }
  runInvalid([
    {
      name: "requires the tier prefix outside the default tier",
      doc: gnp({ tier: "security" }, "allow-web"),
      errors: [["metadata.name", '"security.allow-web"']],
    },
    {
      name: "rejects another tier's prefix",
      doc: np({ tier: "security" }, "platform.allow-web"),
      errors: [["metadata.name", '"security."']],
    },
    {
      name: "rejects a dotted name in the default tier unless it starts with default.",
      doc: gnp({}, "platform.allow-web"),
      errors: [["metadata.name", '"default."']],
    },
    {
      name: "rejects names with two dots or upper case",
      doc: gnp({}, "a.b.c"),
      errors: [["metadata.name", "DNS-1123 label"]],
    },
    {
      name: "rejects upper case names and tiers with dots",
      doc: gnp({ tier: "sec.urity" }, "Allow"),
      errors: [
        ["metadata.name", "DNS-1123"],
        ["spec.tier", "DNS-1123 label"],
      ],
    },
  ]);
});

describe("policy-level checks", () => {
  runInvalid([
    {
      name: "reports all three wrong fields of a GlobalNetworkPolicy at once",
      doc: gnp({
        order: "first",
        selector: "role = 'db'",
        ingress: [{ action: "Allow", protocol: "TCP", destination: { ports: [80, "90:80"] } }],
      }),
      errors: [
        ["spec.order", "expected number"],
        ["spec.selector", "position"],
        ["spec.ingress[0].destination.ports[1]", 'port range "90:80" is reversed'],
      ],
    },
    {
      name: "reports rule-level and spec-level problems together with a type error elsewhere",
      doc: gnp({
        types: ["Ingress", "Ingress"],
        preDNAT: true,
        ingress: [{ action: "Alow", icmp: { type: 8 } }],
      }),
      errors: [
        ["spec.types[1]", "twice"],
        ["spec.applyOnForward", "preDNAT"],
        ["spec.ingress[0].action", '"Alow"'],
        ["spec.ingress[0].icmp", "ICMP"],
      ],
    },
    {
      name: "enforces Calico's preDNAT / doNotTrack / applyOnForward constraints",
      doc: gnp({
        preDNAT: true,
        doNotTrack: true,
        types: ["Egress"],
        egress: [{ action: "Allow" }],
      }),
      errors: [
        ["spec.preDNAT", "doNotTrack"],
        ["spec.egress", "preDNAT"],
        ["spec.types", "Egress"],
        ["spec.applyOnForward", "applyOnForward"],
      ],
    },
    {
      name: "rejects unknown types, hints and GNP-only fields in a NetworkPolicy",
      doc: np({
        types: ["Inbound"],
        performanceHints: ["Fast"],
        doNotTrack: true,
        namespaceSelector: "all()",
      }),
      errors: [
        ["spec.types[0]", '"Inbound"'],
        ["spec.performanceHints[0]", '"Fast"'],
        ["spec.doNotTrack", "unknown field"],
        ["spec.namespaceSelector", "unknown field"],
      ],
    },
  ]);
});

describe("Tier", () => {
  it("leaves order unset (after every ordered tier) and defaults defaultAction to Deny", () => {
    assert.deepEqual(valid(tier(undefined))["spec"], { defaultAction: "Deny" });
    assert.deepEqual(valid(tier({ order: 100, defaultAction: "Pass" }))["spec"], {
      order: 100,
      defaultAction: "Pass",
    });
    assert.deepEqual(valid(tier({}, "default"))["spec"], { defaultAction: "Deny" });
  });
  runInvalid([
    {
      name: "rejects another order for the default tier",
      doc: tier({ order: 5 }, "default"),
      errors: [["spec.order", "1000000"]],
    },
    {
      name: "rejects dotted names and actions other than Deny and Pass",
      doc: tier({ defaultAction: "Allow" }, "a.b"),
      errors: [
        ["metadata.name", "DNS-1123 label"],
        ["spec.defaultAction", '"Allow"'],
      ],
    },
  ]);
});

describe("Profile", () => {
  it("accepts rules and labelsToApply, and an omitted spec", () => {
    valid(profile({ ingress: [{ action: "Allow" }], labelsToApply: { team: "dev" } }));
    valid({ apiVersion: V3, kind: "Profile", metadata: { name: "kns.shop" } });
  });
  runInvalid([
    {
      name: "checks its rules and labels",
      doc: profile({
        egress: [{ action: "Allow", protocol: "TCP", destination: { ports: ["100:10"] } }],
        labelsToApply: { "bad key!": "x" },
      }),
      errors: [
        ["spec.egress[0].destination.ports[0]", "reversed"],
        ['spec.labelsToApply["bad key!"]', "label key"],
      ],
    },
  ]);
});

describe("WorkloadEndpoint", () => {
  it("accepts names built from the spec for each orchestrator", () => {
    valid(wep(WEP_SPEC));
    valid(
      wep(
        { ...WEP_SPEC, orchestrator: "cni", pod: undefined, containerID: "abc-123" },
        "node--1-cni-abc--123-eth0",
      ),
    );
    valid(
      wep(
        { ...WEP_SPEC, orchestrator: "libnetwork", pod: undefined },
        "node--1-libnetwork-libnetwork-eth0",
      ),
    );
    valid(
      wep(
        { ...WEP_SPEC, orchestrator: "twill", pod: undefined, workload: "vm1" },
        "node--1-twill-vm1-eth0",
      ),
    );
  });
  it("accepts NATs within ipNetworks, gateways, MACs and ports", () => {
    valid(
      wep({
        ...WEP_SPEC,
        ipNetworks: ["10.65.0.5/32", "fd00::5"],
        ipNATs: [{ internalIP: "10.65.0.5", externalIP: "203.0.113.5" }],
        ipv4Gateway: "169.254.1.1",
        ipv6Gateway: "fe80::1",
        mac: "0a:58:0a:f4:00:05",
        ports: [
          { name: "http", protocol: "TCP", port: 80 },
          { protocol: "UDP", port: 53, hostPort: 5353, hostIP: "192.0.2.1" },
        ],
        allowSpoofedSourcePrefixes: ["192.0.2.0/24"],
      }),
    );
  });
  runInvalid([
    {
      name: "rejects a name that does not match the spec",
      doc: wep(WEP_SPEC, "node-1-k8s-web-1-eth0"),
      errors: [["metadata.name", '"node--1-k8s-web--1-eth0"']],
    },
    {
      name: "requires the field the orchestrator's name scheme needs, and the always-required ones",
      doc: wep({ orchestrator: "k8s", node: "node-1", endpoint: "eth0" }),
      errors: [
        ["spec.pod", "orchestrator"],
        ["spec.interfaceName", "required"],
      ],
    },
    {
      name: "checks addresses, NATs, gateways, MAC and ports",
      doc: wep({
        ...WEP_SPEC,
        ipNetworks: ["10.65.0.0/24"],
        ipNATs: [
          { internalIP: "10.66.0.1", externalIP: "203.0.113.5" },
          { internalIP: "10.65.0.9", externalIP: "2001:db8::1" },
        ],
        ipv4Gateway: "fe80::1",
        mac: "zz:zz",
        ports: [{ protocol: "ICMP", port: 0 }],
        interfaceName: "a-much-too-long-name",
      }),
      errors: [
        ["spec.ipNetworks[0]", "single addresses"],
        ["spec.ipNATs[0].internalIP", "ipNetworks"],
        ["spec.ipNATs[1].externalIP", "IPv6"],
        ["spec.ipv4Gateway", "IPv4"],
        ["spec.mac", "MAC"],
        ["spec.ports[0].name", "hostPort"],
        ["spec.ports[0].protocol", "TCP, UDP or SCTP"],
        ["spec.ports[0].port", "at least 1"],
        ["spec.interfaceName", "interface name"],
      ],
    },
  ]);
});

describe("HostEndpoint", () => {
  it("accepts an interface, expected IPs, or the * interface", () => {
    valid(hep({ node: "node-1", interfaceName: "eth0" }));
    valid(hep({ node: "node-1", expectedIPs: ["192.168.0.1", "fd00::1"] }));
    valid(
      hep({
        node: "node-1",
        interfaceName: "*",
        ports: [{ name: "ssh", protocol: "TCP", port: 22 }],
      }),
    );
  });
  runInvalid([
    {
      name: "requires a node and an interface or expected IPs",
      doc: hep({ profiles: ["p"] }),
      errors: [
        ["spec.node", "required"],
        ["spec.interfaceName", "expectedIPs"],
      ],
    },
    {
      name: "checks expected IPs and named ports",
      doc: hep({
        node: "node-1",
        expectedIPs: ["10.0.0.0/8"],
        ports: [{ name: "SSH", protocol: "UDPLite", port: 22 }],
      }),
      errors: [
        ["spec.expectedIPs[0]", "not an IP address"],
        ["spec.ports[0].name", "port name"],
        ["spec.ports[0].protocol", "TCP, UDP or SCTP"],
      ],
    },
  ]);
});

describe("GlobalNetworkSet and NetworkSet", () => {
  it("accepts mixed-family nets, bare addresses and an omitted spec", () => {
    valid(gns({ nets: ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"] }));
    valid({ apiVersion: V3, kind: "GlobalNetworkSet", metadata: { name: "empty" } });
    valid({
      apiVersion: V3,
      kind: "NetworkSet",
      metadata: { name: "n", namespace: "shop" },
      spec: { nets: ["10.1.0.0/16"] },
    });
  });
  runInvalid([
    {
      name: "rejects bad nets and the reserved namespace label",
      doc: gns({ nets: ["10.0.0.0/33", "example.com"] }, { "projectcalico.org/namespace": "shop" }),
      errors: [
        ["spec.nets[0]", "10.0.0.0/33"],
        ["spec.nets[1]", "example.com"],
        ['metadata.labels["projectcalico.org/namespace"]', "reserved"],
      ],
    },
  ]);
});

describe("Kubernetes NetworkPolicy", () => {
  it("applies the API server's defaults", () => {
    const spec = specOf(knp({ egress: [{ ports: [{ port: 53 }] }] }));
    assert.deepEqual(spec, {
      podSelector: {},
      policyTypes: ["Ingress", "Egress"],
      egress: [{ ports: [{ protocol: "TCP", port: 53 }] }],
    });
    assert.deepEqual(specOf(knp({ podSelector: { matchLabels: { app: "web" } } }))["policyTypes"], [
      "Ingress",
    ]);
  });
  it("accepts selectors, ipBlocks, named ports and port ranges", () => {
    valid(
      knp({
        podSelector: { matchExpressions: [{ key: "app", operator: "In", values: ["web", "api"] }] },
        ingress: [
          {
            from: [
              { podSelector: {}, namespaceSelector: { matchLabels: { team: "a" } } },
              { ipBlock: { cidr: "fd00::/8", except: ["fd00:1::/32"] } },
            ],
            ports: [{ port: "http" }, { protocol: "UDP", port: 1000, endPort: 2000 }],
          },
        ],
        egress: [
          { to: [{ namespaceSelector: { matchExpressions: [{ key: "x", operator: "Exists" }] } }] },
        ],
      }),
    );
  });
  runInvalid([
    {
      name: "checks ports like the API server",
      doc: knp({
        ingress: [
          {
            ports: [
              { port: 2000, endPort: 1000 },
              { port: "http", endPort: 90 },
              { endPort: 90 },
              { port: 0 },
              { port: "80" },
              { protocol: "ICMP" },
            ],
          },
        ],
      }),
      errors: [
        ["spec.ingress[0].ports[0].endPort", "greater than or equal"],
        ["spec.ingress[0].ports[1].endPort", "named port"],
        ["spec.ingress[0].ports[2].endPort", "port is not specified"],
        ["spec.ingress[0].ports[3].port", "out of range"],
        ["spec.ingress[0].ports[4].port", "port name"],
        ["spec.ingress[0].ports[5].protocol", '"ICMP"'],
      ],
    },
    {
      name: "checks peers and ipBlocks",
      doc: knp({
        egress: [
          {
            to: [
              {},
              { ipBlock: { cidr: "10.0.0.0/8" }, podSelector: {} },
              {
                ipBlock: {
                  cidr: "10.0.0.0/8",
                  except: ["10.0.0.0/8", "192.168.0.0/16", "10.1.0.0"],
                },
              },
              { ipBlock: { cidr: "10.0.0.0" } },
            ],
          },
        ],
      }),
      errors: [
        ["spec.egress[0].to[0]", "must specify a peer"],
        ["spec.egress[0].to[1]", "both ipBlock and another peer"],
        ["spec.egress[0].to[2].ipBlock.except[0]", "strict subset"],
        ["spec.egress[0].to[2].ipBlock.except[1]", "strict subset"],
        ["spec.egress[0].to[2].ipBlock.except[2]", "not a CIDR"],
        ["spec.egress[0].to[3].ipBlock.cidr", "not a CIDR"],
      ],
    },
    {
      name: "checks label selectors and policy types",
      doc: knp({
        podSelector: {
          matchLabels: { "bad key!": "x" },
          matchExpressions: [
            { key: "a", operator: "In" },
            { key: "b", operator: "Exists", values: ["x"] },
            { key: "c", operator: "Has" },
          ],
        },
        policyTypes: ["Ingress", "Sideways"],
      }),
      errors: [
        ['spec.podSelector.matchLabels["bad key!"]', "label key"],
        ["spec.podSelector.matchExpressions[0].values", "at least one value"],
        ["spec.podSelector.matchExpressions[1].values", "no values"],
        ["spec.podSelector.matchExpressions[2].operator", '"Has"'],
        ["spec.policyTypes[1]", '"Sideways"'],
      ],
    },
  ]);
});
