import { test } from "node:test";
import assert from "node:assert/strict";
import type { DataplaneMessage, LocalEndpoint } from "../calc/messages.js";
import { isErrorCode } from "../util/errors.js";
import { applyMessage, emptyDesiredDataplane } from "./desired-state.js";
import type { DesiredDataplane } from "./desired-state.js";

const endpoint: LocalEndpoint = {
  id: "workload/default/web",
  kind: "workload",
  name: "web",
  namespace: "default",
  interfaceName: "twaaaa",
  ipv4Nets: ["10.65.0.5/32"],
  ipv6Nets: [],
  allowSpoofedSourcePrefixes: [],
  tiers: [],
  forwardTiers: [],
  preDnatTiers: [],
  untrackedTiers: [],
  profileIds: ["kns.default"],
  missingProfiles: [],
};

/** A summary of the state that is easy to compare. */
function summary(s: DesiredDataplane) {
  return {
    ipsets: Object.fromEntries([...s.ipsets].map(([id, v]) => [id, [...v.members].sort()])),
    policies: [...s.policies.keys()].sort(),
    profiles: [...s.profiles.keys()].sort(),
    endpoints: [...s.endpoints.keys()].sort(),
    routes: [...s.routes.keys()].sort(),
    inSync: s.inSync,
  };
}

const cases: {
  name: string;
  messages: DataplaneMessage[];
  want: ReturnType<typeof summary>;
}[] = [
  {
    name: "an update adds, in-sync marks the state complete",
    messages: [
      {
        type: "ipset-update",
        ipset: { id: "s:a", kind: "net", selector: "app == 'a'" },
        members: ["10.65.0.5/32"],
      },
      {
        type: "policy-update",
        policy: { id: "default/p", tier: "default", name: "p", inbound: [], outbound: [] },
      },
      { type: "profile-update", profile: { id: "kns.default", inbound: [], outbound: [] } },
      { type: "endpoint-update", endpoint },
      {
        type: "route-update",
        route: { dst: "10.65.0.5/32", interfaceName: "twaaaa", endpointId: endpoint.id },
      },
      { type: "in-sync" },
    ],
    want: {
      ipsets: { "s:a": ["10.65.0.5/32"] },
      policies: ["default/p"],
      profiles: ["kns.default"],
      endpoints: [endpoint.id],
      routes: ["10.65.0.5/32"],
      inSync: true,
    },
  },
  {
    name: "an ipset delta removes and adds members",
    messages: [
      {
        type: "ipset-update",
        ipset: { id: "s:a", kind: "net", selector: "all()" },
        members: ["10.0.0.1/32", "10.0.0.2/32"],
      },
      { type: "ipset-delta", id: "s:a", added: ["10.0.0.3/32"], removed: ["10.0.0.1/32"] },
    ],
    want: {
      ipsets: { "s:a": ["10.0.0.2/32", "10.0.0.3/32"] },
      policies: [],
      profiles: [],
      endpoints: [],
      routes: [],
      inSync: false,
    },
  },
  {
    name: "an update replaces the members it had",
    messages: [
      {
        type: "ipset-update",
        ipset: { id: "s:a", kind: "net", selector: "all()" },
        members: ["10.0.0.1/32"],
      },
      {
        type: "ipset-update",
        ipset: { id: "s:a", kind: "net", selector: "all()" },
        members: ["10.0.0.9/32"],
      },
    ],
    want: {
      ipsets: { "s:a": ["10.0.0.9/32"] },
      policies: [],
      profiles: [],
      endpoints: [],
      routes: [],
      inSync: false,
    },
  },
  {
    name: "removes take things away, and a remove of something absent is a no-op",
    messages: [
      {
        type: "ipset-update",
        ipset: { id: "s:a", kind: "net", selector: "all()" },
        members: [],
      },
      { type: "profile-update", profile: { id: "kns.default", inbound: [], outbound: [] } },
      { type: "endpoint-update", endpoint },
      {
        type: "route-update",
        route: { dst: "10.65.0.5/32", interfaceName: "twaaaa", endpointId: endpoint.id },
      },
      { type: "route-remove", dst: "10.65.0.5/32" },
      { type: "endpoint-remove", id: endpoint.id },
      { type: "profile-remove", id: "kns.default" },
      { type: "policy-remove", id: "never/there" },
      { type: "ipset-remove", id: "s:a" },
      { type: "ipset-remove", id: "s:a" },
    ],
    want: { ipsets: {}, policies: [], profiles: [], endpoints: [], routes: [], inSync: false },
  },
];

for (const c of cases) {
  test(`applyMessage: ${c.name}`, () => {
    const state = c.messages.reduce(applyMessage, emptyDesiredDataplane());
    assert.deepEqual(summary(state), c.want);
  });
}

test("applyMessage: returns the state it was given, changed in place", () => {
  const state = emptyDesiredDataplane();
  assert.equal(applyMessage(state, { type: "in-sync" }), state);
  assert.equal(state.inSync, true);
});

test("applyMessage: a delta for a set never announced is refused as Internal", () => {
  const state = emptyDesiredDataplane();
  assert.throws(
    () =>
      applyMessage(state, {
        type: "ipset-delta",
        id: "s:ghost",
        added: ["10.0.0.1/32"],
        removed: [],
      }),
    (err: unknown) => isErrorCode(err, "Internal") && /s:ghost/.test((err as Error).message),
  );
});
