// Calc graph tests, in Felix's style.
//
// State sequences: named datastore states (testing/states.ts) are fed to a
// graph one after another as a syncer would send them (puts for new and
// changed resources, deletes for vanished ones); every flush goes into an
// honest dataplane model that throws when the ordering contract is broken;
// after each state the model must hold exactly what a fresh graph fed that
// state alone produces (the result may not depend on the path), and the
// state's flows must get the verdicts issue 3 gives them. Every sequence is
// run in order, reversed, split (each update flushed on its own), squashed
// (all transitions, one flush) and with an empty state between states.
//
// Focused tests then pin the exact messages: flush order, in-sync, IP set
// deltas, named-port members, shared sets, inactive policies, remote label
// changes and errors.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Resource } from "../api/resource.js";
import { CalcGraph } from "./calc-graph.js";
import type { CalcInput } from "./calc-graph.js";
import type { DataplaneMessage, TierPolicies } from "./messages.js";
import { DataplaneModel } from "./testing/dataplane-model.js";
import { modelFlow } from "./testing/flows.js";
import {
  deleteOf,
  globalPolicy,
  namespaceProfile,
  networkPolicy,
  transition,
  workload,
} from "./testing/resources.js";
import type { State } from "./testing/resources.js";
import {
  LOCAL_HOST,
  REMOTE_HOST,
  SEQUENCES,
  STATES,
  empty,
  hostEndpoints,
  k8sDeny,
  namedPorts,
  remotes,
  sharedSelector,
  withPolicy,
} from "./testing/states.js";
import type { NamedState } from "./testing/states.js";

const puts = (resources: readonly Resource[]): CalcInput[] =>
  resources.map((resource) => ({ type: "put", resource }));
const IN_SYNC: CalcInput = { type: "status", status: "in-sync" };

/** A graph wired to a dataplane model; every flush is applied (and so contract-checked). */
class Driver {
  readonly graph = new CalcGraph({ hostname: LOCAL_HOST });
  readonly model = new DataplaneModel();

  feed(inputs: readonly CalcInput[]): void {
    this.graph.onUpdates(inputs);
    assert.deepEqual(this.graph.drainErrors(), [], "the graph reported errors");
  }

  flush(): DataplaneMessage[] {
    const msgs = this.graph.flush();
    this.model.apply(msgs);
    return msgs;
  }
}

const expectedDumps = new Map<string, string>();

/** The dataplane state a fresh graph produces from the state alone. */
function expectedDump(state: NamedState): string {
  let dump = expectedDumps.get(state.name);
  if (dump === undefined) {
    const d = new Driver();
    d.feed([...puts(state.resources), IN_SYNC]);
    d.flush();
    dump = d.model.dump();
    expectedDumps.set(state.name, dump);
  }
  return dump;
}

function assertAt(d: Driver, state: NamedState, path: string): void {
  assert.equal(d.model.dump(), expectedDump(state), `${path}: state "${state.name}" differs`);
  checkFlows(d.model, state, path);
}

function checkFlows(model: DataplaneModel, state: NamedState, path: string): void {
  for (const c of state.checks) {
    const v = model.evaluate(modelFlow(state.resources, LOCAL_HOST, c.flow));
    assert.deepEqual(
      { egress: v.egress, ingress: v.ingress },
      { egress: c.egress, ingress: c.ingress },
      `${path}: state "${state.name}": ${c.what}`,
    );
  }
}

type Mode = "in order" | "reversed" | "split" | "squashed" | "with empty states";

function runSequence(states: readonly NamedState[], mode: Mode): void {
  let seq = mode === "reversed" ? [...states].reverse() : [...states];
  if (mode === "with empty states") seq = seq.flatMap((s) => [s, empty]);
  const d = new Driver();
  let prev: State = [];
  const path: string[] = [];
  if (mode === "squashed") {
    for (const st of seq) {
      d.feed(transition(prev, st.resources));
      prev = st.resources;
    }
    d.feed([IN_SYNC]);
    d.flush();
    assertAt(d, seq.at(-1)!, `squashed ${seq.map((s) => s.name).join(" → ")}`);
    return;
  }
  seq.forEach((st, i) => {
    path.push(st.name);
    const updates = transition(prev, st.resources);
    prev = st.resources;
    if (mode === "split") {
      for (const u of updates) {
        d.feed([u]);
        const msgs = d.flush();
        if (i === 0) assert.deepEqual(msgs, [], "split: something flushed before in-sync");
      }
      if (i === 0) d.feed([IN_SYNC]);
      d.flush();
    } else {
      d.feed(i === 0 ? [...updates, IN_SYNC] : updates);
      d.flush();
    }
    assertAt(d, st, `${mode}: ${path.join(" → ")}`);
    // A flush with nothing new emits nothing.
    assert.deepEqual(d.flush(), [], `${mode}: ${path.join(" → ")}: second flush not empty`);
  });
}

