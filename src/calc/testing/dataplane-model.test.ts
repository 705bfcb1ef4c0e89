// The fake dataplane must be honest: it refuses every break of the ordering
// contract (so the calc graph tests can trust a silent apply), keeps state
// exactly, and interprets compiled rules as issue 3 says.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type {
  CompiledPolicy,
  CompiledRule,
  DataplaneMessage,
  LocalEndpoint,
  TierPolicies,
} from "../messages.js";
import { ContractError, DataplaneModel } from "./dataplane-model.js";
import type { ModelFlow } from "./dataplane-model.js";

const IN_SYNC: DataplaneMessage = { type: "in-sync" };

const set = (id: string, members: string[] = []): DataplaneMessage => ({
  type: "ipset-update",
  ipset: { id, kind: members.some((m) => m.includes(",")) ? "net-port" : "net", selector: "x" },
  members,
});

const rule = (action: CompiledRule["action"], extra: Partial<CompiledRule> = {}): CompiledRule => ({
  action,
  src: {},
  dst: {},
  ruleId: "r",
  ...extra,
});

function policy(
  id: string,
  inbound: CompiledRule[],
  outbound: CompiledRule[] = [],
): DataplaneMessage {
  const p: CompiledPolicy = { id, tier: "default", name: id, inbound, outbound };
  return { type: "policy-update", policy: p };
}

const tierOf = (
  name: string,
  ingress: string[],
  defaultAction: TierPolicies["defaultAction"] = "Deny",
): TierPolicies => ({ name, defaultAction, ingress, egress: [] });

function endpoint(
  id: string,
  opts: Partial<Pick<LocalEndpoint, "tiers" | "profileIds" | "missingProfiles">> = {},
): DataplaneMessage {
  return {
    type: "endpoint-update",
    endpoint: {
      id,
      kind: "workload",
      name: id,
      interfaceName: "tw1",
      ipv4Nets: ["10.0.0.1/32"],
      ipv6Nets: [],
      allowSpoofedSourcePrefixes: [],
      tiers: opts.tiers ?? [],
      forwardTiers: [],
      preDnatTiers: [],
      untrackedTiers: [],
      profileIds: opts.profileIds ?? [],
      missingProfiles: opts.missingProfiles ?? [],
    },
  };
}

const profile = (id: string, inbound: CompiledRule[]): DataplaneMessage => ({
  type: "profile-update",
  profile: { id, inbound, outbound: [] },
});

