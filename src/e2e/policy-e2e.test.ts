// Policy end to end, as root: the real `twill agent` in a host namespace
// against a real etcd (host-lab.ts), three dual-stack workloads and one
// interface the agent does not know, an "outside" namespace behind the
// host's uplink, and a connectivity matrix (src/netcheck) per scenario.
//
//   outside 192.168.254.2 · 203.0.113.10 2001:db8:ff::10 (responder tcp 8080, udp 5353)
//      │ up0 192.168.254.1 fd00:254::1
//   host (twill agent; responder tcp 22 8080 9090, udp 5353)
//      ├─ twa ── wa 10.65.0.1 fd00:65::1   app=a
//      ├─ twb ── wb 10.65.0.2 fd00:65::2   app=b  ports web=tcp:8080 dns=udp:5353
//      ├─ twc ── wc 10.65.0.3 fd00:65::3   app=c  ports web=tcp:9090
//      └─ twzz ─ wz 10.65.0.9 (no WorkloadEndpoint: must be isolated)
//   every workload: responder tcp 8080 9090, udp 5353
//
// One agent serves every scenario. A scenario is a whole datastore state
// (policies, profiles, sets, tiers, pools, FelixConfiguration, host
// endpoints, the workloads' labels): setState() writes it, deleting what the
// previous one had, and then waits for a barrier: the last write bumps an
// annotation on wa's WorkloadEndpoint, and the agent publishes "programmed"
// at that revision only after an apply that included every earlier write.
// So each matrix checks the converged state, not a leftover of the last one.
import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { kindOf } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { expectedWorkloadEndpointName } from "../api/schemas/workload-endpoint.js";
import {
  globalNetworkSet,
  globalPolicy,
  hostEndpoint,
  k8sNetworkPolicy,
  namespaceProfile,
  networkPolicy,
  networkSet,
  profile,
  stored,
  tier,
} from "../calc/testing/resources.js";
import { DEFAULT_ETCD_BINARY } from "../datastore/etcd-server.js";
import { endpointStatusKey, parseEndpointStatus } from "../datastore/endpoint-status.js";
import { netnsUnavailable } from "../dataplane/netns-testkit.js";
import type { Netns } from "../dataplane/netns-testkit.js";
import { checkMatrix, formatMatrix, startResponder } from "../netcheck/netcheck.js";
import type { MatrixCase, MatrixResult, ResponderHandle } from "../netcheck/netcheck.js";
import { parseTarget } from "../netcheck/matrix.js";
import { startHostLab, UPLINK } from "./host-lab.js";
import type { HostLab } from "./host-lab.js";

const why =
  netnsUnavailable() ??
  (existsSync(DEFAULT_ETCD_BINARY) ? undefined : "needs etcd") ??
  (["/usr/bin/ping", "/bin/ping"].some((p) => existsSync(p)) ? undefined : "needs ping");

const NS = "ns";
const V3 = "projectcalico.org/v3";

type Name = "a" | "b" | "c";
const WORKLOADS: Record<
  Name,
  {
    iface: string;
    ipv4: string;
    ipv6: string;
    ports?: { name: string; protocol: string; port: number }[];
  }
> = {
  a: { iface: "twa", ipv4: "10.65.0.1", ipv6: "fd00:65::1" },
  b: {
    iface: "twb",
    ipv4: "10.65.0.2",
    ipv6: "fd00:65::2",
    ports: [
      { name: "web", protocol: "TCP", port: 8080 },
      { name: "dns", protocol: "UDP", port: 5353 },
    ],
  },
  c: {
    iface: "twc",
    ipv4: "10.65.0.3",
    ipv6: "fd00:65::3",
    ports: [{ name: "web", protocol: "TCP", port: 9090 }],
  },
};
const UNKNOWN = { label: "wz", iface: "twzz", ipv4: "10.65.0.9" };
const SPOOFED = "10.65.0.99";
const HOST = UPLINK.hostV4;
const WORLD = UPLINK.worldV4;

/** A datastore state for one scenario. */
interface State {
  /** Policies, profiles, sets, tiers, host endpoints, FelixConfigurations. */
  resources?: Resource[];
  /** Workload labels besides app=<name>. */
  labels?: Partial<Record<Name, Record<string, string>>>;
  /** The workloads' profiles (default ["kns.ns"]). */
  profiles?: string[];
  /** natOutgoing on both pools (default false). */
  natOutgoing?: boolean;
  /** WorkloadEndpoint fields, per workload. */
  wepSpec?: Partial<Record<Name, Record<string, unknown>>>;
}