describe("calc graph: state sequences", () => {
  it("every named state gives its flows the verdicts of issue 3", () => {
    for (const st of Object.values(STATES)) {
      const d = new Driver();
      d.feed([...puts(st.resources), IN_SYNC]);
      d.flush();
      checkFlows(d.model, st, "fresh");
    }
  });

  const modes: Mode[] = ["in order", "reversed", "split", "squashed", "with empty states"];
  for (const seq of SEQUENCES) {
    const title = seq.length > 6 ? `all ${seq.length} states` : seq.map((s) => s.name).join(" → ");
    it(`${title}: the same state whatever the path`, () => {
      for (const mode of modes) runSequence(seq, mode);
    });
  }
});

// ---------------------------------------------------------------------------
// Focused tests.

/** A fresh graph in sync with `resources`, its first flush, and the driver. */
function synced(resources: readonly Resource[]): { d: Driver; first: DataplaneMessage[] } {
  const d = new Driver();
  d.feed([...puts(resources), IN_SYNC]);
  return { d, first: d.flush() };
}

const RANK: Record<DataplaneMessage["type"], number> = {
  "ipset-update": 0,
  "ipset-delta": 0,
  "policy-update": 1,
  "profile-update": 2,
  "endpoint-update": 3,
  "route-update": 4,
  "route-remove": 5,
  "endpoint-remove": 6,
  "profile-remove": 7,
  "policy-remove": 8,
  "ipset-remove": 9,
  "in-sync": 10,
};

function summary(msgs: readonly DataplaneMessage[]): string[] {
  return msgs.map((m) => {
    switch (m.type) {
      case "ipset-update":
        return `ipset-update ${m.ipset.selector} [${m.members.join(" ")}]`;
      case "ipset-delta":
        return `ipset-delta +[${m.added.join(" ")}] -[${m.removed.join(" ")}]`;
      case "policy-update":
        return `policy-update ${m.policy.id}`;
      case "profile-update":
        return `profile-update ${m.profile.id}`;
      case "endpoint-update":
        return `endpoint-update ${m.endpoint.id}`;
      case "route-update":
        return `route-update ${m.route.dst} ${m.route.interfaceName}`;
      case "route-remove":
        return `route-remove ${m.dst}`;
      case "ipset-remove":
      case "policy-remove":
      case "profile-remove":
      case "endpoint-remove":
        return `${m.type} ${m.id}`;
      case "in-sync":
        return "in-sync";
    }
  });
}

const WEB1_ID = "workload/shop/node--1-k8s-web--1-eth0";
const DB1_ID = "workload/shop/node--1-k8s-db--1-eth0";
const DB_SET = '(app == "db" && projectcalico.org/namespace == "shop")';

describe("calc graph: flush", () => {
  it("emits updates as sets → policies → profiles → endpoints → routes, then in-sync", () => {
    const { first } = synced(withPolicy.resources);
    assert.deepEqual(summary(first), [
      `ipset-update ${DB_SET} [10.65.0.2/32]`,
      "policy-update default/shop/web-ingress",
      "profile-update kns.shop",
      `endpoint-update ${DB1_ID}`,
      `endpoint-update ${WEB1_ID}`,
      `route-update 10.65.0.2/32 ${interfaceOf(withPolicy.resources, "db--1")}`,
      `route-update 10.65.0.1/32 ${interfaceOf(withPolicy.resources, "web--1")}`,
      "in-sync",
    ]);
  });

  it("emits removes in reverse: routes → endpoints → profiles → policies → sets", () => {
    const { d } = synced(withPolicy.resources);
    const [setId] = d.model.ipsets.keys();
    d.feed(withPolicy.resources.map(deleteOf));
    assert.deepEqual(summary(d.flush()), [
      "route-remove 10.65.0.1/32",
      "route-remove 10.65.0.2/32",
      `endpoint-remove ${DB1_ID}`,
      `endpoint-remove ${WEB1_ID}`,
      "profile-remove kns.shop",
      "policy-remove default/shop/web-ingress",
      `ipset-remove ${setId}`,
    ]);
    assert.equal(d.model.dump(), expectedDump(empty));
  });

  it("orders every flush of every sequence by rank", () => {
    for (const seq of SEQUENCES) {
      const d = new Driver();
      let prev: State = [];
      d.feed([IN_SYNC]);
      for (const st of seq) {
        d.feed(transition(prev, st.resources));
        prev = st.resources;
        const ranks = d.flush().map((m) => RANK[m.type]);
        assert.deepEqual(
          ranks,
          [...ranks].sort((a, b) => a - b),
          `flush into "${st.name}"`,
        );
      }
    }
  });
});

