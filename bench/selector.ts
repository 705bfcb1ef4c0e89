// Selector throughput: how fast twill parses Calico selectors and matches them
// against endpoint labels, over a mix shaped like a real cluster's: policy
// selectors, rule selectors and namespace selectors as people write them for
// Kubernetes and Calico, against label sets of 5 to 15 labels like those on
// pods (app.kubernetes.io/*, pod-template-hash, the projectcalico.org/*
// labels Calico adds) and namespaces.
//
// Figures (each the median of RUNS timed runs, after a warm-up):
//   parse_per_s   selectors parsed (and compiled to a matcher) per second.
//   match_per_s   selector-against-label-set evaluations per second.
// Baselines, measured in the same process, interleaved with the above:
//   match_ratio_vs_hand_written = match_per_s / hand_written_match_per_s.
//     For every selector in the mix there is a JavaScript closure written by
//     hand that does the same object lookups and comparisons, with the same
//     semantics for absent labels: what a person would write without a
//     selector language. The two must agree on every match; the benchmark
//     fails if they do not. The mix evaluates each selector once against every
//     label set, then moves on to the next selector.
//   match_hot_per_s, match_hot_ratio_vs_hand_written: the same, but each
//     selector is evaluated HOT_REPEAT times over all label sets before the
//     next one.
//   Why both: V8 caches property lookups per (property name, object shape).
//   The hand-written closures read constant names (`l["app"]`), and in the mix
//   some 30 names meet 256 label-set shapes, more pairs than V8's lookup cache
//   holds, so their reads keep missing it; our compiled closures read through
//   a variable key (`labels[key]`), which V8 serves by a generic lookup that
//   does not depend on that cache. In the mix ours come out ahead; run hot, the
//   cache stays warm and the hand-written code is faster. A real agent sees
//   both patterns: a new policy's selector is tried against every endpoint
//   (hot), an endpoint whose labels change is tried against every selector (mix).
//   parse_ratio_vs_json_parse = parse_per_s / json_parse_per_s.
//     JSON.parse of each selector's syntax tree serialised as JSON: V8's
//     native parser building the same tree from text. That is the fastest way
//     JavaScript can turn text into such a tree, so the ratio is how close our
//     hand-written parser (which also validates the grammar and compiles the
//     matcher) comes to it. The JSON text is longer than the selector (see
//     *_chars_mean), which favours neither side much: JSON.parse is not
//     character-bound at these sizes.
// Label sets and the order of work are generated from a fixed seed, so runs
// are comparable.

import type { BenchContext, BenchFigures } from "./run.js";
import type { Selector } from "../src/selector/index.js";
import { parseSelector } from "../src/selector/index.js";
import { prng } from "../src/util/prng.js";

const RUNS = 7;
const RUN_MS = 250;
/** Passes over all label sets per selector in the hot measurement. */
const HOT_REPEAT = 16;

type Labels = Readonly<Record<string, string>>;
type Matcher = (labels: Labels) => boolean;

/** A selector as found in real policy, with the closure a person would write for it. */
interface Case {
  text: string;
  handWritten: Matcher;
}

// Written as a person would: small sets as comparisons, the six-value one as a Set.
const SHOP_SERVICES = new Set(["cart", "checkout", "catalog", "payments", "shipping", "frontend"]);

