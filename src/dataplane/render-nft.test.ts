// Golden files for the nftables renderer, and the real nft as the judge of
// their syntax. Each scenario is a message stream from the calc (applied with
// applyMessage) plus a config; its full transaction is compared with
// testdata/nft/<scenario>.nft (UPDATE_GOLDEN=1 rewrites them). As root, every
// golden is loaded into a fresh network namespace with nft 1.0.6 (`-c`, then
// for real), listed back and compared with the rendering, and deltas between
// scenarios are applied on top of each other there: the kernel must end up
// holding exactly the rendering of the later state.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import {
  DEFAULT_FAILSAFE_INBOUND,
  DEFAULT_FAILSAFE_OUTBOUND,
} from "../api/schemas/felix-configuration.js";
import type {
  CompiledPolicy,
  CompiledProfile,
  CompiledRule,
  DataplaneMessage,
  IPSetInfo,
  LocalEndpoint,
  TierPolicies,
} from "../calc/messages.js";
import {
  applyMessage,
  emptyChangedIds,
  emptyDesiredDataplane,
  noteChangedIds,
} from "./desired-state.js";
import type { ChangedIds, DesiredDataplane } from "./desired-state.js";
import { snapshotRuleset } from "./nft-driver.js";
import {
  nftNames,
  RulesetRenderer,
  renderDelta,
  renderFullTransaction,
  renderRuleset,
} from "./render-nft.js";
import type { RenderConfig, RenderedRuleset } from "./render-nft.js";
import { diffRulesets, normaliseProtocols, parseNftListing } from "./nft-listing.js";
import type { Resource } from "../api/resource.js";
import { CalcGraph } from "../calc/calc-graph.js";
import { Random, randomCluster, randomEdit } from "../calc/testing/random-cluster.js";
import { transition } from "../calc/testing/resources.js";

// dist/src/dataplane/render-nft.test.js → src/dataplane/testdata/nft
const GOLDEN = fileURLToPath(new URL("../../../src/dataplane/testdata/nft/", import.meta.url));
const UPDATE = process.env["UPDATE_GOLDEN"] === "1";

// ---------------------------------------------------------------------------
// Builders.

const CONFIG: RenderConfig = {
  interfacePrefix: "tw",
  defaultEndpointToHostAction: "Drop",
  failsafeInbound: DEFAULT_FAILSAFE_INBOUND,
  failsafeOutbound: DEFAULT_FAILSAFE_OUTBOUND,
  natOutgoingPools: [],
  allPools: ["10.65.0.0/16", "fd00:65::/48"],
  logPrefix: "twill-packet",
};

function rule(ruleId: string, action: CompiledRule["action"], more: Partial<CompiledRule> = {}) {
  return { action, src: {}, dst: {}, ruleId, ...more } satisfies CompiledRule;
}

function workload(name: string, iface: string, more: Partial<LocalEndpoint> = {}): LocalEndpoint {
  return {
    id: `workload/default/${name}`,
    kind: "workload",
    name,
    namespace: "default",
    interfaceName: iface,
    ipv4Nets: [],
    ipv6Nets: [],
    allowSpoofedSourcePrefixes: [],
    tiers: [],
    forwardTiers: [],
    preDnatTiers: [],
    untrackedTiers: [],
    profileIds: ["kns.default"],
    missingProfiles: [],
    ...more,
  };
}

function host(name: string, iface: string, more: Partial<LocalEndpoint> = {}): LocalEndpoint {
  return {
    id: `host/${name}`,
    kind: "host",
    name,
    interfaceName: iface,
    ipv4Nets: [],
    ipv6Nets: [],
    allowSpoofedSourcePrefixes: [],
    tiers: [],
    forwardTiers: [],
    preDnatTiers: [],
    untrackedTiers: [],
    profileIds: [],
    missingProfiles: [],
    ...more,
  };
}

function tier(
  name: string,
  ingress: string[],
  egress: string[],
  defaultAction: TierPolicies["defaultAction"] = "Deny",
): TierPolicies {
  return { name, defaultAction, ingress, egress };
}

function policy(id: string, inbound: CompiledRule[], outbound: CompiledRule[]): CompiledPolicy {
  const [tierName = "default", ...rest] = id.split("/");
  return { id, tier: tierName, name: rest.join("/"), inbound, outbound };
}

function ipset(id: string, members: string[], more: Partial<IPSetInfo> = {}): DataplaneMessage {
  return {
    type: "ipset-update",
    ipset: { id, kind: id.startsWith("p:") ? "net-port" : "net", selector: "all()", ...more },
    members,
  };
}

const up = {
  policy: (p: CompiledPolicy): DataplaneMessage => ({ type: "policy-update", policy: p }),
  profile: (p: CompiledProfile): DataplaneMessage => ({ type: "profile-update", profile: p }),
  endpoint: (e: LocalEndpoint): DataplaneMessage => ({ type: "endpoint-update", endpoint: e }),
};

const allowAll: CompiledProfile = {
  id: "kns.default",
  inbound: [rule("kns.default/ingress/0", "Allow")],
  outbound: [rule("kns.default/egress/0", "Allow")],
};

// ---------------------------------------------------------------------------
// Scenarios.

interface Scenario {
  messages: DataplaneMessage[];
  config?: Partial<RenderConfig>;
}