function interfaceOf(resources: readonly Resource[], pod: string): string {
  const r = resources.find((x) => x.metadata.name.includes(pod))!;
  return (r.spec as { interfaceName: string }).interfaceName;
}

describe("calc graph: in-sync", () => {
  it("emits nothing before the syncer's first in-sync", () => {
    const d = new Driver();
    assert.deepEqual(d.flush(), []);
    d.feed(puts(withPolicy.resources));
    assert.deepEqual(d.flush(), []);
    d.feed([{ type: "status", status: "waiting" }]);
    assert.deepEqual(d.flush(), []);
    d.feed([{ type: "status", status: "resyncing" }]);
    assert.deepEqual(d.flush(), []);
    assert.equal(d.model.inSync, false);
    d.feed([IN_SYNC]);
    const msgs = d.flush();
    assert.equal(msgs.at(-1)?.type, "in-sync");
    assert.equal(msgs.filter((m) => m.type === "in-sync").length, 1);
    assert.equal(d.model.dump(), expectedDump(withPolicy));
  });

  it("sends in-sync once, and again only after a resync", () => {
    const { d } = synced(withPolicy.resources);
    d.feed([IN_SYNC]);
    assert.deepEqual(d.flush(), [], "a repeated in-sync status is not news");
    d.feed([{ type: "status", status: "resyncing" }]);
    assert.deepEqual(d.flush(), []);
    d.feed([IN_SYNC]);
    assert.deepEqual(summary(d.flush()), ["in-sync"]);
  });

  it("keeps computing while resyncing after the first in-sync", () => {
    const { d } = synced(withPolicy.resources);
    d.feed([{ type: "status", status: "resyncing" }, ...transition(withPolicy.resources, [])]);
    assert.equal(d.flush().length > 0, true);
    assert.equal(d.model.endpoints.size, 0);
  });
});

const db3 = workload({
  namespace: "shop",
  pod: "db-3",
  node: REMOTE_HOST,
  ips: ["10.65.1.3"],
  labels: { app: "db" },
});

