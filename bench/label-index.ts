// Label index throughput at cluster scale: 250,000 workload endpoints in
// 2,000 namespaces and 10,000 selectors shaped like real policy and rule
// selectors, kept matched by src/calc/label-index.ts.
//
// Endpoints carry the labels Calico gives a pod's WorkloadEndpoint: the
// automatic projectcalico.org/namespace and /orchestrator, the namespace's
// labels inherited as pcns.*, and app, role, tier, version, a unique
// pod-template-hash. Selectors (per 10,000):
//   5,500  projectcalico.org/namespace == "ns-N" && app == "A"       ~10 matches
//   3,000  pcns.projectcalico.org/name == "ns-N" && role in {R1, R2}  ~50
//   1,400  projectcalico.org/namespace == "ns-N"                     ~125
//      80  pcns.team == "team-K" && tier == "frontend"               ~1,250
//      16  has(projectcalico.org/namespace) && tier == "T"           ~62,500
//       4  unindexed: all(), !has(quarantine), != and not in         ~250,000
//
// Figures (medians of several runs):
//   build_s               load every endpoint, then every selector, into an empty index.
//                         (rss_mb: the process after it, inputs included.)
//   item_updates_per_s    one endpoint's app, role, tier or version label changed.
//   selector_adds_per_s   a second 10,000 selectors of the same mix (fresh ids)
//                         added to the full index, then removed (untimed); already
//                         parsed, so this times the index, not the parser.
// Baseline, measured in the same run: a naive index that evaluates every
// selector against an endpoint whenever the endpoint changes, and every
// endpoint whenever a selector changes. Building it at full scale would take
// 2.5 billion evaluations, so it runs at a tenth of the scale on each axis
// (SMALL below: 25,000 endpoints in 200 namespaces, 1,000 selectors in the
// same proportions: 550, 300, 140, 8, 2 and no unindexed one), next to our
// index at that same small scale:
//   baseline_*            the naive index at small scale.
//   small_*               our index at small scale.
//   ratio                 our item updates per second over the naive index's,
//   build_ratio, selector_adds_ratio   the same for the other figures (speedups,
//                         like for like at one scale; the full-scale speedup
//                         is larger). Ratios are taken in CPU time.
//   *_cpu_s, *_per_cpu_s  the same figures in process CPU time (user + system,
//                         all threads, so GC included) instead of wall-clock:
//                         steadier when other work shares the machine.
//   baseline_full_scale_est_*   the naive figures scaled linearly to full
//                         scale: its build costs endpoints x selectors
//                         (x100), an endpoint update costs one evaluation per
//                         selector (/10), a selector add one per endpoint (/10).
// The two indexes must agree on every match after build; the benchmark fails
// if they do not. Everything is generated from fixed seeds.

import type { BenchContext, BenchFigures } from "./run.js";
import type { LabelIndexCallbacks } from "../src/calc/label-index.js";
import { LabelIndex } from "../src/calc/label-index.js";
import type { Selector } from "../src/selector/index.js";
import { parseSelector } from "../src/selector/index.js";
import { Gen } from "../src/util/prng.js";

type Labels = Readonly<Record<string, string>>;

interface Scale {
  items: number;
  namespaces: number;
  selectors: number;
}

const FULL: Scale = { items: 250_000, namespaces: 2_000, selectors: 10_000 };
const SMALL: Scale = { items: 25_000, namespaces: 200, selectors: 1_000 };

const BUILD_RUNS = 3;
const RUNS = 5;
const ITEM_UPDATES_PER_RUN = 50_000;
const BASELINE_ITEM_UPDATES_PER_RUN = 5_000;

const APPS = ["web", "api", "db", "cache", "worker", "frontend", "auth", "search"];
const APPS_MORE = ["cart", "checkout", "payments", "shipping"];
const ROLES = ["web", "db", "cache", "worker", "api"];
const TIERS = ["frontend", "backend", "edge", "internal"];
const VERSIONS = ["v1", "v2", "v3", "v2-canary"];
const TEAMS = 50;

