// The nftables driver through one contract suite, run against the fake
// kernel and against real nftables in a network namespace of our own; plus
// the read-back parser on what the renderer writes for random clusters.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { CalcGraph } from "../calc/calc-graph.js";
import { Random, randomCluster, randomEdit } from "../calc/testing/random-cluster.js";
import { transition } from "../calc/testing/resources.js";
import type { Resource } from "../api/resource.js";
import {
  applyMessage,
  emptyChangedIds,
  emptyDesiredDataplane,
  noteChangedIds,
} from "./desired-state.js";
import { NetnsPool, inNetns, netnsUnavailable } from "./netns-testkit.js";
import type { Netns } from "./netns-testkit.js";
import { NftDriver, fakeNftKernel, nftCommandKernel, snapshotRuleset } from "./nft-driver.js";
import type { NftKernel } from "./nft-driver.js";
import { diffRulesets, parseNftListing } from "./nft-listing.js";
import {
  RulesetRenderer,
  renderDelta,
  renderFullTransaction,
  renderRuleset,
} from "./render-nft.js";
import type { RenderConfig, RenderedRuleset, RulesetChanges } from "./render-nft.js";

const CONFIG: RenderConfig = {
  interfacePrefix: "tw",
  defaultEndpointToHostAction: "Drop",
  failsafeInbound: [
    { protocol: "TCP", port: 22 },
    { protocol: "TCP", port: 2379, net: "10.0.0.0/8" },
  ],
  failsafeOutbound: [{ protocol: "UDP", port: 53 }],
  natOutgoingPools: ["10.65.0.0/16"],
  allPools: ["10.65.0.0/16", "fd00::/64"],
  logPrefix: "twill-packet",
};

function rulesetOf(resources: readonly Resource[]): RenderedRuleset {
  const g = new CalcGraph({ hostname: "node-1" });
  g.onUpdates(resources.map((resource) => ({ type: "put", resource })));
  g.onUpdates([{ type: "status", status: "in-sync" }]);
  return renderRuleset(g.flush().reduce(applyMessage, emptyDesiredDataplane()), CONFIG);
}

/** A cluster and the same cluster after a few edits: two rulesets a delta apart. */
function twoRulesets(seed: number): [RenderedRuleset, RenderedRuleset] {
  const r = new Random(seed);
  let state: Resource[] = randomCluster(r);
  const first = rulesetOf(state);
  // Edit until this host's ruleset changes (many edits touch other hosts only).
  for (let step = 0; step < 50; step++) {
    state = randomEdit(r, state, step);
    const next = rulesetOf(state);
    if (step >= 3 && diffRulesets(first, next).length > 0) return [first, next];
  }
  throw new Error(`seed ${seed}: no edit changed the ruleset`);
}

/**
 * A cluster edited step by step, as the agent renders it: one live ruleset
 * kept by a RulesetRenderer, told the ids each flush touched. Each step
 * yields the live ruleset, its changes, and a fresh rendering to compare.
 */
function* liveSteps(
  seed: number,
  steps: number,
): Generator<{
  live: RenderedRuleset;
  changes: RulesetChanges | undefined;
  fresh: RenderedRuleset;
}> {
  const r = new Random(seed);
  let resources: readonly Resource[] = randomCluster(r);
  const g = new CalcGraph({ hostname: "node-1" });
  g.onUpdates([...transition([], resources), { type: "status", status: "in-sync" }]);
  const state = emptyDesiredDataplane();
  const renderer = new RulesetRenderer();
  for (let step = 0; step < steps; step++) {
    const msgs = g.flush();
    for (const m of msgs) applyMessage(state, m);
    const changed = msgs.reduce(noteChangedIds, emptyChangedIds());
    const live = renderer.render(state, CONFIG, step === 0 ? {} : { changed });
    yield { live, changes: renderer.takeChanges(), fresh: renderRuleset(state, CONFIG) };
    const next = randomEdit(r, resources, step);
    g.onUpdates(transition(resources, next));
    resources = next;
  }
}

/** A kernel that records transactions and can be told to fail the next one. */
function recording(kernel: NftKernel) {
  const scripts: string[] = [];
  let failRuns = 0;
  let passFirst = 0;
  const k: NftKernel & { scripts: string[]; failNextRun(after?: number): void } = {
    scripts,
    /** The next run fails, or the one after `after` successful ones. */
    failNextRun: (after = 0) => {
      failRuns++;
      passFirst = after;
    },
    async run(script, signal) {
      if (failRuns > 0 && passFirst > 0) passFirst--;
      else if (failRuns > 0) {
        failRuns--;
        throw new Error("injected: nft refused the transaction");
      }
      await kernel.run(script, signal);
      scripts.push(script);
    },
    list: (signal) => kernel.list(signal),
  };
  return k;
}

interface Harness {
  kernel: ReturnType<typeof recording>;
  /** Someone else changes our table: the forward chain loses its rules. */
  tamper(): Promise<void>;
  /** What the kernel holds, parsed. */
  holds(): Promise<RenderedRuleset | undefined>;
  /** Someone deletes our table. */
  removeTable(): Promise<void>;
}