describe("calc graph: IP sets", () => {
  it("sends a delta, not the whole set, when membership changes", () => {
    const { d } = synced(remotes.resources);
    d.feed(puts([db3]));
    const msgs = d.flush();
    assert.equal(msgs.length, 1);
    const [m] = msgs;
    assert.ok(m?.type === "ipset-delta");
    assert.deepEqual([m.added, m.removed], [["10.65.1.3/32"], []]);
    d.feed([deleteOf(db3)]);
    assert.deepEqual(
      d.flush().map((x) => (x.type === "ipset-delta" ? [x.added, x.removed] : x.type)),
      [[[], ["10.65.1.3/32"]]],
    );
  });

  it("gives named-port sets members address,protocol:port", () => {
    const { first } = synced(namedPorts.resources);
    const sets = first.flatMap((m) => (m.type === "ipset-update" ? [m] : []));
    const http = sets.find((m) => m.ipset.namedPort?.name === "http");
    assert.ok(http);
    assert.equal(http.ipset.kind, "net-port");
    assert.deepEqual(http.ipset.namedPort, { name: "http", protocol: "tcp" });
    assert.deepEqual(http.members, ["10.65.0.1/32,tcp:8080", "10.65.1.1/32,tcp:8081"]);
    const metrics = sets.find((m) => m.ipset.namedPort?.name === "metrics");
    assert.ok(metrics, "a rule with protocol 6 gets a named-port set");
    assert.deepEqual(metrics.ipset.namedPort, { name: "metrics", protocol: "tcp" });
    assert.deepEqual(metrics.members, ["10.65.0.1/32,tcp:9090"]);
  });

  it("shares one set between identical selectors", () => {
    const { first, d } = synced(sharedSelector.resources);
    const sets = first.filter((m) => m.type === "ipset-update");
    assert.equal(sets.length, 1);
    const id = sets[0]?.type === "ipset-update" ? sets[0].ipset.id : "";
    for (const p of d.model.policies.values()) {
      assert.deepEqual(
        p.inbound.map((r) => r.src.ipSets),
        [[id]],
        `policy ${p.id} uses the shared set`,
      );
    }
    // Removing one user keeps the set; removing both removes it.
    const [twin] = sharedSelector.resources.filter((r) => r.metadata.name === "web-ingress-twin");
    d.feed([deleteOf(twin!)]);
    assert.deepEqual(summary(d.flush()), [
      `endpoint-update ${WEB1_ID}`,
      "policy-remove default/shop/web-ingress-twin",
    ]);
  });

  it("emits neither policies nor sets that no local endpoint needs", () => {
    const remoteOnly = networkPolicy("shop", "cache-ingress", {
      selector: "app == 'cache'",
      ingress: [{ action: "Allow", source: { selector: "app == 'cache-client'" } }],
    });
    const { first, d } = synced([...remotes.resources, remoteOnly]);
    assert.deepEqual(
      first.filter((m) => m.type === "policy-update").map((m) => summary([m])[0]),
      ["policy-update default/shop/web-ingress"],
    );
    assert.equal(first.filter((m) => m.type === "ipset-update").length, 1);
    assert.equal(d.graph.stats().activePolicies, 1);
    // A remote endpoint the policy selects does not activate it either.
    const cache = workload({
      namespace: "shop",
      pod: "cache-1",
      node: REMOTE_HOST,
      ips: ["10.65.1.9"],
      labels: { app: "cache" },
    });
    d.feed(puts([cache]));
    assert.deepEqual(d.flush(), []);
  });

  it("turns a remote endpoint's label change into IP set deltas only", () => {
    const dbIngress = networkPolicy("shop", "db-ingress", {
      selector: "app == 'db'",
      ingress: [{ action: "Allow", source: { selector: "app == 'web'" } }],
    });
    const { d } = synced([...remotes.resources, dbIngress]);
    const web2 = remotes.resources.find((r) => r.metadata.name.includes("web--2"))!;
    const relabel = (labels: Record<string, string>): Resource => ({
      ...web2,
      metadata: { ...web2.metadata, labels },
    });
    d.feed(puts([relabel({ app: "web", unused: "x" })]));
    assert.deepEqual(d.flush(), [], "a label no selector uses changes nothing");
    d.feed(puts([relabel({ app: "cache" })]));
    assert.deepEqual(summary(d.flush()), ["ipset-delta +[] -[10.65.1.1/32]"]);
    d.feed(puts([relabel({ app: "db" })]));
    assert.deepEqual(summary(d.flush()), ["ipset-delta +[10.65.1.1/32] -[]"]);
  });
});

describe("calc graph: labels", () => {
  it("finds endpoints by a label key no selector read before, and by namespace labels changed later", () => {
    const { d } = synced(remotes.resources);
    const canary = workload({
      namespace: "shop",
      pod: "web-3",
      node: REMOTE_HOST,
      ips: ["10.65.1.7"],
      labels: { app: "web", track: "canary" },
    });
    d.feed(puts([canary]));
    assert.deepEqual(d.flush(), [], "no selector reads track yet");
    const fromCanary = networkPolicy("shop", "from-canary", {
      selector: "app == 'web'",
      ingress: [{ action: "Allow", source: { selector: "track == 'canary'" } }],
    });
    d.feed(puts([fromCanary]));
    assert.ok(
      summary(d.flush()).includes(
        'ipset-update (track == "canary" && projectcalico.org/namespace == "shop") [10.65.1.7/32]',
      ),
    );
    const fromBeta = networkPolicy("shop", "from-beta", {
      selector: "app == 'web'",
      ingress: [
        {
          action: "Allow",
          source: { selector: "app == 'web'", namespaceSelector: "stage == 'beta'" },
        },
      ],
    });
    d.feed(puts([fromBeta]));
    assert.ok(
      summary(d.flush()).includes('ipset-update (app == "web" && pcns.stage == "beta") []'),
    );
    // The namespace's labels change: every endpoint in it is re-read.
    d.feed(puts([namespaceProfile("shop", { team: "a", env: "prod", stage: "beta" })]));
    const all = "10.65.0.1/32 10.65.1.1/32 10.65.1.7/32";
    assert.ok(summary(d.flush()).includes(`ipset-delta +[${all}] -[]`));
    d.feed(puts([namespaceProfile("shop", { team: "a", env: "prod" })]));
    assert.ok(summary(d.flush()).includes(`ipset-delta +[] -[${all}]`));
  });
});