const ALL_APPS = [...APPS, ...APPS_MORE];

function makeItems(scale: Scale, seed: number): [string, Labels][] {
  const gen = new Gen(seed);
  const items: [string, Labels][] = [];
  for (let n = 0; n < scale.items; n++) {
    // Round-robin over namespaces: every namespace gets items/namespaces endpoints.
    const ns = n % scale.namespaces;
    const app = gen.pick(ALL_APPS);
    const labels: Record<string, string> = {
      "projectcalico.org/namespace": `ns-${ns}`,
      "projectcalico.org/orchestrator": "k8s",
      "projectcalico.org/serviceaccount": gen.rand() < 0.7 ? "default" : app,
      "pcns.projectcalico.org/name": `ns-${ns}`,
      "pcns.kubernetes.io/metadata.name": `ns-${ns}`,
      "pcns.team": `team-${ns % TEAMS}`,
      app,
      role: gen.pick(ROLES),
      tier: gen.pick(TIERS),
      version: gen.pick(VERSIONS),
      "pod-template-hash": gen.hex(10),
    };
    if (gen.rand() < 0.02) labels["quarantine"] = "true";
    items.push([`ns-${ns}/pod-${n}`, labels]);
  }
  return items;
}

/** Selector text from the mix described at the top, `count` of them. */
function makeSelectorTexts(scale: Scale, count: number, seed: number): string[] {
  const gen = new Gen(seed);
  const ns = () => `"ns-${gen.int(scale.namespaces)}"`;
  const texts: string[] = [];
  for (let n = 0; n < count; n++) {
    const r = (n + 0.5) / count; // the mix's proportions at any count
    if (r < 0.55) {
      texts.push(`(projectcalico.org/namespace == ${ns()} && app == "${gen.pick(ALL_APPS)}")`);
    } else if (r < 0.85) {
      const a = gen.pick(ROLES);
      const b = gen.pick(ROLES.filter((x) => x !== a));
      texts.push(`pcns.projectcalico.org/name == ${ns()} && role in {"${a}", "${b}"}`);
    } else if (r < 0.99) {
      texts.push(`projectcalico.org/namespace == ${ns()}`);
    } else if (r < 0.998) {
      texts.push(`pcns.team == "team-${gen.int(TEAMS)}" && tier == "frontend"`);
    } else if (r < 0.9996) {
      texts.push(`has(projectcalico.org/namespace) && tier == "${gen.pick(TIERS)}"`);
    } else {
      texts.push(
        gen.pick([
          "all()",
          "!has(quarantine)",
          `projectcalico.org/orchestrator != "openstack"`,
          `version not in {"v0", "v1-rc"}`,
        ]),
      );
    }
  }
  return texts;
}

const UPDATE_POOLS: Record<string, readonly string[]> = {
  app: ALL_APPS,
  role: ROLES,
  tier: TIERS,
  version: VERSIONS,
};
const UPDATE_KEYS = Object.keys(UPDATE_POOLS);

/**
 * `count` label changes, each one endpoint's app, role, tier or version set
 * to a different value; `current` (the endpoints' labels) is kept up to date.
 */
function makeUpdates(
  current: Map<string, Labels>,
  ids: readonly string[],
  count: number,
  gen: Gen,
): [string, Labels][] {
  const updates: [string, Labels][] = [];
  for (let n = 0; n < count; n++) {
    const id = ids[gen.int(ids.length)]!;
    const old = current.get(id)!;
    const key = gen.pick(UPDATE_KEYS);
    const pool = UPDATE_POOLS[key]!.filter((v) => v !== old[key]);
    const labels = { ...old, [key]: gen.pick(pool) };
    current.set(id, labels);
    updates.push([id, labels]);
  }
  return updates;
}

// ---- the naive baseline -------------------------------------------------------