function contract(name: string, make: () => Promise<Harness>, skip?: string) {
  describe(`nft driver contract: ${name}`, { skip }, () => {
    let h: Harness;
    const [r1, r2] = twoRulesets(7);
    before(async () => {
      h = await make();
    });
    const assertHolds = async (want: RenderedRuleset) => {
      const got = await h.holds();
      assert.ok(got, "the table exists");
      assert.deepEqual(diffRulesets(got, want), []);
    };

    it("creates the table on first apply: sets and leaf chains, then every hook at once", async () => {
      const d = new NftDriver(h.kernel);
      d.setDesired(r1);
      const res = await d.apply();
      assert.equal(res.wrote, "full");
      assert.deepEqual(res.drift, ["table missing"]);
      assert.equal(h.kernel.scripts.length, 2);
      const [first = "", second = ""] = h.kernel.scripts;
      assert.match(first, /^table inet twill\ndelete table inet twill\ntable inet twill \{/);
      // Nothing in the first transaction is reachable from a hook.
      assert.doesNotMatch(first, /hook|jump|goto|vmap/);
      assert.match(first, /\tset s4-/);
      // The second adds to it: every base chain, the dispatch maps, the endpoint chains.
      assert.doesNotMatch(second, /delete table/);
      for (const base of r1.base.keys()) assert.match(second, new RegExp(`chain ${base} \\{`));
      assert.match(second, /map from-wl/);
      assert.equal(d.dirty, false);
      await assertHolds(r1);
    });

    it("a new driver over a table that already matches writes nothing", async () => {
      const d = new NftDriver(h.kernel);
      d.setDesired(r1);
      const written = h.kernel.scripts.length;
      const res = await d.apply();
      assert.deepEqual(res, { wrote: "nothing", bytes: 0, drift: [] });
      assert.equal(h.kernel.scripts.length, written);
    });

    it("writes later changes as a delta, never replacing the table", async () => {
      const d = new NftDriver(h.kernel);
      d.setDesired(r1);
      await d.apply();
      d.setDesired(r2);
      const res = await d.apply();
      assert.equal(res.wrote, "delta");
      const script = h.kernel.scripts.at(-1) ?? "";
      assert.doesNotMatch(script, /delete table/);
      await assertHolds(r2);
      // Nothing changed: nothing written.
      d.setDesired(r2);
      assert.equal((await d.apply()).wrote, "nothing");
    });

    it("a restarted driver reaches a changed ruleset by a delta from what the kernel holds", async () => {
      const d = new NftDriver(h.kernel);
      d.setDesired(r1);
      const res = await d.apply();
      assert.equal(res.wrote, "delta");
      assert.ok(res.drift.length > 0);
      assert.doesNotMatch(h.kernel.scripts.at(-1) ?? "", /delete table/);
      await assertHolds(r1);
    });

    it("repairs a table someone changed, at the next read-back", async () => {
      const d = new NftDriver(h.kernel);
      d.setDesired(r1);
      await d.apply();
      await h.tamper();
      // Without a read-back the driver trusts what it wrote.
      assert.equal((await d.apply()).wrote, "nothing");
      d.requestResync();
      const res = await d.apply();
      assert.equal(res.wrote, "delta");
      assert.ok(
        res.drift.some((x) => x.startsWith("chain forward")),
        res.drift.join("; "),
      );
      await assertHolds(r1);
    });

    it("a refused transaction leaves the driver dirty; the next apply reads back and succeeds", async () => {
      const d = new NftDriver(h.kernel);
      d.setDesired(r1);
      await d.apply();
      d.setDesired(r2);
      h.kernel.failNextRun();
      await assert.rejects(d.apply(), /injected/);
      assert.equal(d.dirty, true);
      await assertHolds(r1);
      const res = await d.apply();
      assert.equal(res.wrote, "delta");
      await assertHolds(r2);
    });

    it("follows a live ruleset by deltas over just what its renderer says changed", async () => {
      // Seeds whose edits add, change and remove this host's endpoints.
      for (const seed of [5, 9, 12]) {
        await h.removeTable();
        const d = new NftDriver(h.kernel);
        let before: RenderedRuleset | undefined;
        let failed: number | undefined;
        let i = -1;
        // One step at a time: the live ruleset changes in place at the next.
        for (const { live, changes, fresh } of liveSteps(seed, 15)) {
          const where = `seed ${seed} step ${++i}`;
          const now = snapshotRuleset(live);
          // What a whole comparison would write, from what the kernel holds.
          const whole = before && renderDelta(before, fresh, { additions: "table-block" });
          d.setDesired(live, changes);
          const written = h.kernel.scripts.length;
          if (failed === undefined && i >= 4 && whole) {
            // A refused step: the next one reads back and repairs both.
            failed = i;
            h.kernel.failNextRun();
            await assert.rejects(d.apply(), /injected/);
            assert.equal(d.dirty, true);
            continue;
          }
          const res = await d.apply();
          assert.equal(d.dirty, false, where);
          if (whole !== undefined && failed !== i - 1) {
            assert.equal(res.wrote, whole === "" ? "nothing" : "delta", where);
            assert.equal(h.kernel.scripts.slice(written).join(""), whole, where);
          }
          assert.deepEqual(diffRulesets(now, fresh), [], `${where}: live is fresh`);
          assert.deepEqual(diffRulesets(d.current!, fresh), [], `${where}: what the driver knows`);
          await assertHolds(fresh);
          before = now;
        }
        assert.ok(failed !== undefined && failed < i, `seed ${seed}: a refused step came and went`);
      }
    });

    it("a creation that failed at its second transaction is finished by a delta", async () => {
      await h.removeTable();
      const d = new NftDriver(h.kernel);
      d.setDesired(r2);
      h.kernel.failNextRun(1);
      await assert.rejects(d.apply(), /injected/);
      assert.equal(d.dirty, true);
      // The sets and leaf chains are there, no hook yet.
      const partial = await h.holds();
      assert.ok(partial);
      assert.equal(partial.base.size, 0);
      assert.equal(partial.sets.size, r2.sets.size);
      const res = await d.apply();
      assert.equal(res.wrote, "delta");
      assert.doesNotMatch(h.kernel.scripts.at(-1) ?? "", /delete table/);
      await assertHolds(r2);
    });
  });
}

contract("fake kernel", async () => {
  const fake = fakeNftKernel();
  return {
    kernel: recording(fake),
    tamper: async () => {
      fake.table?.chains.set("forward", []);
    },
    holds: async () => fake.table,
    removeTable: async () => {
      fake.table = undefined;
    },
  };
});

const why = netnsUnavailable();
const pool = new NetnsPool();
after(() => pool.cleanup());

function realHarness(ns: Netns): Harness {
  const kernel = recording(nftCommandKernel(inNetns(ns.name)));
  return {
    kernel,
    tamper: async () => {
      await ns.sh("nft", "flush", "chain", "inet", "twill", "forward");
    },
    holds: async () => {
      const text = await kernel.list();
      return text === undefined ? undefined : parseNftListing(text).ruleset;
    },
    removeTable: async () => {
      await ns.sh("nft", "delete", "table", "inet", "twill");
    },
  };
}

contract("nftables in a network namespace", async () => realHarness(await pool.create("nft")), why);

describe("nft driver against the kernel: what only the kernel shows", { skip: why }, () => {
  let ns: Netns;
  before(async () => {
    ns = await pool.create("nft2");
  });

  it("reads back exactly what the renderer wrote, for many random clusters", async () => {
    const kernel = nftCommandKernel(inNetns(ns.name));
    for (let seed = 1; seed <= 12; seed++) {
      const r = rulesetOf(randomCluster(new Random(seed)));
      await kernel.run(renderFullTransaction(r));
      const text = await kernel.list();
      assert.ok(text !== undefined);
      const parsed = parseNftListing(text);
      assert.deepEqual(parsed.extra, [], `seed ${seed}`);
      assert.deepEqual(diffRulesets(parsed.ruleset, r), [], `seed ${seed}`);
    }
  });

  it("replaces the whole table when it holds things the renderer never writes", async () => {
    const [r1] = twoRulesets(3);
    const kernel = recording(nftCommandKernel(inNetns(ns.name)));
    const d = new NftDriver(kernel);
    d.setDesired(r1);
    await d.apply();
    await ns.sh("nft", "add", "set", "inet", "twill", "intruder", "{ type ipv4_addr; size 16; }");
    d.requestResync();
    const res = await d.apply();
    assert.equal(res.wrote, "full");
    assert.ok(
      res.drift.some((x) => x.includes("intruder")),
      res.drift.join("; "),
    );
    const text = await kernel.list();
    assert.doesNotMatch(text ?? "", /intruder/);
  });

  it("leaves other tables alone", async () => {
    await ns.sh("nft", "add", "table", "inet", "someone-else");
    const [r1, r2] = twoRulesets(5);
    const d = new NftDriver(nftCommandKernel(inNetns(ns.name)));
    d.setDesired(r1);
    await d.apply();
    d.setDesired(r2);
    await d.apply();
    assert.match(await ns.sh("nft", "list", "tables"), /table inet someone-else/);
  });
});

describe("fake nft kernel honesty", () => {
  it("refuses deleting a chain that is still referenced, changing nothing", async () => {
    const fake = fakeNftKernel();
    const [r1] = twoRulesets(7);
    await fake.run(renderFullTransaction(r1));
    const before = renderFullTransaction(fake.table!);
    await assert.rejects(
      fake.run("flush chain inet twill from-wl-dispatch\ndelete chain inet twill input\n"),
      /busy|No such/,
    );
    assert.equal(renderFullTransaction(fake.table!), before);
  });

  it("refuses a rule that names a set that does not exist", async () => {
    const fake = fakeNftKernel();
    await fake.run("table inet twill\nadd chain inet twill c\n");
    await assert.rejects(
      fake.run("add rule inet twill c ip saddr @nope drop\n"),
      /no set or map "nope"/,
    );
    await assert.rejects(fake.run("frobnicate\n"), /does not understand/);
  });
});