describe("calc graph: endpoints", () => {
  it("lists a local endpoint's policies by tier and order, profiles, missing profiles", () => {
    const ep = (resources: Resource[]) => {
      const { d } = synced(resources);
      return d.model.endpoints.get(WEB1_ID);
    };
    const web1 = withPolicy.resources.find((r) => r.metadata.name.includes("web--1"))!;
    const first = globalPolicy("first", { order: 1, selector: "all()", types: ["Ingress"] });
    const noOrder = globalPolicy("a-last", { selector: "all()", types: ["Egress"] });
    const e = ep([namespaceProfile("shop"), web1, first, noOrder, ...withPolicy.resources]);
    assert.deepEqual(e?.tiers, [
      {
        name: "default",
        defaultAction: "Deny",
        ingress: ["default/first", "default/shop/web-ingress"],
        egress: ["default/a-last"],
      },
    ]);
    assert.deepEqual([e?.profileIds, e?.missingProfiles], [["kns.shop"], []]);
    const orphan = ep([web1]);
    assert.deepEqual([orphan?.profileIds, orphan?.missingProfiles], [[], ["kns.shop"]]);
  });
});

describe("calc graph: policies", () => {
  it("removes a Kubernetes NetworkPolicy's translation when the policy is deleted", () => {
    const { d } = synced(k8sDeny.resources);
    assert.ok(d.model.policies.has("default/shop/knp.default.default-deny"));
    const k8s = k8sDeny.resources.filter((r) => r.apiVersion === "networking.k8s.io/v1");
    d.feed(k8s.map(deleteOf));
    const removes = summary(d.flush()).filter((m) => m.startsWith("policy-remove"));
    assert.deepEqual(removes, [
      "policy-remove default/shop/knp.default.default-deny",
      "policy-remove default/shop/knp.default.web-from-db",
    ]);
  });
});

describe("calc graph: host endpoints", () => {
  it("lists normal, applyOnForward, preDNAT and doNotTrack policies in their own tiers", () => {
    const { d } = synced(hostEndpoints.resources);
    const ep = d.model.endpoints.get("host/node-1-eth0");
    const names = (tiers: readonly TierPolicies[] | undefined) =>
      (tiers ?? []).map(
        (t) => `${t.name}: in [${t.ingress.join(" ")}] out [${t.egress.join(" ")}]`,
      );
    assert.equal(ep?.kind, "host");
    assert.equal(ep?.interfaceName, "eth0");
    assert.deepEqual(names(ep?.tiers), [
      "default: in [default/forward-ssh default/host-https] out [default/forward-ssh]",
    ]);
    assert.deepEqual(names(ep?.forwardTiers), [
      "default: in [default/forward-ssh] out [default/forward-ssh]",
    ]);
    assert.deepEqual(names(ep?.preDnatTiers), ["default: in [default/pre-dnat-block] out []"]);
    assert.deepEqual(names(ep?.untrackedTiers), ["default: in [default/untracked-dns] out []"]);
    assert.equal(d.model.routes.size, 1, "host endpoints get no routes (web-1 has one)");
    assert.equal(d.model.endpoints.has("host/node-2-eth0"), false, "remote host endpoint");
  });
});

describe("calc graph: errors", () => {
  it("skips a malformed resource, reports it once, and carries on", () => {
    const d = new Driver();
    const bad = {
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "bad" },
      spec: { selector: "app ==", types: ["Ingress"] },
    } as Resource;
    d.graph.onUpdates([{ type: "put", resource: bad }, ...puts(withPolicy.resources), IN_SYNC]);
    const errors = d.graph.drainErrors();
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.resource, 'GlobalNetworkPolicy "bad"');
    assert.match(errors[0]?.message ?? "", /selector/i);
    assert.deepEqual(d.graph.drainErrors(), []);
    d.flush();
    assert.equal(d.model.dump(), expectedDump(withPolicy));
  });

  it("survives a malformed rule in a policy that selects a local endpoint", () => {
    const d = new Driver();
    const bad = {
      apiVersion: "projectcalico.org/v3",
      kind: "GlobalNetworkPolicy",
      metadata: { name: "bad-rule" },
      spec: {
        selector: "app == 'web'",
        types: ["Ingress"],
        ingress: [{ action: "Allow", source: { selector: "app ==" } }],
      },
    } as Resource;
    d.graph.onUpdates([...puts(withPolicy.resources), { type: "put", resource: bad }, IN_SYNC]);
    assert.equal(d.graph.drainErrors().length, 1);
    d.flush();
    assert.equal(d.model.dump(), expectedDump(withPolicy));
    // And the graph still works afterwards.
    d.feed(transition(withPolicy.resources, []));
    d.flush();
    assert.equal(d.model.dump(), expectedDump(empty));
  });
});