/** Kinds a state owns: anything of these kinds not in the state is deleted. */
const MANAGED = [
  "GlobalNetworkPolicy",
  "NetworkPolicy",
  "NetworkPolicy.networking.k8s.io",
  "Tier",
  "Profile",
  "GlobalNetworkSet",
  "NetworkSet",
  "HostEndpoint",
  "FelixConfiguration",
  "IPPool",
];
/** Policies go first when deleting, and last when writing (what they name exists first). */
const POLICY_KINDS = new Set(MANAGED.slice(0, 3));

function kindId(r: Resource): string {
  return kindOf(r.apiVersion, r.kind)?.id ?? r.kind;
}
const keyOf = (r: Resource) => `${kindId(r)}/${r.metadata.namespace ?? ""}/${r.metadata.name}`;

function wep(name: Name, state: State, step: number): Resource {
  const w = WORKLOADS[name];
  const spec: Record<string, unknown> = {
    orchestrator: "k8s",
    node: "host-1",
    pod: `w${name}`,
    endpoint: "eth0",
    ipNetworks: [`${w.ipv4}/32`, `${w.ipv6}/128`],
    profiles: state.profiles ?? [`kns.${NS}`],
    interfaceName: w.iface,
    ...(w.ports ? { ports: w.ports } : {}),
    ...state.wepSpec?.[name],
  };
  const metadata: Record<string, unknown> = {
    name: expectedWorkloadEndpointName(spec) as string,
    namespace: NS,
    labels: { app: name, ...state.labels?.[name] },
  };
  if (name === "a") metadata["annotations"] = { "e2e.twill/step": String(step) };
  return stored({ apiVersion: V3, kind: "WorkloadEndpoint", metadata, spec });
}

function pools(natOutgoing: boolean): Resource[] {
  return [
    ["pool-v4", "10.65.0.0/16"],
    ["pool-v6", "fd00:65::/48"],
  ].map(([name, cidr]) =>
    stored({ apiVersion: V3, kind: "IPPool", metadata: { name }, spec: { cidr, natOutgoing } }),
  );
}

function felix(spec: Record<string, unknown>): Resource {
  return stored({
    apiVersion: V3,
    kind: "FelixConfiguration",
    metadata: { name: "default" },
    spec,
  });
}

const allowAll = () =>
  profile(`kns.${NS}`, { ingress: [{ action: "Allow" }], egress: [{ action: "Allow" }] });
const egressOnly = () => profile(`kns.${NS}`, { egress: [{ action: "Allow" }] });

