// What `twill lab check` expects: verdicts from the reference evaluator for
// every ordered pair, with Calico and Kubernetes policies, both directions.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parseDocuments } from "../api/parse-documents.js";
import type { Resource } from "../api/resource.js";
import { validateResource } from "../api/validate.js";
import { isErrorCode } from "../util/errors.js";
import { decisionText, planCheck, verdictReason } from "./lab-check-plan.js";
import type { CheckWorkload, PlannedProbe } from "./lab-check-plan.js";

function valid(doc: unknown): Resource {
  const r = validateResource(doc);
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.resource;
}

/** A workload as the lab's CNI attach leaves it: a pod default/<name>. */
function pod(
  name: string,
  host: string,
  tenant: string,
  n: number,
  v6 = false,
): [CheckWorkload, Resource] {
  const ipv4 = `10.65.0.${n}`;
  const ipv6 = v6 ? `fd00:65::${n}` : undefined;
  const w: CheckWorkload = { name, ns: `twl-t-${name}`, host, labels: { tenant }, ipv4 };
  if (ipv6 !== undefined) w.ipv6 = ipv6;
  const wep = valid({
    apiVersion: "projectcalico.org/v3",
    kind: "WorkloadEndpoint",
    metadata: {
      name: `${host}-k8s-${name}-eth0`,
      namespace: "default",
      labels: {
        tenant,
        "projectcalico.org/namespace": "default",
        "projectcalico.org/orchestrator": "k8s",
      },
    },
    spec: {
      orchestrator: "k8s",
      node: host,
      pod: name,
      endpoint: "eth0",
      interfaceName: `tw${n}`,
      ipNetworks: [`${ipv4}/32`, ...(ipv6 ? [`${ipv6}/128`] : [])],
      profiles: ["kns.default"],
    },
  });
  return [w, wep];
}

const allowAll = valid({
  apiVersion: "projectcalico.org/v3",
  kind: "Profile",
  metadata: { name: "kns.default" },
  spec: { ingress: [{ action: "Allow" }], egress: [{ action: "Allow" }] },
});

const pods = [
  pod("a1", "h1", "a", 1),
  pod("b1", "h1", "b", 2),
  pod("a2", "h2", "a", 3),
  pod("b2", "h2", "b", 4),
];
const workloads = pods.map(([w]) => w);
const base = [allowAll, ...pods.map(([, r]) => r)];

/** "a1>b1" for every pair the probes of `proto` say is allowed. */
function allowedPairs(probes: readonly PlannedProbe[], proto: "tcp" | "icmp"): string[] {
  return probes.filter((p) => p.proto === proto && p.allowed).map((p) => `${p.from}>${p.to}`);
}

const sameTenant = ["a1>a2", "b1>b2", "a2>a1", "b2>b1"].sort();
const everyPair = workloads.flatMap((a) =>
  workloads.filter((b) => b !== a).map((b) => `${a.name}>${b.name}`),
);