const scenarios: Record<string, Scenario> = {
  "one-workload-profile-allow": {
    messages: [
      up.profile(allowAll),
      up.endpoint(workload("web", "tw0a1b2c3d4e5", { ipv4Nets: ["10.65.0.5/32"] })),
      { type: "in-sync" },
    ],
  },

  "two-workloads-tiered": {
    config: { defaultEndpointToHostAction: "Accept" },
    messages: [
      ipset("s:clients", ["10.65.0.6/32", "10.65.1.0/26", "10.65.1.7/32"], {
        selector: "role == 'client'",
      }),
      ipset("s:web", ["10.65.0.5/32"], { selector: "app == 'web'" }),
      up.policy(
        policy(
          "security/audit",
          [
            rule("security/audit/ingress/0", "Log", { src: { notIpSets: ["s:clients"] } }),
            rule("security/audit/ingress/1", "Pass", { src: { nets: ["10.0.0.0/8"] } }),
            rule("security/audit/ingress/2", "Deny", {
              protocol: 6,
              dst: { ports: [{ first: 22, last: 22 }] },
            }),
          ],
          [rule("security/audit/egress/0", "Pass")],
        ),
      ),
      up.policy(
        policy(
          "security/quarantine",
          [rule("security/quarantine/ingress/0", "Deny", { src: { nets: ["192.0.2.0/24"] } })],
          [],
        ),
      ),
      up.policy(
        policy(
          "default/default/allow-web",
          [
            rule("default/default/allow-web/ingress/0", "Allow", {
              protocol: 6,
              src: { ipSets: ["s:clients"] },
              dst: {
                ports: [
                  { first: 80, last: 80 },
                  { first: 443, last: 443 },
                  { first: 8000, last: 8080 },
                ],
              },
            }),
            rule("default/default/allow-web/ingress/1", "Allow", {
              protocol: 1,
              icmp: { type: 8 },
            }),
          ],
          [rule("default/default/allow-web/egress/0", "Allow", { dst: { ipSets: ["s:web"] } })],
        ),
      ),
      up.policy(
        policy(
          "default/default/deny-rest",
          [rule("default/default/deny-rest/ingress/0", "Deny")],
          [],
        ),
      ),
      up.profile(allowAll),
      up.endpoint(
        workload("web", "tw0a1b2c3d4e5", {
          ipv4Nets: ["10.65.0.5/32"],
          tiers: [
            tier("security", ["security/audit", "security/quarantine"], ["security/audit"], "Pass"),
            tier(
              "default",
              ["default/default/allow-web", "default/default/deny-rest"],
              ["default/default/allow-web"],
            ),
          ],
        }),
      ),
      up.endpoint(
        workload("client", "tw9f8e7d6c5b4", {
          ipv4Nets: ["10.65.0.6/32"],
          tiers: [tier("security", ["security/audit"], ["security/audit"], "Pass")],
        }),
      ),
      { type: "in-sync" },
    ],
  },

  "named-ports": {
    // Log prefixes and comments are quoted strings nft cannot escape.
    config: { logPrefix: "twill $pkt" },
    messages: [
      ipset("s:db", ["10.65.0.7/32", "fd00:65::7/128"], {
        selector: 'app in {"db", "cache"} && tier == "back\\end"',
      }),
      ipset(
        "p:http",
        ["10.65.0.5/32,tcp:8080", "10.65.0.6/32,tcp:8081", "fd00:65::5/128,tcp:8080"],
        {
          selector: "all()",
          namedPort: { name: "http", protocol: "tcp" },
        },
      ),
      ipset("p:metrics", ["10.65.0.5/32,tcp:9090"], {
        selector: "all()",
        namedPort: { name: "metrics", protocol: "tcp" },
      }),
      ipset("p:dns", ["10.65.0.53/32,udp:53"], {
        selector: "all()",
        namedPort: { name: "dns", protocol: "udp" },
      }),
      up.policy(
        policy(
          "default/ports",
          [
            rule("default/ports/ingress/0", "Allow", {
              protocol: 6,
              dst: { ports: [{ first: 80, last: 80 }], namedPortIpSets: ["p:http", "p:metrics"] },
            }),
            rule("default/ports/ingress/1", "Log", {
              protocol: 6,
              dst: { ports: [{ first: 443, last: 443 }], namedPortIpSets: ["p:http"] },
            }),
            rule("default/ports/ingress/2", "Deny", {
              protocol: 6,
              src: { ipSets: ["s:db"] },
              dst: { notPorts: [{ first: 5432, last: 5432 }], notNamedPortIpSets: ["p:http"] },
            }),
          ],
          [
            rule("default/ports/egress/0", "Allow", {
              protocol: 17,
              dst: { namedPortIpSets: ["p:dns"] },
            }),
            rule("default/ports/egress/1", "Allow", {
              protocol: 1,
              dst: { ports: [{ first: 1, last: 1 }] },
            }),
          ],
        ),
      ),
      up.profile(allowAll),
      up.endpoint(
        workload("web", "tw0a1b2c3d4e5", {
          ipv4Nets: ["10.65.0.5/32"],
          ipv6Nets: ["fd00:65::5/128"],
          tiers: [tier("default", ["default/ports"], ["default/ports"])],
        }),
      ),
      { type: "in-sync" },
    ],
  },

  "dual-stack": {
    messages: [
      ipset(
        "s:mixed",
        [
          "10.0.0.0/8",
          "10.1.2.3/32",
          "192.0.2.1/32",
          "fd00::/64",
          "fd00::1/128",
          "2001:db8::1/128",
        ],
        {
          selector: "has(mixed)",
        },
      ),
      up.policy(
        policy(
          "default/dual",
          [
            rule("default/dual/ingress/0", "Allow", {
              src: { nets: ["10.65.0.0/24", "10.65.1.0/24", "fd00:65::/64", "fd00:65:0:1::/64"] },
            }),
            rule("default/dual/ingress/1", "Allow", { src: { nets: ["fd00:99::/64"] } }),
            rule("default/dual/ingress/2", "Allow", { ipVersion: 4, protocol: 17 }),
            rule("default/dual/ingress/3", "Allow", { icmp: { type: 8 } }),
            rule("default/dual/ingress/4", "Allow", { protocol: 58, icmp: { type: 128, code: 0 } }),
            rule("default/dual/ingress/5", "Deny", { protocol: 1, notICMP: { type: 3, code: 4 } }),
            rule("default/dual/ingress/6", "Deny", {
              notProtocol: 6,
              src: { notNets: ["192.0.2.0/24"] },
            }),
            rule("default/dual/ingress/7", "Allow", { src: { ipSets: ["s:mixed"] } }),
            rule("default/dual/ingress/8", "Allow", { ipVersion: 6, protocol: 58 }),
            rule("default/dual/ingress/9", "Allow", { ipVersion: 6, protocol: 6 }),
          ],
          [
            rule("default/dual/egress/0", "Allow", {
              protocol: 6,
              dst: { nets: ["0.0.0.0/0", "::/0"], ports: [{ first: 443, last: 443 }] },
            }),
          ],
        ),
      ),
      up.profile(allowAll),
      up.endpoint(
        workload("dual", "tw1111aaaa2222", {
          ipv4Nets: ["10.65.0.9/32"],
          ipv6Nets: ["fd00:65::9/128"],
          allowSpoofedSourcePrefixes: ["192.0.2.0/24", "2001:db8:1::/48"],
          tiers: [tier("default", ["default/dual"], ["default/dual"])],
        }),
      ),
      up.endpoint(workload("v6only", "tw3333bbbb4444", { ipv6Nets: ["fd00:65::10/128"] })),
      { type: "in-sync" },
    ],
  },

  "missing-profile": {
    messages: [
      up.profile(allowAll),
      up.endpoint(
        workload("orphan", "tw5555cccc6666", {
          ipv4Nets: ["10.65.0.11/32"],
          profileIds: ["kns.default"],
          missingProfiles: ["kns.ghost"],
        }),
      ),
      { type: "in-sync" },
    ],
  },

  "host-endpoint": {
    config: {
      failsafeInbound: [
        ...DEFAULT_FAILSAFE_INBOUND,
        { protocol: "TCP", port: 9100, net: "192.0.2.0/24" },
        { protocol: "UDP", port: 161, net: "2001:db8::/32" },
      ],
    },
    messages: [
      up.policy(
        policy(
          "default/host-ssh",
          [
            rule("default/host-ssh/ingress/0", "Allow", {
              protocol: 6,
              dst: { ports: [{ first: 2222, last: 2222 }] },
            }),
          ],
          [rule("default/host-ssh/egress/0", "Allow")],
        ),
      ),
      up.policy(
        policy(
          "default/forward-web",
          [
            rule("default/forward-web/ingress/0", "Allow", {
              protocol: 6,
              dst: { ports: [{ first: 80, last: 80 }] },
            }),
          ],
          [],
        ),
      ),
      up.policy(
        policy(
          "default/nodeports",
          [
            rule("default/nodeports/ingress/0", "Allow", {
              protocol: 6,
              dst: { ports: [{ first: 30000, last: 32767 }] },
            }),
            rule("default/nodeports/ingress/1", "Deny", { src: { nets: ["203.0.113.0/24"] } }),
          ],
          [],
        ),
      ),
      up.policy(
        policy(
          "default/untracked-dns",
          [
            rule("default/untracked-dns/ingress/0", "Allow", {
              protocol: 17,
              src: { ports: [{ first: 53, last: 53 }] },
            }),
          ],
          [
            rule("default/untracked-dns/egress/0", "Allow", {
              protocol: 17,
              dst: { ports: [{ first: 53, last: 53 }] },
            }),
          ],
        ),
      ),
      up.profile(allowAll),
      up.endpoint(
        host("eth0", "eth0", {
          ipv4Nets: ["192.0.2.10/32"],
          tiers: [tier("default", ["default/host-ssh"], ["default/host-ssh"])],
          forwardTiers: [tier("default", ["default/forward-web"], [])],
          preDnatTiers: [tier("default", ["default/nodeports"], [])],
          untrackedTiers: [tier("default", ["default/untracked-dns"], ["default/untracked-dns"])],
        }),
      ),
      up.endpoint(host("eth1", "eth1")),
      up.endpoint(host("all", "*", { profileIds: ["kns.default"] })),
      up.endpoint(workload("web", "tw0a1b2c3d4e5", { ipv4Nets: ["10.65.0.5/32"] })),
      { type: "in-sync" },
    ],
  },

  "nat-outgoing": {
    config: {
      natOutgoingPools: ["10.65.0.0/16", "fd00:65::/48"],
      allPools: ["10.65.0.0/16", "10.66.0.0/16", "fd00:65::/48", "fd00:66::/48"],
      defaultEndpointToHostAction: "Return",
    },
    messages: [
      up.profile(allowAll),
      up.endpoint(
        workload("web", "tw0a1b2c3d4e5", {
          ipv4Nets: ["10.65.0.5/32"],
          ipv6Nets: ["fd00:65::5/128"],
        }),
      ),
      { type: "in-sync" },
    ],
  },
};