const CASES: Case[] = [
  // spec.selector of policies
  { text: `app == "web"`, handWritten: (l) => l["app"] === "web" },
  {
    text: `role in {"db", "cache"} && env != "prod"`,
    handWritten: (l) => {
      const role = l["role"];
      return (role === "db" || role === "cache") && l["env"] !== "prod";
    },
  },
  {
    text: `app.kubernetes.io/name == "postgres" && app.kubernetes.io/component == "primary"`,
    handWritten: (l) =>
      l["app.kubernetes.io/name"] === "postgres" && l["app.kubernetes.io/component"] === "primary",
  },
  { text: `k8s-app == "kube-dns"`, handWritten: (l) => l["k8s-app"] === "kube-dns" },
  {
    text: `projectcalico.org/orchestrator == "k8s" && !has(app)`,
    handWritten: (l) => l["projectcalico.org/orchestrator"] === "k8s" && l["app"] === undefined,
  },
  { text: `all()`, handWritten: () => true },
  { text: ``, handWritten: () => true },
  {
    text: `tier == "frontend" || tier == "edge"`,
    handWritten: (l) => l["tier"] === "frontend" || l["tier"] === "edge",
  },
  {
    text: `env == "staging" && (team == "payments" || team == "checkout")`,
    handWritten: (l) =>
      l["env"] === "staging" && (l["team"] === "payments" || l["team"] === "checkout"),
  },
  {
    text: `!has(node-role.kubernetes.io/control-plane)`,
    handWritten: (l) => l["node-role.kubernetes.io/control-plane"] === undefined,
  },
  {
    text: `role == "db" && env in {"prod", "staging"} && !has(quarantine)`,
    handWritten: (l) => {
      const env = l["env"];
      return (
        l["role"] === "db" && (env === "prod" || env === "staging") && l["quarantine"] === undefined
      );
    },
  },
  {
    text: `app.kubernetes.io/part-of == "shop" && app.kubernetes.io/name in {"cart", "checkout", "catalog", "payments", "shipping", "frontend"}`,
    handWritten: (l) =>
      l["app.kubernetes.io/part-of"] === "shop" && SHOP_SERVICES.has(l["app.kubernetes.io/name"]!),
  },
  {
    text: `(app == "api" || app == "api-v2") && env == "prod" && tier != "internal"`,
    handWritten: (l) =>
      (l["app"] === "api" || l["app"] === "api-v2") &&
      l["env"] === "prod" &&
      l["tier"] !== "internal",
  },
  {
    text: `role=="web"&&env!="prod"`,
    handWritten: (l) => l["role"] === "web" && l["env"] !== "prod",
  },
  // rule source/destination selectors
  {
    text: `has(projectcalico.org/namespace) && projectcalico.org/namespace == "payments"`,
    handWritten: (l) =>
      l["projectcalico.org/namespace"] !== undefined &&
      l["projectcalico.org/namespace"] === "payments",
  },
  {
    text: `projectcalico.org/namespace in {"kube-system", "calico-system", "tigera-operator"}`,
    handWritten: (l) => {
      const ns = l["projectcalico.org/namespace"];
      return ns === "kube-system" || ns === "calico-system" || ns === "tigera-operator";
    },
  },
  {
    text: `projectcalico.org/serviceaccount == "prometheus"`,
    handWritten: (l) => l["projectcalico.org/serviceaccount"] === "prometheus",
  },
  {
    text: `app starts with "ingress-" && has(pod-template-hash)`,
    handWritten: (l) => {
      const app = l["app"];
      return (
        app !== undefined && app.startsWith("ingress-") && l["pod-template-hash"] !== undefined
      );
    },
  },
  {
    text: `version ends with "-canary"`,
    handWritten: (l) => {
      const v = l["version"];
      return v !== undefined && v.endsWith("-canary");
    },
  },
  {
    text: `team contains "platform"`,
    handWritten: (l) => {
      const v = l["team"];
      return v !== undefined && v.includes("platform");
    },
  },
  {
    text: `environment in {'dev', 'test'}`,
    handWritten: (l) => {
      const env = l["environment"];
      return env === "dev" || env === "test";
    },
  },
  // namespace selectors
  {
    text: `kubernetes.io/metadata.name == "default"`,
    handWritten: (l) => l["kubernetes.io/metadata.name"] === "default",
  },
  {
    text: `projectcalico.org/name not in {"kube-system", "kube-public", "kube-node-lease"}`,
    handWritten: (l) => {
      const name = l["projectcalico.org/name"];
      return !(name === "kube-system" || name === "kube-public" || name === "kube-node-lease");
    },
  },
  { text: `global()`, handWritten: () => true },
  {
    text: `env == "prod" && !(team in {"sandbox", "experiments"})`,
    handWritten: (l) => {
      const team = l["team"];
      return l["env"] === "prod" && !(team === "sandbox" || team === "experiments");
    },
  },
];

// ---- label sets -------------------------------------------------------------

const APPS = [
  "web",
  "api",
  "api-v2",
  "postgres",
  "redis",
  "ingress-nginx",
  "prometheus",
  "cart",
  "checkout",
  "catalog",
];
const NAMESPACES = [
  "default",
  "payments",
  "shop",
  "kube-system",
  "calico-system",
  "monitoring",
  "staging-apps",
];
const TEAMS = ["payments", "checkout", "platform-infra", "sandbox", "data"];
const ENVS = ["prod", "staging", "dev", "test"];