describe("policy end to end: one agent, many scenarios", { skip: why, timeout: 300_000 }, () => {
  let lab: HostLab;
  const ns = {} as Record<Name | "z", Netns>;
  const responders: ResponderHandle[] = [];
  let step = 0;

  before(async () => {
    lab = await startHostLab({ outside: true });
    for (const name of ["a", "b", "c"] as const) {
      const w = WORKLOADS[name];
      ns[name] = await lab.wire({ label: `w${name}`, iface: w.iface, ipv4: w.ipv4, ipv6: w.ipv6 });
    }
    // An interface with twill's prefix and no endpoint, given everything else a workload
    // has (route, proxy ARP), so only the agent's fail-closed rule can keep it out.
    ns.z = await lab.wire(UNKNOWN);
    await lab.host.sh(
      "ip",
      "route",
      "add",
      `${UNKNOWN.ipv4}/32`,
      "dev",
      UNKNOWN.iface,
      "scope",
      "link",
    );
    await lab.host.sh("sysctl", "-qw", `net.ipv4.conf.${UNKNOWN.iface}.proxy_arp=1`);
    await lab.host.sh("sysctl", "-qw", `net.ipv4.neigh.${UNKNOWN.iface}.proxy_delay=0`);
    // A second address in wa that is not its endpoint's, routed back to it, so only
    // anti-spoofing can drop what wa sends from it.
    await ns.a.sh("ip", "addr", "add", `${SPOOFED}/32`, "dev", "eth0");
    await lab.host.sh("ip", "route", "add", `${SPOOFED}/32`, "dev", "twa", "scope", "link");

    const starts = [
      ...[ns.a, ns.b, ns.c, ns.z].map((n) =>
        startResponder(n.name, { tcpPorts: [8080, 9090], udpPorts: [5353] }),
      ),
      startResponder(lab.host.name, { tcpPorts: [22, 8080, 9090], udpPorts: [5353] }),
      startResponder(lab.outside!.name, { tcpPorts: [8080], udpPorts: [5353] }),
    ];
    responders.push(...(await Promise.all(starts)));

    await setState({}, { wait: false });
    lab.startAgent();
    await lab.until("/readyz 200", async () => (await lab.httpStatus("/readyz")) === "200", 20_000);
  });

  after(async () => {
    await Promise.all(responders.map((r) => r.stop()));
    const logFile = process.env["TWILL_TEST_AGENT_LOG"];
    if (logFile && lab) writeFileSync(logFile, lab.allLogs());
    await lab?.close();
  });

  /** Writes a scenario's whole state, then waits until the agent has programmed it. */
  async function setState(state: State, opts: { wait?: boolean } = {}): Promise<void> {
    const { store } = lab;
    const want = [...pools(state.natOutgoing ?? false), ...(state.resources ?? [])];
    const wanted = new Set(want.map(keyOf));
    const { items } = await store.listAll();
    const stale = items.filter((r) => MANAGED.includes(kindId(r)) && !wanted.has(keyOf(r)));
    stale.sort((x, y) => Number(POLICY_KINDS.has(kindId(y))) - Number(POLICY_KINDS.has(kindId(x))));
    for (const r of stale) {
      const kind = kindOf(r.apiVersion, r.kind)!;
      await store.delete(kind, r.metadata.name, {
        ...(r.metadata.namespace !== undefined ? { namespace: r.metadata.namespace } : {}),
      });
    }
    want.sort((x, y) => Number(POLICY_KINDS.has(kindId(x))) - Number(POLICY_KINDS.has(kindId(y))));
    for (const r of want) await store.apply(r);
    await store.apply(wep("b", state, step));
    await store.apply(wep("c", state, step));
    // The barrier: wa last, with an annotation that changes every time.
    step++;
    const a = (await store.apply(wep("a", state, step))).resource;
    if (opts.wait === false) return;
    const key = endpointStatusKey(store.prefix, {
      node: lab.node,
      namespace: NS,
      name: a.metadata.name,
    });
    let seen = "nothing";
    await lab
      .until(
        `the agent to program step ${step}`,
        async () => {
          const got = await store.backend.get(key);
          if (!got) return false;
          seen = got.value;
          const s = parseEndpointStatus(got.value);
          return s.state === "programmed" && s.resourceVersion === a.metadata.resourceVersion;
        },
        20_000,
      )
      .catch((err: Error) => {
        err.message = `${err.message}\n(wanted wa's status at revision ${a.metadata.resourceVersion}, last saw ${seen})`;
        throw err;
      });
  }

  const allow = (from: Netns, target: string): MatrixCase => c(from, target, true);
  const deny = (from: Netns, target: string): MatrixCase => c(from, target, false);
  function c(from: Netns, target: string, allowed: boolean): MatrixCase {
    const t = parseTarget(target);
    assert.ok(t, `bad target text ${target}`);
    return { from: from.name, target: t, allowed };
  }

  /** Checks the matrix (with retries); fails with the table and the agent's log tail. */
  async function expectMatrix(cases: MatrixCase[]): Promise<MatrixResult[]> {
    const report = await checkMatrix(cases, { attempts: 4, retryDelayMs: 250, timeoutMs: 800 });
    if (report.mismatches.length > 0) {
      const nft = await lab.host.try("nft", ["list", "table", "inet", "twill"]);
      assert.fail(
        `${formatMatrix(report.results)}\n\nagent log:\n${lab.logTail(25)}\n\nnft:\n${nft.stdout}`,
      );
    }
    return report.results;
  }

  const b4 = WORKLOADS.b.ipv4;
  const a4 = WORKLOADS.a.ipv4;
  const c4 = WORKLOADS.c.ipv4;

  it("default deny: no policy and no profile lets nothing through", async () => {
    await setState({ profiles: [] });
    await expectMatrix([
      deny(ns.a, `tcp ${b4}:8080`),
      deny(ns.a, `udp ${b4}:5353`),
      deny(ns.a, `icmp ${b4}`),
      deny(ns.a, `tcp [${WORKLOADS.b.ipv6}]:8080`),
      deny(ns.a, `icmp ${WORKLOADS.b.ipv6}`),
      deny(ns.b, `tcp ${a4}:8080`),
      deny(ns.c, `udp ${a4}:5353`),
    ]);
  });

  it("allow by selector: only the selected source, protocol and port", async () => {
    await setState({
      resources: [
        egressOnly(),
        globalPolicy("allow-a-to-b", {
          selector: "app == 'b'",
          types: ["Ingress"],
          ingress: [
            {
              action: "Allow",
              protocol: "TCP",
              source: { selector: "app == 'a'" },
              destination: { ports: [8080] },
            },
          ],
        }),
      ],
    });
    await expectMatrix([
      allow(ns.a, `tcp ${b4}:8080`),
      deny(ns.a, `tcp ${b4}:9090`),
      deny(ns.a, `udp ${b4}:5353`),
      deny(ns.a, `icmp ${b4}`),
      deny(ns.c, `tcp ${b4}:8080`),
      deny(ns.b, `tcp ${a4}:8080`),
    ]);
  });

  it("Deny before Allow by order, and the other way round", async () => {
    const policies = (denyOrder: number) => [
      allowAll(),
      globalPolicy("deny-a", {
        order: denyOrder,
        selector: "app == 'b'",
        types: ["Ingress"],
        ingress: [
          {
            action: "Deny",
            protocol: "TCP",
            source: { selector: "app == 'a'" },
            destination: { ports: [8080] },
          },
        ],
      }),
      globalPolicy("allow-all-b", {
        order: 20,
        selector: "app == 'b'",
        types: ["Ingress"],
        ingress: [{ action: "Allow" }],
      }),
    ];
    await setState({ resources: policies(10) });
    await expectMatrix([
      deny(ns.a, `tcp ${b4}:8080`),
      allow(ns.a, `tcp ${b4}:9090`),
      allow(ns.a, `udp ${b4}:5353`),
      allow(ns.c, `tcp ${b4}:8080`),
    ]);
    await setState({ resources: policies(30) });
    await expectMatrix([allow(ns.a, `tcp ${b4}:8080`), allow(ns.c, `tcp ${b4}:8080`)]);
  });

  it("Pass skips to the next tier; a tier that applied without a match denies", async () => {
    await setState({
      resources: [
        allowAll(),
        tier("security", { order: 10 }),
        globalPolicy("security.gate", {
          tier: "security",
          selector: "app == 'b'",
          types: ["Ingress"],
          ingress: [{ action: "Pass", source: { selector: "app == 'a'" } }],
        }),
        globalPolicy("allow-b-in", {
          selector: "app == 'b'",
          types: ["Ingress"],
          ingress: [{ action: "Allow" }],
        }),
      ],
    });
    await expectMatrix([
      allow(ns.a, `tcp ${b4}:8080`),
      allow(ns.a, `icmp ${b4}`),
      deny(ns.c, `tcp ${b4}:8080`),
      deny(ns.c, `icmp ${b4}`),
      allow(ns.b, `tcp ${c4}:8080`),
    ]);
  });

  it("profiles decide when no policy applies", async () => {
    await setState({
      resources: [
        profile(`kns.${NS}`, {
          ingress: [{ action: "Allow", source: { selector: "app == 'a'" } }],
          egress: [{ action: "Allow" }],
        }),
      ],
    });
    await expectMatrix([
      allow(ns.a, `tcp ${b4}:8080`),
      allow(ns.a, `icmp ${c4}`),
      deny(ns.c, `tcp ${b4}:8080`),
      deny(ns.b, `udp ${c4}:5353`),
      deny(ns.b, `tcp ${a4}:8080`),
    ]);
  });

  it("named ports: on the destination's own endpoint and through a selector's endpoints", async () => {
    await setState({
      resources: [
        allowAll(),
        globalPolicy("b-named", {
          selector: "app == 'b'",
          types: ["Ingress"],
          ingress: [
            { action: "Allow", protocol: "TCP", destination: { ports: ["web"] } },
            { action: "Allow", protocol: "UDP", destination: { ports: ["dns"] } },
          ],
        }),
        globalPolicy("a-named-out", {
          selector: "app == 'a'",
          types: ["Egress"],
          egress: [
            {
              action: "Allow",
              protocol: "TCP",
              destination: { selector: "has(app)", ports: ["web"] },
            },
            { action: "Allow", protocol: "UDP" },
          ],
        }),
      ],
    });
    await expectMatrix([
      allow(ns.a, `tcp ${b4}:8080`),
      deny(ns.a, `tcp ${b4}:9090`),
      allow(ns.a, `tcp ${c4}:9090`),
      deny(ns.a, `tcp ${c4}:8080`),
      allow(ns.a, `udp ${b4}:5353`),
      allow(ns.c, `tcp ${b4}:8080`),
      deny(ns.c, `tcp ${b4}:9090`),
    ]);
  });

  it("NetworkSets: global ones for global policy, namespaced ones for their namespace's policy", async () => {
    await setState({
      resources: [
        allowAll(),
        globalNetworkSet("trusted", [`${a4}/32`], { role: "trusted" }),
        networkSet(NS, "partners", [`${c4}/32`], { role: "partner" }),
        globalPolicy("b-trusted", {
          selector: "app == 'b'",
          types: ["Ingress"],
          ingress: [
            { action: "Allow", protocol: "TCP", source: { selector: "role == 'trusted'" } },
          ],
        }),
        networkPolicy(NS, "b-partners", {
          selector: "app == 'b'",
          types: ["Ingress"],
          ingress: [
            { action: "Allow", protocol: "UDP", source: { selector: "role == 'partner'" } },
          ],
        }),
      ],
    });
    await expectMatrix([
      allow(ns.a, `tcp ${b4}:8080`),
      deny(ns.a, `udp ${b4}:5353`),
      deny(ns.c, `tcp ${b4}:8080`),
      allow(ns.c, `udp ${b4}:5353`),
    ]);
  });

  it("nets and notNets, on source and destination", async () => {
    await setState({
      resources: [
        allowAll(),
        globalPolicy("b-nets", {
          selector: "app == 'b'",
          types: ["Ingress"],
          ingress: [
            { action: "Allow", protocol: "TCP", source: { nets: [`${a4}/32`] } },
            { action: "Allow", protocol: "UDP", source: { notNets: [`${a4}/32`] } },
          ],
        }),
        globalPolicy("a-not-c", {
          selector: "app == 'a'",
          types: ["Egress"],
          egress: [{ action: "Allow", destination: { notNets: [`${c4}/32`] } }],
        }),
      ],
    });
    await expectMatrix([
      allow(ns.a, `tcp ${b4}:8080`),
      deny(ns.a, `udp ${b4}:5353`),
      deny(ns.c, `tcp ${b4}:8080`),
      allow(ns.c, `udp ${b4}:5353`),
      deny(ns.a, `tcp ${c4}:8080`),
      allow(ns.b, `tcp ${c4}:8080`),
    ]);
  });

  it("Kubernetes NetworkPolicy: selected pods get only what it allows, others stay open", async () => {
    await setState({
      resources: [
        namespaceProfile(NS),
        k8sNetworkPolicy(NS, "b-from-a", {
          podSelector: { matchLabels: { app: "b" } },
          policyTypes: ["Ingress"],
          ingress: [
            {
              from: [{ podSelector: { matchLabels: { app: "a" } } }],
              ports: [{ protocol: "TCP", port: 8080 }],
            },
          ],
        }),
      ],
    });
    await expectMatrix([
      allow(ns.a, `tcp ${b4}:8080`),
      deny(ns.a, `tcp ${b4}:9090`),
      deny(ns.a, `udp ${b4}:5353`),
      deny(ns.c, `tcp ${b4}:8080`),
      allow(ns.b, `tcp ${a4}:8080`),
      allow(ns.c, `icmp ${a4}`),
    ]);
  });

  it("same host: the source's egress and the destination's ingress both apply", async () => {
    const both = (egress: string, ingress: string) => [
      allowAll(),
      globalPolicy("a-out", {
        selector: "app == 'a'",
        types: ["Egress"],
        egress: [{ action: egress }],
      }),
      globalPolicy("b-in", {
        selector: "app == 'b'",
        types: ["Ingress"],
        ingress: [{ action: ingress }],
      }),
    ];
    const pairs = (allowed: boolean) =>
      [`tcp ${b4}:8080`, `udp ${b4}:5353`, `icmp ${b4}`].map((t) => c(ns.a, t, allowed));
    await setState({ resources: both("Allow", "Allow") });
    await expectMatrix(pairs(true));
    await setState({ resources: both("Deny", "Allow") });
    await expectMatrix([...pairs(false), allow(ns.c, `tcp ${b4}:8080`)]);
    await setState({ resources: both("Allow", "Deny") });
    await expectMatrix([...pairs(false), allow(ns.a, `tcp ${c4}:8080`)]);
  });

  it("workload to host: defaultEndpointToHostAction Drop, Accept, Return, after egress policy", async () => {
    const toHost = (allowed: boolean) => [
      c(ns.a, `tcp ${HOST}:8080`, allowed),
      c(ns.a, `udp ${HOST}:5353`, allowed),
      c(ns.a, `icmp ${HOST}`, allowed),
      c(ns.a, `tcp [${UPLINK.hostV6}]:8080`, allowed),
    ];
    await setState({ resources: [allowAll()] });
    await expectMatrix([...toHost(false), allow(ns.a, `tcp ${b4}:8080`)]);
    const cOnlyPods = globalPolicy("c-pods-only", {
      selector: "app == 'c'",
      types: ["Egress"],
      egress: [{ action: "Allow", destination: { nets: ["10.65.0.0/16"] } }],
    });
    await setState({
      resources: [allowAll(), felix({ defaultEndpointToHostAction: "Accept" }), cOnlyPods],
    });
    await expectMatrix([
      ...toHost(true),
      deny(ns.c, `tcp ${HOST}:8080`),
      allow(ns.c, `tcp ${b4}:8080`),
    ]);
    await setState({ resources: [allowAll(), felix({ defaultEndpointToHostAction: "Return" })] });
    await expectMatrix(toHost(true));
  });

  it("spoofed source addresses are dropped, unless the endpoint may use them", async () => {
    const spoofed = (allowed: boolean) => [
      c(ns.a, `tcp ${b4}:8080 from ${SPOOFED}`, allowed),
      c(ns.a, `udp ${b4}:5353 from ${SPOOFED}`, allowed),
      c(ns.a, `icmp ${b4} from ${SPOOFED}`, allowed),
    ];
    await setState({ resources: [allowAll()] });
    await expectMatrix([...spoofed(false), allow(ns.a, `tcp ${b4}:8080`)]);
    await setState({
      resources: [allowAll(), felix({ workloadSourceSpoofing: "Any" })],
      wepSpec: { a: { allowSpoofedSourcePrefixes: [`${SPOOFED}/32`] } },
    });
    await expectMatrix(spoofed(true));
  });

  it("an unknown twill-prefixed interface is isolated, both ways and from the host", async () => {
    await setState({ resources: [allowAll(), felix({ defaultEndpointToHostAction: "Accept" })] });
    await expectMatrix([
      deny(ns.z, `tcp ${b4}:8080`),
      deny(ns.z, `udp ${b4}:5353`),
      deny(ns.z, `icmp ${b4}`),
      deny(ns.z, `tcp ${HOST}:8080`),
      deny(ns.z, `tcp ${WORLD}:8080`),
      deny(ns.b, `tcp ${UNKNOWN.ipv4}:8080`),
      deny(ns.b, `icmp ${UNKNOWN.ipv4}`),
      allow(ns.a, `tcp ${b4}:8080`),
      allow(ns.a, `tcp ${HOST}:8080`),
    ]);
  });

  it("a label change flips connectivity, and flips it back", async () => {
    const resources = [
      egressOnly(),
      globalPolicy("b-clients", {
        selector: "app == 'b'",
        types: ["Ingress"],
        ingress: [{ action: "Allow", source: { selector: "role == 'client'" } }],
      }),
    ];
    await setState({ resources });
    await expectMatrix([deny(ns.a, `tcp ${b4}:8080`), deny(ns.c, `tcp ${b4}:8080`)]);
    await setState({ resources, labels: { a: { role: "client" } } });
    await expectMatrix([
      allow(ns.a, `tcp ${b4}:8080`),
      allow(ns.a, `tcp [${WORKLOADS.b.ipv6}]:8080`),
      deny(ns.c, `tcp ${b4}:8080`),
    ]);
    await setState({ resources });
    await expectMatrix([deny(ns.a, `tcp ${b4}:8080`)]);
  });

  it("NAT outgoing: leaving every pool, traffic takes the host's address; within, it keeps its own", async () => {
    await setState({ resources: [allowAll()], natOutgoing: true });
    const results = await expectMatrix([
      allow(ns.a, `tcp ${WORLD}:8080`),
      allow(ns.a, `udp ${WORLD}:5353`),
      allow(ns.a, `icmp ${WORLD}`),
      allow(ns.a, `tcp [${UPLINK.worldV6}]:8080`),
      allow(ns.a, `tcp ${b4}:8080`),
    ]);
    assert.deepEqual(
      results.map((r) => r.outcome.seenAs),
      [HOST, HOST, undefined, UPLINK.hostV6, a4],
    );
    // Without it the outside world has no route back to the pool.
    await setState({ resources: [allowAll()], natOutgoing: false });
    await expectMatrix([deny(ns.a, `tcp ${WORLD}:8080`), deny(ns.a, `icmp ${WORLD}`)]);
  });

  it("a host endpoint with no policy denies all but the failsafe ports; policy opens more", async () => {
    const out = lab.outside!;
    const hep = hostEndpoint({
      name: "host-1-up0",
      node: "host-1",
      interfaceName: "up0",
      ips: [UPLINK.hostV4, UPLINK.hostV6],
      labels: { role: "uplink" },
    });
    // IPv4 only here: as in Calico, a host endpoint's policy also governs ICMPv6
    // neighbour discovery (failsafe ports are TCP/UDP), so without policy IPv6 to the
    // host works only while the neighbour caches last.
    await setState({ resources: [allowAll(), hep] });
    await expectMatrix([
      allow(out, `tcp ${HOST}:22`),
      deny(out, `tcp ${HOST}:8080`),
      deny(out, `udp ${HOST}:5353`),
      deny(out, `icmp ${HOST}`),
    ]);
    // A policy as Calico's docs suggest: the service port, and ICMPv6 both ways for
    // neighbour discovery.
    await setState({
      resources: [
        allowAll(),
        hep,
        globalPolicy("uplink-8080", {
          selector: "role == 'uplink'",
          types: ["Ingress", "Egress"],
          ingress: [
            { action: "Allow", protocol: "TCP", destination: { ports: [8080] } },
            { action: "Allow", protocol: "ICMPv6" },
          ],
          egress: [{ action: "Allow", protocol: "ICMPv6" }],
        }),
      ],
    });
    await expectMatrix([
      allow(out, `tcp ${HOST}:22`),
      allow(out, `tcp ${HOST}:8080`),
      deny(out, `tcp ${HOST}:9090`),
      deny(out, `udp ${HOST}:5353`),
      allow(out, `tcp [${UPLINK.hostV6}]:22`),
      allow(out, `tcp [${UPLINK.hostV6}]:8080`),
      deny(out, `tcp [${UPLINK.hostV6}]:9090`),
      allow(out, `icmp ${UPLINK.hostV6}`),
      deny(out, `icmp ${HOST}`),
    ]);
  });

  it("IPv6: dual-stack workloads, IPv6-only policy, neighbour discovery never blocked", async () => {
    const b6 = WORKLOADS.b.ipv6;
    const v6Policy = (icmp: boolean) =>
      globalPolicy("b-v6", {
        selector: "app == 'b'",
        types: ["Ingress"],
        ingress: [
          { action: "Allow", protocol: "TCP", source: { nets: [`${WORKLOADS.a.ipv6}/128`] } },
          ...(icmp ? [{ action: "Allow", protocol: "ICMPv6" }] : []),
        ],
      });
    await setState({ resources: [allowAll(), v6Policy(false)] });
    await expectMatrix([
      allow(ns.a, `tcp [${b6}]:8080`),
      deny(ns.a, `tcp ${b4}:8080`),
      deny(ns.a, `udp [${b6}]:5353`),
      deny(ns.a, `icmp ${b6}`),
      deny(ns.c, `tcp [${b6}]:8080`),
      allow(ns.b, `icmp ${WORKLOADS.a.ipv6}`),
      allow(ns.b, `udp [${WORKLOADS.c.ipv6}]:5353`),
    ]);
    await setState({ resources: [allowAll(), v6Policy(true)] });
    await expectMatrix([
      allow(ns.a, `icmp ${b6}`),
      allow(ns.c, `icmp ${b6}`),
      deny(ns.a, `icmp ${b4}`),
      deny(ns.c, `tcp [${b6}]:8080`),
    ]);
  });
});