function stateOf(messages: readonly DataplaneMessage[]): DesiredDataplane {
  return messages.reduce(applyMessage, emptyDesiredDataplane());
}

function render(name: string): RenderedRuleset {
  const s = scenarios[name]!;
  return renderRuleset(stateOf(s.messages), { ...CONFIG, ...s.config });
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

// ---------------------------------------------------------------------------
// Goldens.

for (const name of Object.keys(scenarios)) {
  test(`golden: ${name}`, () => {
    checkGolden(`${name}.nft`, renderFullTransaction(render(name)));
  });
}

/** The two-workloads scenario one flush later: a member, a rule, an endpoint in, one out. */
function twoWorkloadsLater(): DataplaneMessage[] {
  const base = scenarios["two-workloads-tiered"]!.messages;
  return [
    ...base,
    { type: "ipset-delta", id: "s:clients", added: ["10.65.0.8/32"], removed: ["10.65.0.6/32"] },
    up.policy(
      policy(
        "default/default/deny-rest",
        [rule("default/default/deny-rest/ingress/0", "Deny", { protocol: 17 })],
        [],
      ),
    ),
    up.endpoint(workload("extra", "tw7777dddd8888", { ipv4Nets: ["10.65.0.8/32"] })),
    { type: "endpoint-remove", id: "workload/default/client" },
  ];
}

for (const additions of ["commands", "table-block"] as const) {
  test(`golden: delta between two flushes of the two-workloads scenario (${additions})`, () => {
    const s = scenarios["two-workloads-tiered"]!;
    const config = { ...CONFIG, ...s.config };
    const before = renderRuleset(stateOf(s.messages), config);
    const after = renderRuleset(stateOf(twoWorkloadsLater()), config);
    const file =
      additions === "commands" ? "delta-two-workloads.nft" : "delta-two-workloads-block.nft";
    checkGolden(file, renderDelta(before, after, { additions }));
  });
}

// ---------------------------------------------------------------------------
// Properties of the rendering.

test("delta: the same ruleset twice needs no transaction", () => {
  for (const name of Object.keys(scenarios))
    assert.equal(renderDelta(render(name), render(name)), "");
});

test("delta: touches only the changed chains, set elements and map elements", () => {
  const s = scenarios["two-workloads-tiered"]!;
  const config = { ...CONFIG, ...s.config };
  const delta = renderDelta(
    renderRuleset(stateOf(s.messages), config),
    renderRuleset(stateOf(twoWorkloadsLater()), config),
  );
  const clients4 = nftNames.ipSet("s:clients", 4, "net");
  const denyRest = nftNames.policyChain("default/default/deny-rest", "in");
  const gone = nftNames.workloadChain("workload/default/client", "from");
  const added = nftNames.workloadChain("workload/default/extra", "to");
  const unchanged = nftNames.policyChain("default/default/allow-web", "in");
  assert.match(
    delta,
    new RegExp(`^delete element inet twill ${clients4} \\{ 10\\.65\\.0\\.6 \\}$`, "m"),
  );
  assert.match(
    delta,
    new RegExp(`^add element inet twill ${clients4} \\{ 10\\.65\\.0\\.8 \\}$`, "m"),
  );
  assert.match(delta, new RegExp(`^flush chain inet twill ${denyRest}$`, "m"));
  assert.match(delta, new RegExp(`^delete chain inet twill ${gone}$`, "m"));
  assert.match(
    delta,
    new RegExp(
      `^add chain inet twill ${added} \\{ comment "workload/default/extra ingress"; \\}$`,
      "m",
    ),
  );
  assert.match(delta, /^delete element inet twill from-wl \{ "tw9f8e7d6c5b4" : goto /m);
  assert.doesNotMatch(delta, new RegExp(unchanged));
  assert.doesNotMatch(delta, /chain inet twill (forward|input|output)\b/);
  // References go before what they refer to does.
  const order = [
    `add chain inet twill ${added}`,
    "delete element inet twill from-wl",
    `add element inet twill to-wl { "tw7777dddd8888" : goto ${added} }`,
    `flush chain inet twill ${denyRest}`,
    `add rule inet twill ${denyRest} `,
    `flush chain inet twill ${gone}`,
    `delete chain inet twill ${gone}`,
  ].map((text) => delta.indexOf(text));
  assert.ok(
    order.every((at, i) => at >= 0 && (i === 0 || at > order[i - 1]!)),
    `order ${order.join(",")}`,
  );
});

test("rendering is deterministic whatever order the messages came in", () => {
  const s = scenarios["two-workloads-tiered"]!;
  const config = { ...CONFIG, ...s.config };
  const forward = renderFullTransaction(renderRuleset(stateOf(s.messages), config));
  const backward = renderFullTransaction(renderRuleset(stateOf([...s.messages].reverse()), config));
  assert.equal(backward, forward);
});

/**
 * One step of a renderer kept across changes: the incremental rendering
 * must be exactly the fresh one, and the delta over just the changes it
 * reports exactly the delta over everything.
 */
function checkIncremental(
  renderer: RulesetRenderer,
  state: DesiredDataplane,
  config: RenderConfig,
  changed: ChangedIds | undefined,
  before: RenderedRuleset | undefined,
  what: string,
): RenderedRuleset {
  const live = renderer.render(state, config, changed ? { changed } : {});
  const changes = renderer.takeChanges();
  const fresh = renderRuleset(state, config);
  assert.equal(renderFullTransaction(live), renderFullTransaction(fresh), `${what}: rendering`);
  assert.deepEqual(diffRulesets(live, fresh), [], `${what}: ruleset`);
  if (before) {
    const whole = renderDelta(before, fresh, { additions: "table-block" });
    if (changes) {
      assert.equal(
        renderDelta(before, live, { additions: "table-block", only: changes }),
        whole,
        `${what}: delta over the reported changes`,
      );
      assert.equal(
        renderDelta(before, live, { only: changes }),
        renderDelta(before, fresh),
        `${what}: delta (commands)`,
      );
    }
  }
  return snapshotRuleset(live);
}

test("a RulesetRenderer renders what a fresh rendering does, change after change, reusing the unchanged", () => {
  const s = scenarios["two-workloads-tiered"]!;
  const config = { ...CONFIG, ...s.config };
  const state = stateOf(s.messages);
  const renderer = new RulesetRenderer();
  const steps: { change: DataplaneMessage[]; config?: RenderConfig }[] = [
    { change: twoWorkloadsLater().slice(s.messages.length) },
    { change: [{ type: "ipset-delta", id: "s:web", added: ["10.65.3.0/24"], removed: [] }] },
    { change: [{ type: "profile-remove", id: "kns.default" }] },
    { change: [up.profile(allowAll)] },
    { change: [], config: { ...config, logPrefix: "other" } },
    { change: [{ type: "policy-remove", id: "security/audit" }] },
    { change: [{ type: "ipset-remove", id: "s:clients" }] },
    { change: [{ type: "endpoint-remove", id: "workload/default/web" }] },
  ];
  let currentConfig = config;
  let before = checkIncremental(renderer, state, config, undefined, undefined, "first");
  for (const [i, step] of steps.entries()) {
    for (const m of step.change) applyMessage(state, m);
    currentConfig = step.config ?? currentConfig;
    const changed = step.change.reduce(noteChangedIds, emptyChangedIds());
    before = checkIncremental(renderer, state, currentConfig, changed, before, `step ${i}`);
  }
  // An unrelated change leaves a chain's and a set's arrays as they were,
  // and reports only what it changed.
  const web = nftNames.workloadChain("workload/default/extra", "to");
  const webSet = nftNames.ipSet("s:web", 4, "net");
  const kept = renderer.render(state, currentConfig, { changed: emptyChangedIds() });
  const chainBefore = kept.chains.get(web);
  const setBefore = kept.sets.get(webSet);
  assert.ok(chainBefore && setBefore);
  const delta: DataplaneMessage = {
    type: "ipset-delta",
    id: "s:web",
    added: ["fd00:65::9/128"],
    removed: [],
  };
  applyMessage(state, delta);
  const again = renderer.render(state, currentConfig, {
    changed: noteChangedIds(emptyChangedIds(), delta),
  });
  assert.equal(again, kept, "the same live ruleset");
  assert.equal(again.chains.get(web), chainBefore);
  assert.equal(again.sets.get(webSet), setBefore, "the IPv4 set did not change");
  assert.deepEqual(renderer.takeChanges(), {
    chains: new Set(),
    sets: new Set([nftNames.ipSet("s:web", 6, "net")]),
    maps: new Map(),
  });
});

/**
 * Random message streams over small alphabets, so that interfaces clash,
 * endpoints move between interfaces, policies, profiles and IP sets come and
 * go while named, sets are named as both kinds, host endpoints (and the
 * wildcard) appear: every mix the incremental path has a branch for.
 */
function randomMessages(seed: number, count: number): DataplaneMessage[][] {
  let x = seed;
  const int = (n: number) => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const some = <T>(items: readonly T[], max: number): T[] => {
    const n = int(max + 1);
    return [...new Set(Array.from({ length: n }, () => pick(items)))];
  };
  const setIds = ["s:a", "s:b", "s:c", "p:a", "p:b"];
  const policyIds = ["default/p1", "default/p2", "sec/p3", "sec/p4"];
  const profileIds = ["kns.a", "kns.b", "kns.c"];
  const ifaces = ["tw1", "tw2", "tw3", "tw4", "eth0", "eth1", "bad name"];
  const endpointIds = [
    "workload/ns/a",
    "workload/ns/b",
    "workload/ns/c",
    "workload/ns/d",
    "workload/ns/e",
    "host/h1",
    "host/h2",
    // Sorts after the workloads: a workload can take its interface.
    "zz-host/h3",
  ];
  const members = () =>
    some(["10.65.0.1/32", "10.65.0.2/32", "10.65.1.0/24", "fd00:65::1/128", "10.66.0.0/16"], 4);
  const ruleOf = (id: string): CompiledRule => {
    const r: CompiledRule = {
      action: pick(["Allow", "Deny", "Pass", "Log"]),
      src: {},
      dst: {},
      ruleId: id,
    };
    const k = int(5);
    if (k === 0) r.src = { ipSets: [pick(setIds)] };
    if (k === 1) r.dst = { notIpSets: [pick(setIds)] };
    if (k === 2) {
      r.protocol = 6;
      r.dst = { namedPortIpSets: [pick(setIds)] };
    }
    if (k === 3) r.src = { nets: ["10.0.0.0/8"] };
    return r;
  };
  const tiers = (): TierPolicies[] => {
    const t: TierPolicies[] = [];
    if (int(3) > 0)
      t.push(tier("sec", some(policyIds, 2), some(policyIds, 2), pick(["Deny", "Pass"])));
    if (int(3) > 0) t.push(tier("default", some(policyIds, 2), some(policyIds, 2)));
    return t;
  };
  const endpoint = (id: string): LocalEndpoint => {
    const isHost = id.includes("host/");
    const iface = isHost && int(4) === 0 ? "*" : pick(ifaces);
    const base = { id, ipv4Nets: some(["10.65.0.1/32", "10.65.0.2/32"], 2), tiers: tiers() };
    const ep = isHost
      ? host(id.slice(id.indexOf("/") + 1), iface, {
          ...base,
          forwardTiers: int(2) ? tiers() : [],
          preDnatTiers: int(3) ? [] : tiers(),
          untrackedTiers: int(3) ? [] : tiers(),
        })
      : workload(id.slice(12), iface, base);
    ep.profileIds = some(profileIds, 2);
    if (int(6) === 0) ep.missingProfiles = ["kns.gone"];
    if (int(4) === 0) ep.allowSpoofedSourcePrefixes = ["192.0.2.0/24"];
    return ep;
  };
  const steps: DataplaneMessage[][] = [];
  for (let i = 0; i < count; i++) {
    const step: DataplaneMessage[] = [];
    for (let n = 1 + int(i === 0 ? 20 : 4); n > 0; n--) {
      switch (int(9)) {
        case 0: {
          const id = pick(setIds);
          const np = id.startsWith("p:");
          step.push({
            type: "ipset-update",
            ipset: {
              id,
              kind: np ? "net-port" : "net",
              selector: `s == '${id}'`,
              ...(np ? { namedPort: { name: "http", protocol: "tcp" as const } } : {}),
            },
            members: np ? members().map((m) => `${m.split("/")[0]},tcp:80`) : members(),
          });
          break;
        }
        case 1: {
          // (Dropped by the test when the set is not there.)
          const id = pick(setIds.filter((id) => id.startsWith("s:")));
          step.push({ type: "ipset-delta", id, added: members(), removed: members() });
          break;
        }
        case 2:
          step.push({ type: "ipset-remove", id: pick(setIds) });
          break;
        case 3: {
          const id = pick(policyIds);
          step.push(
            up.policy(
              policy(
                id,
                Array.from({ length: int(3) }, (_, k) => ruleOf(`${id}/ingress/${k}`)),
                Array.from({ length: int(3) }, (_, k) => ruleOf(`${id}/egress/${k}`)),
              ),
            ),
          );
          break;
        }
        case 4:
          step.push({ type: "policy-remove", id: pick(policyIds) });
          break;
        case 5: {
          const id = pick(profileIds);
          step.push(
            up.profile({
              id,
              inbound: Array.from({ length: int(3) }, (_, k) => ruleOf(`${id}/ingress/${k}`)),
              outbound: [ruleOf(`${id}/egress/0`)],
            }),
          );
          break;
        }
        case 6:
          step.push({ type: "profile-remove", id: pick(profileIds) });
          break;
        case 7:
          step.push({ type: "endpoint-remove", id: pick(endpointIds) });
          break;
        default:
          step.push(up.endpoint(endpoint(pick(endpointIds))));
      }
    }
    steps.push(step);
  }
  return steps;
}

test("a RulesetRenderer told only what changed renders what a fresh rendering does, for random change streams", () => {
  const configs: RenderConfig[] = [
    CONFIG,
    { ...CONFIG, natOutgoingPools: ["10.65.0.0/16"], defaultEndpointToHostAction: "Return" },
  ];
  for (let seed = 1; seed <= 40; seed++) {
    const state = emptyDesiredDataplane();
    const renderer = new RulesetRenderer();
    let config = configs[0]!;
    let before: RenderedRuleset | undefined;
    // As the calc would: no delta for a set the dataplane does not hold.
    const apply = (msgs: DataplaneMessage[]) =>
      msgs.filter((m) => {
        if (m.type === "ipset-delta" && !state.ipsets.has(m.id)) return false;
        applyMessage(state, m);
        return true;
      });
    for (const [i, all] of randomMessages(seed, 40).entries()) {
      const step = apply(all);
      // Now and then a new config (the renderer starts afresh) or a rendering
      // of several flushes at once.
      if (i % 17 === 16) config = configs[((i / 17) % 2) | 0]!;
      const changed = step.reduce(noteChangedIds, emptyChangedIds());
      if (seed % 3 === 0 && i % 4 === 1) {
        // Told nothing new this time: the next rendering catches up.
        apply(randomMessages(seed * 1000 + i, 1)[0]!).reduce(noteChangedIds, changed);
      }
      before = checkIncremental(renderer, state, config, changed, before, `seed ${seed} step ${i}`);
    }
  }
});

test("a RulesetRenderer follows random clusters through the calc, edit after edit", () => {
  for (let seed = 1; seed <= 6; seed++) {
    const r = new Random(seed);
    let resources: readonly Resource[] = randomCluster(r);
    const calc = new CalcGraph({ hostname: "node-1" });
    calc.onUpdates([...transition([], resources), { type: "status", status: "in-sync" }]);
    const state = emptyDesiredDataplane();
    const renderer = new RulesetRenderer();
    let before: RenderedRuleset | undefined;
    for (let step = 0; step < 25; step++) {
      const msgs = calc.flush();
      for (const m of msgs) applyMessage(state, m);
      const changed = msgs.reduce(noteChangedIds, emptyChangedIds());
      before = checkIncremental(
        renderer,
        state,
        CONFIG,
        changed,
        before,
        `seed ${seed} step ${step}`,
      );
      const next = randomEdit(r, resources, step);
      calc.onUpdates(transition(resources, next));
      resources = next;
    }
  }
});

test("dangling references fail closed: unknown policy empty, unknown profile denies, unknown set empty", () => {
  const state = stateOf([
    up.policy(
      policy(
        "default/p",
        [rule("default/p/ingress/0", "Allow", { src: { ipSets: ["s:nowhere"] } })],
        [],
      ),
    ),
    up.endpoint(
      workload("w", "tw1", {
        ipv4Nets: ["10.65.0.1/32"],
        tiers: [tier("default", ["default/p", "default/ghost"], [])],
        profileIds: ["kns.unknown"],
      }),
    ),
  ]);
  const r = renderRuleset(state, CONFIG);
  assert.deepEqual(r.chains.get(nftNames.policyChain("default/ghost", "in")), []);
  assert.deepEqual(r.sets.get(nftNames.ipSet("s:nowhere", 4, "net"))?.elements, []);
  const to = r.chains.get(nftNames.workloadChain("workload/default/w", "to"))!;
  assert.match(to.at(-1)!, /^drop comment "missing profile kns\.unknown"$/);
});

test("rules that can never match render nothing", () => {
  const state = stateOf([
    up.policy(
      policy(
        "default/never",
        [
          rule("r/0", "Allow", { protocol: 1, dst: { ports: [{ first: 80, last: 80 }] } }),
          rule("r/1", "Allow", { protocol: 6, notProtocol: 6 }),
          rule("r/2", "Allow", { protocol: 6, icmp: { type: 8 } }),
          rule("r/3", "Allow", { ipVersion: 6, src: { nets: ["10.0.0.0/8"] } }),
          rule("r/4", "Allow", { dst: { notNets: ["fd00::/8"] }, ipVersion: 4 }),
        ],
        [],
      ),
    ),
    up.endpoint(workload("w", "tw1", { tiers: [tier("default", ["default/never"], [])] })),
  ]);
  const r = renderRuleset(state, CONFIG);
  assert.deepEqual(r.chains.get(nftNames.policyChain("default/never", "in")), []);
});

test("overlapping set members are normalised: contained CIDRs dropped, adjacent kept", () => {
  const state = stateOf([
    ipset("s:o", ["10.0.0.0/8", "10.1.2.3/32", "11.0.0.0/8", "192.0.2.0/25", "192.0.2.128/25"]),
  ]);
  const r = renderRuleset(state, CONFIG);
  assert.deepEqual(r.sets.get(nftNames.ipSet("s:o", 4, "net"))?.elements, [
    "10.0.0.0/8",
    "11.0.0.0/8",
    "192.0.2.0/25",
    "192.0.2.128/25",
  ]);
});

/**
 * A policy of many rules, mixing every criterion the compiler emits, drawn
 * with a fixed seed: for nft to judge combinations no golden spells out.
 */
function ruleZoo(count: number): DataplaneMessage[] {
  let seed = 12345;
  const pick = <T>(options: readonly T[]): T => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return options[(seed >>> 8) % options.length]!;
  };
  const netsOf = {
    4: ["10.1.0.0/16", "10.3.0.1/32"],
    6: ["fd00:1::/64"],
    any: ["10.2.0.0/16", "fd00:2::/64"],
  };
  const notNetsOf = { 4: ["10.9.0.0/24"], 6: ["fd00:9::/64"], any: ["fd00:8::/64", "10.8.0.0/16"] };
  const side = (family: 4 | 6 | "any", withPorts: boolean): CompiledRule["src"] => {
    const m: CompiledRule["src"] = {};
    if (pick([false, true])) m.nets = netsOf[family];
    if (pick([false, false, true])) m.notNets = notNetsOf[family];
    if (pick([false, true])) m.ipSets = ["s:zoo"];
    if (pick([false, false, true])) m.notIpSets = ["s:zoo2"];
    if (!withPorts) return m;
    const ports = pick([
      undefined,
      [{ first: 80, last: 80 }],
      [
        { first: 80, last: 90 },
        { first: 443, last: 443 },
      ],
    ]);
    if (ports) m.ports = ports;
    if (pick([false, false, true])) m.namedPortIpSets = ["p:zoo"];
    if (pick([false, false, true])) m.notPorts = [{ first: 22, last: 22 }];
    if (pick([false, false, false, true])) m.notNamedPortIpSets = ["p:zoo"];
    return m;
  };
  const rules: CompiledRule[] = [];
  for (let i = 0; i < count; i++) {
    const family = pick([4, 6, "any", "any"] as const);
    const withPorts = pick([false, true]);
    const r: CompiledRule = {
      action: pick(["Allow", "Deny", "Log", "Pass"] as const),
      src: side(family, withPorts && pick([false, true])),
      dst: side(family, withPorts),
      ruleId: `default/zoo/ingress/${i}`,
    };
    if (family !== "any" && pick([false, true])) r.ipVersion = family;
    const protocol = withPorts
      ? pick([6, 6, 17, 132, 136]) // the calc never emits ports without a protocol
      : pick([undefined, undefined, 6, 17, 1, 58]);
    if (protocol !== undefined) r.protocol = protocol;
    if (pick([false, false, true])) r.notProtocol = pick([17, 6, 1]);
    if (!withPorts && (protocol === undefined || protocol === 1 || protocol === 58)) {
      const icmp = pick([undefined, { type: 8 }, { type: 128, code: 0 }, { type: 3, code: 13 }]);
      if (icmp) r.icmp = icmp;
      if (pick([false, false, true])) r.notICMP = pick([{ type: 0 }, { type: 3, code: 4 }]);
    }
    rules.push(r);
  }
  return [
    ipset("s:zoo", ["10.1.2.3/32", "fd00:1::3/128", "10.1.0.0/24"]),
    ipset("s:zoo2", []),
    ipset("p:zoo", ["10.1.2.3/32,tcp:8080", "fd00:1::3/128,udp:53"], {
      namedPort: { name: "zoo", protocol: "tcp" },
    }),
    up.policy(policy("default/zoo", rules, [])),
    up.endpoint(
      workload("zoo", "twzoo", {
        ipv4Nets: ["10.65.0.99/32"],
        tiers: [tier("default", ["default/zoo"], [])],
      }),
    ),
  ];
}

// ---------------------------------------------------------------------------
// The real nft, in a network namespace of our own (never the machine's).

const NFT = "/usr/sbin/nft";
const IP = "/usr/sbin/ip";
const privileged =
  process.getuid?.() === 0 && existsSync(NFT) && (existsSync(IP) || existsSync("/usr/bin/ip"));
const ipBin = existsSync(IP) ? IP : "/usr/bin/ip";

interface Listed {
  chains: Map<string, string[]>;
  base: Map<string, string>;
  sets: Map<string, string[]>;
  maps: Map<string, string[]>;
}

/** Parses `nft list table inet twill` into what can be compared with a rendering. */
function parseListing(text: string): Listed {
  const out: Listed = { chains: new Map(), base: new Map(), sets: new Map(), maps: new Map() };
  const lines = text.split("\n").map((l) => l.trim());
  let kind: "chain" | "set" | "map" | undefined;
  let name = "";
  let collecting: string | undefined;
  for (const line of lines) {
    const open = /^(chain|set|map) (\S+) \{$/.exec(line);
    if (open) {
      kind = open[1] as "chain" | "set" | "map";
      name = open[2]!;
      if (kind === "chain") out.chains.set(name, []);
      else (kind === "set" ? out.sets : out.maps).set(name, []);
      continue;
    }
    if (!kind) continue;
    if (collecting !== undefined) {
      collecting += ` ${line}`;
      if (line.endsWith("}")) {
        const inner = collecting.replace(/^elements = \{/, "").replace(/\}$/, "");
        const els = inner
          .split(",")
          .map((e) => e.trim())
          .filter((e) => e !== "");
        (kind === "set" ? out.sets : out.maps).get(name)!.push(...els);
        collecting = undefined;
      }
      continue;
    }
    if (line === "}") {
      kind = undefined;
      continue;
    }
    if (kind === "chain") {
      if (line.startsWith("comment ")) continue;
      if (line.startsWith("type ")) out.base.set(name, line);
      else if (line !== "") out.chains.get(name)!.push(line);
    } else if (line.startsWith("elements = {")) {
      collecting = line;
      if (line.endsWith("}")) {
        const inner = line.replace(/^elements = \{/, "").replace(/\}$/, "");
        const els = inner
          .split(",")
          .map((e) => e.trim())
          .filter((e) => e !== "");
        (kind === "set" ? out.sets : out.maps).get(name)!.push(...els);
        collecting = undefined;
      }
    }
  }
  return out;
}

function assertKernelHolds(listing: string, r: RenderedRuleset, what: string): void {
  const got = parseListing(listing);
  assert.deepEqual([...got.chains.keys()].sort(), [...r.chains.keys()].sort(), `${what}: chains`);
  for (const [name, rules] of r.chains) {
    assert.deepEqual(got.chains.get(name), rules, `${what}: rules of chain ${name}`);
  }
  for (const [name, b] of r.base) {
    assert.equal(
      got.base.get(name),
      `type ${b.type} hook ${b.hook} priority ${b.priority}; policy ${b.policy};`,
      `${what}: hook of ${name}`,
    );
  }
  assert.deepEqual([...got.sets.keys()].sort(), [...r.sets.keys()].sort(), `${what}: sets`);
  for (const [name, s] of r.sets) {
    assert.deepEqual(
      got.sets.get(name)!.sort(),
      [...s.elements].sort(),
      `${what}: elements of ${name}`,
    );
  }
  assert.deepEqual([...got.maps.keys()].sort(), [...r.maps.keys()].sort(), `${what}: maps`);
  for (const [name, m] of r.maps) {
    const want = [...m.elements].map(([k, v]) => `"${k}" : ${v}`).sort();
    assert.deepEqual(got.maps.get(name)!.sort(), want, `${what}: elements of map ${name}`);
  }
}

test(
  "nft 1.0.6 in a fresh network namespace accepts every golden and every delta, and holds exactly the rendering",
  { skip: privileged ? false : "needs root, nft and ip" },
  () => {
    const ns = `twt-${randomBytes(4).toString("hex")}`;
    const dir = mkdtempSync(join(tmpdir(), "twill-nft-"));
    const inNs = (...args: string[]) =>
      execFileSync(ipBin, ["netns", "exec", ns, ...args], { encoding: "utf8", stdio: "pipe" });
    const loadFile = (file: string, label: string) => {
      try {
        inNs(NFT, "-c", "-f", file);
        inNs(NFT, "-f", file);
      } catch (err) {
        const stderr = (err as { stderr?: string }).stderr ?? "";
        assert.fail(`nft refused ${label}:\n${stderr}`);
      }
    };
    const load = (text: string, label: string) => {
      const file = join(dir, `${label}.nft`);
      writeFileSync(file, text);
      loadFile(file, label);
    };
    const listing = () => inNs(NFT, "list", "table", "inet", "twill");
    execFileSync(ipBin, ["netns", "add", ns]);
    try {
      // The golden files themselves (the golden tests hold them equal to the rendering).
      const names = Object.keys(scenarios);
      for (const name of names) {
        loadFile(join(GOLDEN, `${name}.nft`), `${name}.nft`);
        assertKernelHolds(listing(), render(name), name);
      }
      // Deltas: walk through every scenario from the last one loaded, and back to the first.
      let current = render(names[names.length - 1]!);
      for (const name of [...names, names[0]!]) {
        const next = render(name);
        for (const additions of ["commands", "table-block"] as const) {
          // Both forms from the same start: load the start again between them.
          if (additions === "table-block") load(renderFullTransaction(current), `reset-${name}`);
          const delta = renderDelta(current, next, { additions });
          if (delta !== "") load(delta, `delta-to-${name}-${additions}`);
          assertKernelHolds(listing(), next, `after delta (${additions}) to ${name}`);
        }
        current = next;
      }
      // Every combination of criteria in the rule zoo, canonical as nft prints it.
      const zoo = renderRuleset(stateOf(ruleZoo(400)), CONFIG);
      const zooRules = zoo.chains.get(nftNames.policyChain("default/zoo", "in")) ?? [];
      const distinct = new Set(zooRules.map((r) => /comment "([^"]*)"$/.exec(r)?.[1]));
      assert.ok(distinct.size > 150, `only ${distinct.size} of the zoo's rules can match`);
      load(renderFullTransaction(zoo), "rule-zoo");
      assertKernelHolds(listing(), zoo, "rule zoo");
      // The delta goldens, each on top of the golden they start from.
      const s = scenarios["two-workloads-tiered"]!;
      const later = renderRuleset(stateOf(twoWorkloadsLater()), { ...CONFIG, ...s.config });
      for (const file of ["delta-two-workloads.nft", "delta-two-workloads-block.nft"]) {
        loadFile(join(GOLDEN, "two-workloads-tiered.nft"), "two-workloads-tiered.nft");
        loadFile(join(GOLDEN, file), file);
        assertKernelHolds(listing(), later, file);
      }
    } finally {
      try {
        execFileSync(ipBin, ["netns", "del", ns]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  },
);

/** Runs `node -e script` inside a namespace and returns its stdout. */
function nodeInNs(ns: string, script: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      ipBin,
      ["netns", "exec", ns, process.execPath, "-e", script],
      { encoding: "utf8", timeout: 20_000 },
      (err, stdout) => (err ? reject(err) : resolve(stdout)),
    );
  });
}

/** TCP connects from one namespace, in parallel: "ok" or why not, per target. */
async function probe(ns: string, targets: readonly string[]): Promise<string[]> {
  const script = `
    const net = require("net");
    const one = (t) => new Promise((done) => {
      const [host, port] = t.split(":");
      const s = net.connect({ host, port: Number(port) });
      s.setTimeout(1000, () => { s.destroy(); done("timeout"); });
      s.on("data", () => { s.destroy(); done("ok"); });
      s.on("error", (e) => done(e.code));
    });
    Promise.all(${JSON.stringify(targets)}.map(one)).then((r) => console.log(JSON.stringify(r)));`;
  return JSON.parse(await nodeInNs(ns, script)) as string[];
}

test(
  "real packets: same-host traffic needs the source's egress and the destination's ingress; unknown interfaces and the host are closed",
  { skip: privileged ? false : "needs root, nft and ip" },
  async () => {
    const id = randomBytes(3).toString("hex");
    const [h, a, b, c] = ["h", "a", "b", "c"].map((n) => `twt-${id}-${n}`) as [
      string,
      string,
      string,
      string,
    ];
    const ip = (...args: string[]) => execFileSync(ipBin, args, { stdio: "pipe" });
    const inH = (...args: string[]) => ip("netns", "exec", h, ...args);
    const servers: ChildProcess[] = [];
    const config: RenderConfig = { ...CONFIG, allPools: ["10.65.0.0/16"] };
    const messages = (egress: CompiledRule["action"]): DataplaneMessage[] => [
      ipset("s:clients", ["10.65.0.5/32"]),
      up.policy(
        policy(
          "default/web",
          [
            rule("web/0", "Allow", {
              protocol: 6,
              src: { ipSets: ["s:clients"] },
              dst: { ports: [{ first: 8080, last: 8080 }] },
            }),
          ],
          [],
        ),
      ),
      up.policy(
        policy(
          "default/client",
          [],
          [
            rule("client/0", egress, {
              protocol: 6,
              dst: { ports: [{ first: 8080, last: 8080 }] },
            }),
          ],
        ),
      ),
      up.profile(allowAll),
      up.endpoint(
        workload("client", "twA", {
          ipv4Nets: ["10.65.0.5/32"],
          tiers: [tier("default", [], ["default/client"])],
        }),
      ),
      up.endpoint(
        workload("web", "twB", {
          ipv4Nets: ["10.65.0.6/32"],
          tiers: [tier("default", ["default/web"], [])],
        }),
      ),
    ];
    const dir = mkdtempSync(join(tmpdir(), "twill-nft-"));
    const nft = (text: string) => {
      const file = join(dir, "t.nft");
      writeFileSync(file, text);
      inH(NFT, "-f", file);
    };
    try {
      for (const ns of [h, a, b, c]) {
        ip("netns", "add", ns);
        ip("-n", ns, "link", "set", "lo", "up");
      }
      inH("sysctl", "-qw", "net.ipv4.ip_forward=1");
      // An uplink, so the host has a route covering 169.254.1.1 and answers proxy ARP.
      ip("-n", h, "link", "add", "up0", "type", "veth", "peer", "name", "up1");
      ip("-n", h, "link", "set", "up0", "up");
      ip("-n", h, "link", "set", "up1", "up");
      ip("-n", h, "addr", "add", "192.0.2.1/24", "dev", "up0");
      ip("-n", h, "route", "add", "default", "via", "192.0.2.2", "dev", "up0");
      const wire = (ns: string, iface: string, addr: string) => {
        ip("-n", h, "link", "add", iface, "type", "veth", "peer", "name", "eth0", "netns", ns);
        ip("-n", h, "link", "set", iface, "up");
        inH("sysctl", "-qw", `net.ipv4.conf.${iface}.proxy_arp=1`);
        inH("sysctl", "-qw", `net.ipv4.neigh.${iface}.proxy_delay=0`);
        ip("-n", h, "route", "add", `${addr}/32`, "dev", iface, "scope", "link");
        ip("-n", ns, "link", "set", "eth0", "up");
        ip("-n", ns, "addr", "add", `${addr}/32`, "dev", "eth0");
        ip("-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link");
        ip("-n", ns, "route", "add", "default", "via", "169.254.1.1");
      };
      wire(a, "twA", "10.65.0.5");
      wire(b, "twB", "10.65.0.6");
      wire(c, "twC", "10.65.0.7"); // a twill-prefixed interface the dataplane does not know
      const listen = `
        const net = require("net");
        let n = 0;
        for (const p of [8080, 8081]) {
          net.createServer((s) => s.end("ok")).listen(p, () => { if (++n === 2) console.log("up"); });
        }`;
      const ready: Promise<void>[] = [];
      for (const ns of [h, a, b, c]) {
        const server = spawn(ipBin, ["netns", "exec", ns, process.execPath, "-e", listen]);
        servers.push(server);
        ready.push(
          new Promise((resolve, reject) => {
            server.stdout?.on("data", () => resolve());
            server.on("exit", (code) => reject(new Error(`server in ${ns} exited ${code}`)));
          }),
        );
      }
      const allowed = renderRuleset(stateOf(messages("Allow")), config);
      nft(renderFullTransaction(allowed));
      await Promise.all(ready);
      const [fromA, fromB, fromC] = await Promise.all([
        probe(a, ["10.65.0.6:8080", "10.65.0.6:8081", "10.65.0.7:8080", "192.0.2.1:8080"]),
        probe(b, ["10.65.0.5:8080"]),
        probe(c, ["10.65.0.6:8080"]),
      ]);
      assert.deepEqual(fromA, ["ok", "timeout", "timeout", "timeout"], "from the client");
      assert.deepEqual(fromB, ["ok"], "from web: both ends' profiles allow");
      assert.deepEqual(fromC, ["timeout"], "from an unknown twill interface");
      // The client's egress now denies: web's ingress still allows, the flow must not pass.
      nft(renderDelta(allowed, renderRuleset(stateOf(messages("Deny")), config)));
      assert.deepEqual(await probe(a, ["10.65.0.6:8080"]), ["timeout"], "egress denied");
    } finally {
      for (const s of servers) s.kill();
      for (const ns of [h, a, b, c]) {
        try {
          ip("netns", "del", ns);
        } catch {
          // not created
        }
      }
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

// ---------------------------------------------------------------------------
// Protocol numbers: nft prints names from /etc/protocols, the renderer writes
// numbers (bar nft's keywords); the listing reader maps them back, so a
// read-back equals the rendering and the driver sees no drift.

/** Rules on every protocol number, alone, negated, and with a named-port set. */
function everyProtocol(): DataplaneMessage[] {
  const rules: CompiledRule[] = [];
  for (let n = 0; n < 256; n++) {
    rules.push(rule(`default/protos/ingress/${n}`, "Allow", { protocol: n }));
    if (n !== 6) {
      rules.push(rule(`default/protos/ingress/not-${n}`, "Deny", { protocol: 6, notProtocol: n }));
    }
  }
  return [
    ipset("p:protos", ["10.65.0.1/32,tcp:80", "10.65.0.2/32,udp:53", "10.65.0.3/32,sctp:9"], {
      namedPort: { name: "any", protocol: "tcp" },
    }),
    up.policy(
      policy(
        "default/protos",
        [
          ...rules,
          rule("default/protos/ingress/np", "Allow", {
            protocol: 6,
            dst: { namedPortIpSets: ["p:protos"] },
          }),
        ],
        [],
      ),
    ),
    up.endpoint(
      workload("w", "tw1", {
        ipv4Nets: ["10.65.0.1/32"],
        tiers: [tier("default", ["default/protos"], [])],
      }),
    ),
  ];
}

test("the listing reader maps protocol names nft prints back to the renderer's text", () => {
  const cases: [string, string][] = [
    ["meta l4proto gre accept", "meta l4proto 47 accept"],
    ["meta l4proto != esp drop", "meta l4proto != 50 drop"],
    ["meta l4proto sctp accept", "meta l4proto sctp accept"],
    ["meta l4proto ip accept", "meta l4proto 0 accept"],
    ["meta l4proto 250 accept", "meta l4proto 250 accept"],
    ["meta l4proto 6 accept", "meta l4proto tcp accept"], // a machine without /etc/protocols
    [
      "meta l4proto { tcp, udp, sctp, udplite } accept",
      "meta l4proto { tcp, udp, sctp, udplite } accept",
    ],
    [
      'meta l4proto ax.25 accept comment "meta l4proto gre"',
      'meta l4proto 93 accept comment "meta l4proto gre"',
    ],
    [
      "ip saddr . meta l4proto . tcp dport @p4-x accept",
      "ip saddr . meta l4proto . tcp dport @p4-x accept",
    ],
    ["meta l4proto no-such-name accept", "meta l4proto no-such-name accept"],
  ];
  for (const [listed, want] of cases) assert.equal(normaliseProtocols(listed), want, listed);
  const r = renderRuleset(stateOf(everyProtocol()), CONFIG);
  for (const rules of r.chains.values()) {
    for (const x of rules) assert.equal(normaliseProtocols(x), x, "renderings are fixed points");
  }
});

test(
  "nft 1.0.6 lists every protocol number by its own name; read back, it equals the rendering",
  { skip: privileged ? false : "needs root, nft and ip" },
  () => {
    const ns = `twt-${randomBytes(4).toString("hex")}`;
    const dir = mkdtempSync(join(tmpdir(), "twill-nft-"));
    execFileSync(ipBin, ["netns", "add", ns]);
    try {
      const r = renderRuleset(stateOf(everyProtocol()), CONFIG);
      const file = join(dir, "protos.nft");
      writeFileSync(file, renderFullTransaction(r));
      const inNs = (...args: string[]) =>
        execFileSync(ipBin, ["netns", "exec", ns, ...args], { encoding: "utf8", stdio: "pipe" });
      inNs(NFT, "-f", file);
      const listing = inNs(NFT, "list", "table", "inet", "twill");
      assert.match(
        listing,
        /meta l4proto gre /,
        "nft prints names (else this test proves nothing)",
      );
      const parsed = parseNftListing(listing);
      assert.deepEqual(parsed.extra, []);
      assert.deepEqual(diffRulesets(parsed.ruleset, r), []);
      assert.equal(renderDelta(parsed.ruleset, r), "", "nothing to rewrite");
    } finally {
      try {
        execFileSync(ipBin, ["netns", "del", ns]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  },
);