describe("dataplane model: contract", () => {
  const breaks: { name: string; flushes: DataplaneMessage[][]; error: RegExp }[] = [
    {
      name: "anything in a first flush that does not end with in-sync",
      flushes: [[set("s")]],
      error: /before the first in-sync/,
    },
    {
      name: "a delta to an unknown set",
      flushes: [[IN_SYNC], [{ type: "ipset-delta", id: "s", added: [], removed: [] }]],
      error: /ipset "s" is not there/,
    },
    {
      name: "a delta adding a member already in",
      flushes: [
        [set("s", ["10.0.0.1/32"]), IN_SYNC],
        [{ type: "ipset-delta", id: "s", added: ["10.0.0.1/32"], removed: [] }],
      ],
      error: /already a member/,
    },
    {
      name: "a delta removing a member not in",
      flushes: [
        [set("s"), IN_SYNC],
        [{ type: "ipset-delta", id: "s", added: [], removed: ["10.0.0.1/32"] }],
      ],
      error: /is not a member/,
    },
    {
      name: "a policy using a set not yet there",
      flushes: [[policy("p", [rule("Allow", { src: { ipSets: ["s"] } })]), set("s"), IN_SYNC]],
      error: /policy "p" uses ipset "s"/,
    },
    {
      name: "an endpoint naming a policy not there",
      flushes: [[endpoint("e", { tiers: [tierOf("default", ["p"])] }), IN_SYNC]],
      error: /names policy "p"/,
    },
    {
      name: "an endpoint naming a profile not there",
      flushes: [[endpoint("e", { profileIds: ["kns.a"] }), IN_SYNC]],
      error: /names profile "kns.a"/,
    },
    {
      name: "removing a set a policy still uses",
      flushes: [
        [set("s"), policy("p", [rule("Allow", { dst: { namedPortIpSets: ["s"] } })]), IN_SYNC],
        [{ type: "ipset-remove", id: "s" }],
      ],
      error: /still used by policy "p"/,
    },
    {
      name: "removing a policy an endpoint still uses",
      flushes: [
        [policy("p", []), endpoint("e", { tiers: [tierOf("default", ["p"])] }), IN_SYNC],
        [{ type: "policy-remove", id: "p" }],
      ],
      error: /still used by endpoint "e"/,
    },
    {
      name: "removing a profile an endpoint still uses",
      flushes: [
        [profile("kns.a", []), endpoint("e", { profileIds: ["kns.a"] }), IN_SYNC],
        [{ type: "profile-remove", id: "kns.a" }],
      ],
      error: /still used by endpoint "e"/,
    },
    {
      name: "removing an endpoint that still has a route",
      flushes: [
        [
          endpoint("e"),
          {
            type: "route-update",
            route: { dst: "10.0.0.1/32", interfaceName: "tw1", endpointId: "e" },
          },
          IN_SYNC,
        ],
        [{ type: "endpoint-remove", id: "e" }],
      ],
      error: /still has route/,
    },
    {
      name: "a route for an endpoint not there",
      flushes: [
        [
          {
            type: "route-update",
            route: { dst: "10.0.0.1/32", interfaceName: "tw1", endpointId: "e" },
          },
          IN_SYNC,
        ],
      ],
      error: /for endpoint "e", which is not there/,
    },
    {
      name: "removing a route not there",
      flushes: [[IN_SYNC], [{ type: "route-remove", dst: "10.0.0.9/32" }]],
      error: /route "10.0.0.9\/32" is not there/,
    },
  ];
  for (const c of breaks) {
    it(`refuses ${c.name}`, () => {
      const m = new DataplaneModel();
      const last = c.flushes.length - 1;
      c.flushes.slice(0, last).forEach((f) => m.apply(f));
      assert.throws(
        () => m.apply(c.flushes[last]!),
        (err: unknown) => {
          assert.ok(err instanceof ContractError);
          assert.match(err.message, c.error);
          return true;
        },
      );
    });
  }

  it("accepts an empty flush before in-sync, a repeated in-sync, and the contract kept", () => {
    const m = new DataplaneModel();
    m.apply([]);
    assert.equal(m.inSync, false);
    m.apply([
      set("s", ["10.0.0.2/32"]),
      policy("p", [rule("Allow", { src: { ipSets: ["s"] } })]),
      profile("kns.a", []),
      endpoint("e", { tiers: [tierOf("default", ["p"])], profileIds: ["kns.a"] }),
      IN_SYNC,
    ]);
    m.apply([IN_SYNC]);
    m.apply([
      { type: "ipset-delta", id: "s", added: ["10.0.0.3/32"], removed: ["10.0.0.2/32"] },
      endpoint("e"),
      { type: "profile-remove", id: "kns.a" },
      { type: "policy-remove", id: "p" },
      { type: "ipset-remove", id: "s" },
    ]);
    assert.deepEqual(
      [m.inSync, m.ipsets.size, m.policies.size, m.profiles.size, m.endpoints.size],
      [true, 0, 0, 0, 1],
    );
  });

  it("dumps the same text for the same state, whatever the order it was built in", () => {
    const a = new DataplaneModel();
    const b = new DataplaneModel();
    a.apply([set("s1", ["10.0.0.2/32", "10.0.0.1/32"]), set("s2"), IN_SYNC]);
    b.apply([set("s2"), set("s1", ["10.0.0.1/32"]), IN_SYNC]);
    b.apply([{ type: "ipset-delta", id: "s1", added: ["10.0.0.2/32"], removed: [] }]);
    assert.equal(a.dump(), b.dump());
  });
});