/** Pod labels (as Calico sees them on a WorkloadEndpoint) or namespace labels. */
function makeLabelSets(count: number, seed: number): Labels[] {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const hex = (n: number) =>
    Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join("");
  const sets: Labels[] = [];
  for (let i = 0; i < count; i++) {
    const namespace = pick(NAMESPACES);
    const candidates: [string, string][] = [];
    if (rand() < 0.2) {
      // a namespace
      candidates.push(
        ["kubernetes.io/metadata.name", namespace],
        ["projectcalico.org/name", namespace],
        ["env", pick(ENVS)],
        ["team", pick(TEAMS)],
        ["pod-security.kubernetes.io/enforce", "baseline"],
        ["owner", `${pick(TEAMS)}@example.com`],
        ["cost-center", `cc-${hex(4)}`],
      );
    } else {
      const app = pick(APPS);
      candidates.push(
        ["projectcalico.org/namespace", namespace],
        ["projectcalico.org/orchestrator", "k8s"],
        ["projectcalico.org/serviceaccount", rand() < 0.7 ? "default" : app],
        ["app", app],
        ["pod-template-hash", hex(10)],
        [
          "app.kubernetes.io/name",
          rand() < 0.5 ? app : pick(["cart", "checkout", "payments", "shipping"]),
        ],
        ["app.kubernetes.io/instance", `${app}-${hex(4)}`],
        ["app.kubernetes.io/component", pick(["primary", "replica", "server", "worker"])],
        ["app.kubernetes.io/part-of", pick(["shop", "observability", "platform"])],
        ["app.kubernetes.io/managed-by", "Helm"],
        ["env", pick(ENVS)],
        ["tier", pick(["frontend", "edge", "backend", "internal"])],
        ["role", pick(["web", "db", "cache", "worker"])],
        ["team", pick(TEAMS)],
        ["version", pick(["v1", "v2", "v2-canary", "1.4.2"])],
      );
      if (rand() < 0.05) candidates.push(["quarantine", "true"]);
      if (rand() < 0.1) candidates.push(["k8s-app", pick(["kube-dns", "calico-node"])]);
    }
    const n = Math.min(candidates.length, 5 + Math.floor(rand() * 11));
    // Keep the first few (the ones every pod or namespace has), then a random subset.
    const keep = candidates.slice(0, 3);
    const rest = candidates.slice(3);
    while (keep.length < n && rest.length > 0)
      keep.push(rest.splice(Math.floor(rand() * rest.length), 1)[0]!);
    sets.push(Object.fromEntries(keep));
  }
  return sets;
}

// ---- measurement ------------------------------------------------------------

/** Runs `pass` (which does `opsPerPass` operations) for about `ms` and returns operations per second. */
function throughput(pass: () => void, opsPerPass: number, ms: number): number {
  let passes = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    pass();
    passes++;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return (passes * opsPerPass) / (elapsed / 1000);
}