describe("planCheck", () => {
  it("probes every ordered pair twice (tcp to the port, ping); profiles alone allow all", () => {
    const probes = planCheck(base, workloads, { port: 80, families: [4] });
    assert.equal(probes.length, 4 * 3 * 2);
    assert.deepEqual(allowedPairs(probes, "tcp"), everyPair);
    assert.deepEqual(allowedPairs(probes, "icmp"), everyPair);
    const first = probes[0];
    assert.deepEqual(first, {
      from: "a1",
      to: "b1",
      proto: "tcp",
      family: 4,
      addr: "10.65.0.2",
      port: 80,
      allowed: true,
      egress: "profile kns.default rule 0 (Allow)",
      ingress: "profile kns.default rule 0 (Allow)",
    });
    assert.equal(probes[1]?.proto, "icmp");
    assert.equal(probes[1]?.port, undefined);
  });

  it("the lab's tenant-isolation example: tenants a and b do not reach each other", () => {
    const text = readFileSync(
      new URL("../../../examples/lab/tenant-isolation.yaml", import.meta.url),
      "utf8",
    );
    const docs = parseDocuments(text, "tenant-isolation.yaml").documents.map((d) => valid(d.value));
    const probes = planCheck([...base, ...docs], workloads, { port: 80, families: [4] });
    assert.deepEqual(allowedPairs(probes, "tcp").sort(), sameTenant);
    assert.deepEqual(allowedPairs(probes, "icmp").sort(), sameTenant);
    const denied = probes.find((p) => p.from === "a1" && p.to === "b2" && p.proto === "tcp");
    assert.equal(denied?.deniedAt, "ingress");
    assert.equal(denied?.ingress, "default/tenant-isolation rule 0 (Deny)");
    assert.equal(verdictReason(denied!), "ingress: default/tenant-isolation rule 0 (Deny)");
  });

  it("a Kubernetes NetworkPolicy selects the pods: tenant b accepts only tenant b, on port 80 only", () => {
    const knp = valid({
      apiVersion: "networking.k8s.io/v1",
      kind: "NetworkPolicy",
      metadata: { name: "b-only", namespace: "default" },
      spec: {
        podSelector: { matchLabels: { tenant: "b" } },
        ingress: [
          {
            from: [{ podSelector: { matchLabels: { tenant: "b" } } }],
            ports: [{ protocol: "TCP", port: 80 }],
          },
        ],
      },
    });
    const probes = planCheck([...base, knp], workloads, { port: 80, families: [4] });
    const intoA = everyPair.filter((p) => p.endsWith("a1") || p.endsWith("a2"));
    assert.deepEqual(allowedPairs(probes, "tcp").sort(), [...intoA, "b1>b2", "b2>b1"].sort());
    // Ping is not TCP/80: no tenant reaches b.
    assert.deepEqual(allowedPairs(probes, "icmp").sort(), intoA.sort());
    const a1b1 = probes.find((p) => p.from === "a1" && p.to === "b1" && p.proto === "tcp");
    assert.equal(a1b1?.ingress, "end of tier default: no rule matched (Deny)");
  });

  it("an egress policy denies at the source", () => {
    const gnp = valid({
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "a-quiet" },
      spec: {
        selector: "tenant == 'a'",
        types: ["Egress"],
        egress: [{ action: "Deny", protocol: "ICMP" }, { action: "Allow" }],
      },
    });
    const probes = planCheck([...base, gnp], workloads, { port: 80, families: [4] });
    const ping = probes.find((p) => p.from === "a1" && p.to === "b1" && p.proto === "icmp");
    assert.equal(ping?.allowed, false);
    assert.equal(ping?.deniedAt, "egress");
    assert.equal(allowedPairs(probes, "tcp").length, 12);
  });

  it("dual stack: IPv6 probes with ICMPv6 where both ends have an IPv6 address", () => {
    const v6 = [
      pod("a1", "h1", "a", 1, true),
      pod("b1", "h1", "b", 2, true),
      pod("a2", "h2", "a", 3),
    ];
    const probes = planCheck(
      [allowAll, ...v6.map(([, r]) => r)],
      v6.map(([w]) => w),
      { port: 8080, families: [4, 6] },
    );
    assert.equal(probes.filter((p) => p.family === 4).length, 12);
    assert.deepEqual(
      probes.filter((p) => p.family === 6).map((p) => `${p.from}>${p.to} ${p.proto} ${p.addr}`),
      [
        "a1>b1 tcp fd00:65::2",
        "a1>b1 icmp fd00:65::2",
        "b1>a1 tcp fd00:65::1",
        "b1>a1 icmp fd00:65::1",
      ],
    );
    assert.ok(probes.every((p) => p.allowed));
  });

  it("a workload without an endpoint in the datastore is an error naming it", () => {
    assert.throws(
      () => planCheck([allowAll], workloads.slice(0, 1), { port: 80, families: [4] }),
      (err) => isErrorCode(err, "NotFound") && /workload a1 \(10\.65\.0\.1\)/.test(err.message),
    );
  });

  it("decisionText words every kind of decision", () => {
    assert.equal(
      decisionText({ by: "missing-profile", profile: "kns.x", action: "Deny" }),
      "profile kns.x does not exist (Deny)",
    );
    assert.equal(decisionText({ by: "no-match", action: "Deny" }), "nothing allowed it (Deny)");
    assert.equal(
      decisionText({ by: "not-applicable", action: "Allow" }),
      "not a twill endpoint (Allow)",
    );
  });
});