describe("dataplane model: evaluate", () => {
  const flow = (over: Partial<ModelFlow> = {}): ModelFlow => ({
    src: { ip: "10.0.0.9", port: 40000 },
    dst: { ip: "10.0.0.1", endpoint: "e", port: 80 },
    protocol: 6,
    ...over,
  });
  const cases: {
    name: string;
    messages: DataplaneMessage[];
    flow?: ModelFlow;
    ingress: "Allow" | "Deny";
  }[] = [
    { name: "no tiers, no profiles: drop", messages: [endpoint("e")], ingress: "Deny" },
    {
      name: "missing profile: drop before any profile",
      messages: [
        profile("p", [rule("Allow")]),
        endpoint("e", { profileIds: ["p"], missingProfiles: ["q"] }),
      ],
      ingress: "Deny",
    },
    {
      name: "Log continues, Allow accepts",
      messages: [
        policy("p", [rule("Log"), rule("Allow")]),
        endpoint("e", { tiers: [tierOf("default", ["p"])] }),
      ],
      ingress: "Allow",
    },
    {
      name: "no rule decided: the tier drops",
      messages: [
        policy("p", [rule("Allow", { protocol: 17 })]),
        profile("k", [rule("Allow")]),
        endpoint("e", { tiers: [tierOf("default", ["p"])], profileIds: ["k"] }),
      ],
      ingress: "Deny",
    },
    {
      name: "no rule decided in a Pass tier: the profiles decide",
      messages: [
        policy("p", []),
        profile("k", [rule("Allow")]),
        endpoint("e", { tiers: [tierOf("t", ["p"], "Pass")], profileIds: ["k"] }),
      ],
      ingress: "Allow",
    },
    {
      name: "Pass skips the rest of the tier",
      messages: [
        policy("p1", [rule("Pass")]),
        policy("p2", [rule("Deny")]),
        policy("p3", [rule("Allow")]),
        endpoint("e", { tiers: [tierOf("t", ["p1", "p2"]), tierOf("u", ["p3"])] }),
      ],
      ingress: "Allow",
    },
    {
      name: "Pass in a profile skips the rest of that profile",
      messages: [
        profile("k1", [rule("Pass"), rule("Allow")]),
        profile("k2", [rule("Deny")]),
        endpoint("e", { profileIds: ["k1", "k2"] }),
      ],
      ingress: "Deny",
    },
    {
      name: "source in a set, port in a range",
      messages: [
        set("s", ["10.0.0.0/24"]),
        policy("p", [
          rule("Allow", { src: { ipSets: ["s"] }, dst: { ports: [{ first: 79, last: 81 }] } }),
        ]),
        endpoint("e", { tiers: [tierOf("default", ["p"])] }),
      ],
      ingress: "Allow",
    },
    {
      name: "named-port member must match address, protocol and port",
      messages: [
        set("np", ["10.0.0.1/32,tcp:8080"]),
        policy("p", [rule("Allow", { protocol: 6, dst: { namedPortIpSets: ["np"] } })]),
        endpoint("e", { tiers: [tierOf("default", ["p"])] }),
      ],
      flow: flow({ dst: { ip: "10.0.0.1", endpoint: "e", port: 8080 } }),
      ingress: "Allow",
    },
    {
      name: "notNets of the other family leave the rule out for this family",
      messages: [
        policy("p", [rule("Allow", { src: { notNets: ["fd00::/64"] } })]),
        endpoint("e", { tiers: [tierOf("default", ["p"])] }),
      ],
      ingress: "Deny",
    },
    {
      name: "notICMP with a flow that gives no ICMP does not match",
      messages: [
        policy("p", [rule("Allow", { notICMP: { type: 8 } })]),
        endpoint("e", { tiers: [tierOf("default", ["p"])] }),
      ],
      ingress: "Deny",
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const m = new DataplaneModel();
      m.apply([...c.messages, IN_SYNC]);
      assert.deepEqual(m.evaluate(c.flow ?? flow()), { ingress: c.ingress });
    });
  }
});