function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  const texts = CASES.map((c) => c.text);
  const handWritten = CASES.map((c) => c.handWritten);
  const parsed: Selector[] = texts.map((t) => parseSelector(t));
  const compiled: Matcher[] = parsed.map((s) => s.matches);
  const astJson = parsed.map((s) => JSON.stringify(s.ast));
  const labelSets = makeLabelSets(256, 0x5e1ec7);
  const labelsMean = labelSets.reduce((n, l) => n + Object.keys(l).length, 0) / labelSets.length;
  const selectorChars = texts.reduce((n, t) => n + t.length, 0) / texts.length;
  const jsonChars = astJson.reduce((n, t) => n + t.length, 0) / astJson.length;

  // Both matchers must agree everywhere, or the baseline is not a baseline.
  let selected = 0;
  for (let i = 0; i < CASES.length; i++) {
    for (const labels of labelSets) {
      const want = handWritten[i]!(labels);
      if (compiled[i]!(labels) !== want) {
        throw new Error(
          `selector ${JSON.stringify(texts[i])} and its hand-written twin disagree on ${JSON.stringify(labels)}`,
        );
      }
      if (want) selected++;
    }
  }
  ctx.log(
    `${CASES.length} selectors (mean ${selectorChars.toFixed(0)} chars), ${labelSets.length} label sets ` +
      `(mean ${labelsMean.toFixed(1)} labels), ${((100 * selected) / (CASES.length * labelSets.length)).toFixed(0)}% of pairs match`,
  );

  // A sink the optimiser cannot prove unused, checked at the end.
  let sink = 0;
  const parsePass = () => {
    for (let i = 0; i < texts.length; i++) if (parseSelector(texts[i]!).ast.kind === "all") sink++;
  };
  const jsonPass = () => {
    for (let i = 0; i < astJson.length; i++)
      if ((JSON.parse(astJson[i]!) as { kind: string }).kind === "all") sink++;
  };
  const matchPassWith = (matchers: readonly Matcher[], repeat: number) => () => {
    let n = 0;
    for (let i = 0; i < matchers.length; i++) {
      const m = matchers[i]!;
      for (let r = 0; r < repeat; r++) {
        for (let j = 0; j < labelSets.length; j++) if (m(labelSets[j]!)) n++;
      }
    }
    if (n !== selected * repeat) {
      throw new Error(`match count changed: ${n} != ${selected * repeat}`);
    }
  };
  const matchPass = matchPassWith(compiled, 1);
  const handPass = matchPassWith(handWritten, 1);
  const hotPass = matchPassWith(compiled, HOT_REPEAT);
  const hotHandPass = matchPassWith(handWritten, HOT_REPEAT);
  const pairs = CASES.length * labelSets.length;

  ctx.log("warming up");
  for (let i = 0; i < 2; i++) {
    throughput(parsePass, texts.length, RUN_MS / 2);
    throughput(jsonPass, texts.length, RUN_MS / 2);
    throughput(matchPass, pairs, RUN_MS / 2);
    throughput(handPass, pairs, RUN_MS / 2);
    throughput(hotPass, pairs * HOT_REPEAT, RUN_MS / 2);
    throughput(hotHandPass, pairs * HOT_REPEAT, RUN_MS / 2);
  }

  const parseRates: number[] = [];
  const jsonRates: number[] = [];
  const matchRates: number[] = [];
  const handRates: number[] = [];
  const hotRates: number[] = [];
  const hotHandRates: number[] = [];
  for (let r = 1; r <= RUNS; r++) {
    // Interleave each figure with its baseline so drift (thermal, other load) hits both.
    parseRates.push(throughput(parsePass, texts.length, RUN_MS));
    jsonRates.push(throughput(jsonPass, texts.length, RUN_MS));
    matchRates.push(throughput(matchPass, pairs, RUN_MS));
    handRates.push(throughput(handPass, pairs, RUN_MS));
    hotRates.push(throughput(hotPass, pairs * HOT_REPEAT, RUN_MS));
    hotHandRates.push(throughput(hotHandPass, pairs * HOT_REPEAT, RUN_MS));
    ctx.log(
      `run ${r}/${RUNS}: parse ${fmt(parseRates.at(-1)!)}/s (JSON.parse ${fmt(jsonRates.at(-1)!)}/s), ` +
        `match ${fmt(matchRates.at(-1)!)}/s (hand-written ${fmt(handRates.at(-1)!)}/s), ` +
        `hot ${fmt(hotRates.at(-1)!)}/s (hand-written ${fmt(hotHandRates.at(-1)!)}/s)`,
    );
    // Yield between runs so the process stays responsive to signals.
    await new Promise((resolve) => setImmediate(resolve));
  }
  if (sink === 0) throw new Error("benchmark sink never written: the parse loops did not run");

  const parsePerS = median(parseRates);
  const jsonPerS = median(jsonRates);
  const matchPerS = median(matchRates);
  const handPerS = median(handRates);
  const hotPerS = median(hotRates);
  const hotHandPerS = median(hotHandRates);
  return {
    parse_per_s: Math.round(parsePerS),
    match_per_s: Math.round(matchPerS),
    parse_ratio_vs_json_parse: Number((parsePerS / jsonPerS).toFixed(3)),
    match_ratio_vs_hand_written: Number((matchPerS / handPerS).toFixed(3)),
    json_parse_per_s: Math.round(jsonPerS),
    hand_written_match_per_s: Math.round(handPerS),
    match_hot_per_s: Math.round(hotPerS),
    match_hot_ratio_vs_hand_written: Number((hotPerS / hotHandPerS).toFixed(3)),
    hand_written_match_hot_per_s: Math.round(hotHandPerS),
    hot_repeat: HOT_REPEAT,
    runs: RUNS,
    run_ms: RUN_MS,
    selectors: CASES.length,
    selector_chars_mean: Number(selectorChars.toFixed(1)),
    ast_json_chars_mean: Number(jsonChars.toFixed(1)),
    label_sets: labelSets.length,
    labels_per_set_mean: Number(labelsMean.toFixed(1)),
  };
}