/** Same contract as LabelIndex, done by evaluating everything against everything. */
class NaiveIndex {
  readonly #callbacks: LabelIndexCallbacks<string, string>;
  readonly #items = new Map<string, Labels>();
  readonly #selectors = new Map<string, Selector>();
  readonly #itemsOf = new Map<string, Set<string>>();
  readonly #selectorsOf = new Map<string, Set<string>>();

  constructor(callbacks: LabelIndexCallbacks<string, string>) {
    this.#callbacks = callbacks;
  }

  matchingItems(id: string): ReadonlySet<string> {
    return this.#itemsOf.get(id) ?? new Set();
  }

  updateSelector(id: string, selector: Selector): void {
    this.#selectors.set(id, selector);
    let matched = this.#itemsOf.get(id);
    if (matched === undefined) this.#itemsOf.set(id, (matched = new Set()));
    for (const [itemId, labels] of this.#items) {
      if (selector.matches(labels) !== matched.has(itemId)) this.#flip(id, itemId);
    }
  }

  deleteSelector(id: string): void {
    for (const itemId of [...(this.#itemsOf.get(id) ?? [])]) this.#flip(id, itemId);
    this.#selectors.delete(id);
    this.#itemsOf.delete(id);
  }

  updateItem(id: string, labels: Labels): void {
    const copy = { ...labels };
    this.#items.set(id, copy);
    let matched = this.#selectorsOf.get(id);
    if (matched === undefined) this.#selectorsOf.set(id, (matched = new Set()));
    for (const [selectorId, selector] of this.#selectors) {
      if (selector.matches(copy) !== matched.has(selectorId)) this.#flip(selectorId, id);
    }
  }

  /** Starts the match if absent, stops it if present. */
  #flip(selectorId: string, itemId: string): void {
    const items = this.#itemsOf.get(selectorId)!;
    const selectors = this.#selectorsOf.get(itemId)!;
    if (items.delete(itemId)) {
      selectors.delete(selectorId);
      this.#callbacks.onMatchStopped(selectorId, itemId);
    } else {
      items.add(itemId);
      selectors.add(selectorId);
      this.#callbacks.onMatchStarted(selectorId, itemId);
    }
  }
}

// ---- measurement --------------------------------------------------------------

interface IndexLike {
  updateSelector(id: string, selector: Selector): void;
  deleteSelector(id: string): void;
  updateItem(id: string, labels: Labels): void;
  matchingItems(id: string): ReadonlySet<string>;
}

interface Workload {
  scale: Scale;
  items: [string, Labels][];
  selectors: [string, Selector][];
  /** A second full mix of selectors, with fresh ids, added and removed in each run. */
  extraSelectors: [string, Selector][];
}

function makeWorkload(scale: Scale): Workload {
  const items = makeItems(scale, 0x1abe1);
  const texts = makeSelectorTexts(scale, scale.selectors, 0x5e1);
  const extra = makeSelectorTexts(scale, scale.selectors, 0xadd);
  // Parse each distinct text once, as the calc graph shares identical selectors.
  const cache = new Map<string, Selector>();
  const parse = (t: string) => cache.get(t) ?? cache.set(t, parseSelector(t)).get(t)!;
  return {
    scale,
    items,
    selectors: texts.map((t, n) => [`policy-${n}`, parse(t)]),
    extraSelectors: extra.map((t, n) => [`extra-${n}`, parse(t)]),
  };
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
const yieldToEventLoop = () => new Promise((resolve) => setImmediate(resolve));

/** Elapsed wall-clock and process CPU seconds (user + system, all threads) since creation. */
function stopwatch(): { wall(): number; cpu(): number } {
  const wall = performance.now();
  const cpu = process.cpuUsage();
  return {
    wall: () => (performance.now() - wall) / 1000,
    cpu: () => {
      const { user, system } = process.cpuUsage(cpu);
      return (user + system) / 1e6;
    },
  };
}

/** Counts events, as the cheapest possible consumer. */
function counter(): LabelIndexCallbacks<string, string> & { matches: number } {
  const c = {
    matches: 0,
    onMatchStarted: () => void c.matches++,
    onMatchStopped: () => void c.matches--,
  };
  return c;
}

type MakeIndex = (cb: LabelIndexCallbacks<string, string>) => IndexLike;

function build(make: MakeIndex, w: Workload) {
  const events = counter();
  const index = make(events);
  const time = stopwatch();
  for (const [id, labels] of w.items) index.updateItem(id, labels);
  for (const [id, selector] of w.selectors) index.updateSelector(id, selector);
  return { index, events, wall: time.wall(), cpu: time.cpu() };
}

/** Medians over the runs, in wall-clock and in CPU time. */
interface Figures {
  build_s: number;
  build_cpu_s: number;
  item_updates_per_s: number;
  item_updates_per_cpu_s: number;
  selector_adds_per_s: number;
  selector_adds_per_cpu_s: number;
  matches: number;
}

async function measure(
  ctx: BenchContext,
  label: string,
  make: MakeIndex,
  w: Workload,
  updatesPerRun: number,
): Promise<Figures> {
  const builds: number[] = [];
  const buildsCpu: number[] = [];
  let built: ReturnType<typeof build> | undefined;
  for (let r = 1; r <= BUILD_RUNS; r++) {
    built = undefined; // let the previous index go before building the next
    await yieldToEventLoop();
    built = build(make, w);
    builds.push(built.wall);
    buildsCpu.push(built.cpu);
    ctx.log(
      `${label}: build ${r}/${BUILD_RUNS}: ${built.wall.toFixed(2)} s (cpu ${built.cpu.toFixed(2)} s), ` +
        `${fmt(built.events.matches)} matches`,
    );
  }
  const { index, events } = built!;
  const matches = events.matches;

  const updates = { wall: [] as number[], cpu: [] as number[] };
  const adds = { wall: [] as number[], cpu: [] as number[] };
  // Updates are generated (untimed) just before each run, from the labels the
  // index holds, so every one is a real change.
  const current = new Map(w.items);
  const ids = w.items.map(([id]) => id);
  const gen = new Gen(0x0bd);
  for (let r = 1; r <= RUNS; r++) {
    const batch = makeUpdates(current, ids, updatesPerRun, gen);
    let time = stopwatch();
    for (const [id, labels] of batch) index.updateItem(id, labels);
    updates.wall.push(batch.length / time.wall());
    updates.cpu.push(batch.length / time.cpu());

    const added = w.extraSelectors;
    time = stopwatch();
    for (const [id, selector] of added) index.updateSelector(id, selector);
    adds.wall.push(added.length / time.wall());
    adds.cpu.push(added.length / time.cpu());
    for (const [id] of added) index.deleteSelector(id);

    ctx.log(
      `${label}: run ${r}/${RUNS}: ${fmt(updates.wall.at(-1)!)} item updates/s ` +
        `(per cpu s ${fmt(updates.cpu.at(-1)!)}), ${fmt(adds.wall.at(-1)!)} selector adds/s ` +
        `(per cpu s ${fmt(adds.cpu.at(-1)!)})`,
    );
    await yieldToEventLoop();
  }
  return {
    build_s: median(builds),
    build_cpu_s: median(buildsCpu),
    item_updates_per_s: median(updates.wall),
    item_updates_per_cpu_s: median(updates.cpu),
    selector_adds_per_s: median(adds.wall),
    selector_adds_per_cpu_s: median(adds.cpu),
    matches,
  };
}

/** Fails the benchmark unless both indexes hold the same matches for every selector. */
function checkAgreement(w: Workload, a: IndexLike, b: IndexLike): void {
  for (const [id] of w.selectors) {
    const x = a.matchingItems(id);
    const y = b.matchingItems(id);
    if (x.size !== y.size || [...x].some((i) => !y.has(i))) {
      throw new Error(`indexes disagree on selector ${id}: ${x.size} vs ${y.size} matches`);
    }
  }
}

const round = (n: number, digits: number) => Number(n.toFixed(digits));

const indexed: MakeIndex = (cb) => new LabelIndex(cb);
const naive: MakeIndex = (cb) => new NaiveIndex(cb);

/** Our index and the naive one at small scale, like for like. */
async function smallScale(ctx: BenchContext): Promise<{ ours: Figures; naive: Figures }> {
  const small = makeWorkload(SMALL);
  ctx.log(
    `small scale: ${fmt(SMALL.items)} endpoints in ${fmt(SMALL.namespaces)} namespaces, ${fmt(SMALL.selectors)} selectors`,
  );
  checkAgreement(small, build(indexed, small).index, build(naive, small).index);
  ctx.log("small scale: both indexes agree on every match");
  return {
    ours: await measure(ctx, "small/indexed", indexed, small, ITEM_UPDATES_PER_RUN),
    naive: await measure(ctx, "small/naive", naive, small, BASELINE_ITEM_UPDATES_PER_RUN),
  };
}

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  // Small scale first, in a function of its own so that its indexes are
  // garbage before the full-scale build and do not count in rss_mb.
  const { ours: smallOurs, naive: baseline } = await smallScale(ctx);

  ctx.log(
    `full scale: ${fmt(FULL.items)} endpoints in ${fmt(FULL.namespaces)} namespaces, ${fmt(FULL.selectors)} selectors`,
  );
  const full = makeWorkload(FULL);
  const ours = await measure(ctx, "full/indexed", indexed, full, ITEM_UPDATES_PER_RUN);
  const rssMb = process.memoryUsage().rss / 2 ** 20;

  const itemsFactor = FULL.items / SMALL.items;
  const selectorsFactor = FULL.selectors / SMALL.selectors;
  return {
    build_s: round(ours.build_s, 2),
    item_updates_per_s: Math.round(ours.item_updates_per_s),
    selector_adds_per_s: Math.round(ours.selector_adds_per_s),
    ratio: round(smallOurs.item_updates_per_cpu_s / baseline.item_updates_per_cpu_s, 1),
    build_ratio: round(baseline.build_cpu_s / smallOurs.build_cpu_s, 1),
    selector_adds_ratio: round(
      smallOurs.selector_adds_per_cpu_s / baseline.selector_adds_per_cpu_s,
      1,
    ),
    build_cpu_s: round(ours.build_cpu_s, 2),
    item_updates_per_cpu_s: Math.round(ours.item_updates_per_cpu_s),
    selector_adds_per_cpu_s: Math.round(ours.selector_adds_per_cpu_s),
    items: FULL.items,
    namespaces: FULL.namespaces,
    selectors: FULL.selectors,
    matches: ours.matches,
    rss_mb: Math.round(rssMb),
    small_items: SMALL.items,
    small_namespaces: SMALL.namespaces,
    small_selectors: SMALL.selectors,
    small_build_s: round(smallOurs.build_s, 3),
    small_item_updates_per_s: Math.round(smallOurs.item_updates_per_s),
    small_selector_adds_per_s: Math.round(smallOurs.selector_adds_per_s),
    baseline_build_s: round(baseline.build_s, 3),
    baseline_item_updates_per_s: Math.round(baseline.item_updates_per_s),
    baseline_selector_adds_per_s: Math.round(baseline.selector_adds_per_s),
    baseline_full_scale_est_build_s: round(baseline.build_s * itemsFactor * selectorsFactor, 1),
    baseline_full_scale_est_item_updates_per_s: Math.round(
      baseline.item_updates_per_s / selectorsFactor,
    ),
    baseline_full_scale_est_selector_adds_per_s: Math.round(
      baseline.selector_adds_per_s / itemsFactor,
    ),
    build_runs: BUILD_RUNS,
    runs: RUNS,
  };
}
