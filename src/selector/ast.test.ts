// Behaviour of the tree helpers, and a randomised check that parsing,
// canonical printing and the compiled matcher agree with a plain tree
// interpreter written from Calico's semantics.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { SelectorNode } from "./index.js";
import {
  compareCodePoints,
  formatSelector,
  parseSelector,
  selectorLabelKeys,
  selectorUsesGlobal,
  walkSelector,
} from "./index.js";
import { prng } from "../util/prng.js";

describe("selectorUsesGlobal", () => {
  const cases: [string, boolean][] = [
    ["", false],
    ["all()", false],
    ["global()", true],
    ["!global()", true],
    ["has(a) && (b == 'c' || !global())", true],
    ["has(global) && global == 'x'", false],
  ];
  for (const [text, uses] of cases) {
    it(`is ${uses} for ${JSON.stringify(text)}`, () => {
      const sel = parseSelector(text);
      assert.equal(selectorUsesGlobal(sel), uses);
      assert.equal(selectorUsesGlobal(sel.ast), uses);
    });
  }
});

describe("selectorLabelKeys", () => {
  const cases: [string, string[]][] = [
    ["", []],
    ["global()", []],
    ["has(b) && a == 'x' || !(c in {'y'}) && b != 'z'", ["a", "b", "c"]],
    ["z contains 'a' || y starts with 'b' || x ends with 'c' || w not in {}", ["w", "x", "y", "z"]],
  ];
  for (const [text, keys] of cases) {
    it(`lists ${JSON.stringify(keys)} for ${JSON.stringify(text)}`, () => {
      assert.deepEqual(selectorLabelKeys(parseSelector(text)), keys);
    });
  }
});

describe("walkSelector", () => {
  it("visits every node, parents first, operands in order", () => {
    const kinds: string[] = [];
    walkSelector(parseSelector("has(a) || !b == 'c' && d in {}"), (n) => kinds.push(n.kind));
    assert.deepEqual(kinds, ["or", "has", "and", "not", "eq", "in"]);
  });
});

describe("compareCodePoints", () => {
  const ordered = ["", "A", "B", "a", "ab", "b", "é", "\uE000", "\uFFFD", "\u{10000}", "\u{1F600}"];
  it("orders strings by code point, as UTF-8 bytes compare", () => {
    for (let i = 0; i < ordered.length; i++) {
      for (let j = 0; j < ordered.length; j++) {
        const got = Math.sign(compareCodePoints(ordered[i]!, ordered[j]!));
        assert.equal(
          got,
          Math.sign(i - j),
          `${JSON.stringify(ordered[i])} vs ${JSON.stringify(ordered[j])}`,
        );
      }
    }
  });
});

// ---- randomised agreement check ------------------------------------------

const KEYS = ["a", "b", "in", "has", "x.io/y"];
const VALUES = ["", "v", "vw", "wv", "'", '"'];

/** The reference semantics, straight from Calico's Evaluate: an interpreter. */
function evaluate(node: SelectorNode, labels: Record<string, string>): boolean {
  const has = (k: string) => Object.hasOwn(labels, k);
  switch (node.kind) {
    case "all":
    case "global":
      return true;
    case "has":
      return has(node.key);
    case "eq":
      return has(node.key) && labels[node.key] === node.value;
    case "ne":
      return !has(node.key) || labels[node.key] !== node.value;
    case "contains":
      return has(node.key) && labels[node.key]!.includes(node.value);
    case "startsWith":
      return has(node.key) && labels[node.key]!.startsWith(node.value);
    case "endsWith":
      return has(node.key) && labels[node.key]!.endsWith(node.value);
    case "in":
      return has(node.key) && node.values.includes(labels[node.key]!);
    case "notIn":
      return !has(node.key) || !node.values.includes(labels[node.key]!);
    case "not":
      return !evaluate(node.operand, labels);
    case "and":
      return node.operands.every((o) => evaluate(o, labels));
    case "or":
      return node.operands.some((o) => evaluate(o, labels));
  }
}

/** Random selector text in a random (but valid) spelling. */
function randomSelector(rand: () => number, depth: number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const sp = () => pick(["", " ", "  ", "\t"]);
  const str = (v: string) =>
    v.includes('"') ? `'${v}'` : v.includes("'") ? `"${v}"` : pick([`'${v}'`, `"${v}"`]);
  const r = rand();
  if (depth > 0 && r < 0.3) {
    const n = 2 + Math.floor(rand() * 3);
    const parts = Array.from({ length: n }, () => randomSelector(rand, depth - 1));
    return `(${sp()}${parts.join(sp() + pick(["&&", "||"]) + sp())}${sp()})`;
  }
  if (depth > 0 && r < 0.4) return `!${sp()}${randomSelector(rand, depth - 1)}`;
  const key = pick(KEYS);
  switch (pick(["has", "all", "global", "cmp", "set"])) {
    case "has":
      return `has(${sp()}${key}${sp()})`;
    case "all":
      return "all()";
    case "global":
      return "global()";
    case "cmp": {
      // Symbols may touch the key; operator words need a space before them.
      const op = pick([
        "==",
        "!=",
        " contains",
        " starts with",
        " startswith",
        " ends\twith",
        "\tends  with",
      ]);
      return `${key}${sp()}${op}${sp()}${str(pick(VALUES))}`;
    }
    default: {
      const values = Array.from({ length: Math.floor(rand() * 7) }, () => str(pick(VALUES)));
      return `${key} ${pick(["in", "not in", "notin"])}${sp()}{${values.join("," + sp())}}`;
    }
  }
}

function randomLabels(rand: () => number): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const k of KEYS) if (rand() < 0.6) labels[k] = VALUES[Math.floor(rand() * VALUES.length)]!;
  return labels;
}

describe("parser, printer and matcher agree", () => {
  it("on 2000 random selectors and label sets", () => {
    const rand = prng(20240607);
    for (let i = 0; i < 2000; i++) {
      const text = randomSelector(rand, 3);
      const sel = parseSelector(text);
      const canonical = sel.toString();
      assert.equal(formatSelector(sel.ast), canonical);
      const again = parseSelector(canonical);
      assert.equal(again.toString(), canonical, `round trip of ${text}`);
      assert.deepEqual(again.ast, sel.ast, `tree of ${text}`);
      for (let j = 0; j < 8; j++) {
        const labels = randomLabels(rand);
        const want = evaluate(sel.ast, labels);
        assert.equal(sel.matches(labels), want, `${text} on ${JSON.stringify(labels)}`);
        assert.equal(again.matches(labels), want, `${canonical} on ${JSON.stringify(labels)}`);
      }
    }
  });
});
