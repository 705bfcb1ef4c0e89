// Behaviour of parseSelector: what each operator matches (with Calico's
// absent-label semantics), precedence, quoting and whitespace, the canonical
// form and its round trip, and every error with its position.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import type { SelectorNode } from "./index.js";
import {
  MAX_LABEL_KEY_LENGTH,
  MAX_SELECTOR_NESTING,
  parseSelector,
  SelectorError,
} from "./index.js";
import { TwillError } from "../util/errors.js";

type Labels = Record<string, string>;

interface MatchCase {
  selector: string;
  matches: Labels[];
  rejects: Labels[];
}

const matchCases: MatchCase[] = [
  // ==
  {
    selector: `a == "b"`,
    matches: [{ a: "b" }, { a: "b", c: "d" }],
    rejects: [{}, { a: "c" }, { c: "b" }, { a: "" }],
  },
  { selector: `a == ""`, matches: [{ a: "" }], rejects: [{}, { a: "x" }] },
  // != is true when the label is absent
  { selector: `a != "b"`, matches: [{}, { a: "c" }, { a: "" }, { c: "b" }], rejects: [{ a: "b" }] },
  // in / not in (not in is true when the label is absent)
  {
    selector: `a in {"x", "y"}`,
    matches: [{ a: "x" }, { a: "y" }],
    rejects: [{}, { a: "z" }, { b: "x" }],
  },
  { selector: `a in {}`, matches: [], rejects: [{}, { a: "" }, { a: "x" }] },
  {
    selector: `a not in {"x", "y"}`,
    matches: [{}, { a: "z" }, { b: "x" }],
    rejects: [{ a: "x" }, { a: "y" }],
  },
  { selector: `a not in {}`, matches: [{}, { a: "x" }], rejects: [] },
  {
    // more values than the small-set fast path
    selector: `a in {"v1", "v2", "v3", "v4", "v5", "v6"}`,
    matches: [{ a: "v1" }, { a: "v4" }, { a: "v6" }],
    rejects: [{}, { a: "v7" }, { a: "" }],
  },
  {
    selector: `a not in {"v1", "v2", "v3", "v4", "v5", "v6"}`,
    matches: [{}, { a: "v7" }],
    rejects: [{ a: "v1" }, { a: "v6" }],
  },
  {
    selector: `a in {"'", '"', "c"}`,
    matches: [{ a: "c" }, { a: `"` }, { a: `'` }],
    rejects: [{}, { a: "e" }],
  },
  // has / !has
  { selector: `has(a)`, matches: [{ a: "" }, { a: "b" }], rejects: [{}, { b: "a" }] },
  { selector: `!has(a)`, matches: [{}, { b: "a" }], rejects: [{ a: "" }] },
  // contains / starts with / ends with: false when absent
  {
    selector: `a contains "b"`,
    matches: [{ a: "b" }, { a: "abc" }],
    rejects: [{}, { a: "ac" }, { c: "b" }],
  },
  { selector: `a contains ""`, matches: [{ a: "" }, { a: "x" }], rejects: [{}] },
  {
    selector: `a starts with "ab"`,
    matches: [{ a: "ab" }, { a: "abc" }],
    rejects: [{}, { a: "cab" }, { a: "a" }],
  },
  {
    selector: `a ends with "ab"`,
    matches: [{ a: "ab" }, { a: "cab" }],
    rejects: [{}, { a: "abc" }, { a: "b" }],
  },
  // all(), global() and the empty selector match everything
  { selector: `all()`, matches: [{}, { a: "b" }], rejects: [] },
  { selector: `global()`, matches: [{}, { a: "b" }], rejects: [] },
  { selector: ``, matches: [{}, { a: "b" }], rejects: [] },
  { selector: ` \t `, matches: [{}, { a: "b" }], rejects: [] },
  { selector: `!all()`, matches: [], rejects: [{}, { a: "b" }] },
  // ! negates one operation; leading !s collapse
  { selector: `!a == "b"`, matches: [{}, { a: "c" }], rejects: [{ a: "b" }] },
  { selector: `!!has(a)`, matches: [{ a: "x" }], rejects: [{}] },
  { selector: `!! ! has(a)`, matches: [{}], rejects: [{ a: "x" }] },
  { selector: `!(!has(a))`, matches: [{ a: "x" }], rejects: [{}] },
  { selector: `!a in {"x"}`, matches: [{}, { a: "y" }], rejects: [{ a: "x" }] },
  // && and ||
  {
    selector: `a == "1" && b == "2"`,
    matches: [
      { a: "1", b: "2" },
      { a: "1", b: "2", c: "3" },
    ],
    rejects: [{}, { a: "1" }, { b: "2" }, { a: "1", b: "3" }],
  },
  {
    selector: `a == "1" || b == "2"`,
    matches: [{ a: "1" }, { b: "2" }, { a: "1", b: "2" }],
    rejects: [{}, { a: "2", b: "1" }],
  },
  {
    selector: `has(a) && has(b) && has(c) && has(d)`,
    matches: [{ a: "", b: "", c: "", d: "" }],
    rejects: [
      { a: "", b: "", c: "" },
      { b: "", c: "", d: "" },
    ],
  },
  {
    selector: `has(a) || has(b) || has(c) || has(d)`,
    matches: [{ d: "" }, { a: "" }],
    rejects: [{}, { e: "" }],
  },
  // precedence: ! binds tighter than &&, && tighter than ||
  {
    selector: `has(a) || has(b) && has(c)`,
    matches: [{ a: "" }, { b: "", c: "" }],
    rejects: [{ b: "" }, { c: "" }, {}],
  },
  {
    selector: `has(a) && has(b) || has(c)`,
    matches: [{ c: "" }, { a: "", b: "" }],
    rejects: [{ a: "" }, { b: "" }, {}],
  },
  {
    selector: `(has(a) || has(b)) && has(c)`,
    matches: [
      { a: "", c: "" },
      { b: "", c: "" },
    ],
    rejects: [{ a: "" }, { c: "" }],
  },
  { selector: `!has(a) && has(b)`, matches: [{ b: "" }], rejects: [{ a: "", b: "" }, {}] },
  {
    selector: `!(has(a) && has(b))`,
    matches: [{}, { a: "" }, { b: "" }],
    rejects: [{ a: "", b: "" }],
  },
  { selector: `!(!has(a) || has(b))`, matches: [{ a: "a" }], rejects: [{}, { a: "a", b: "b" }] },
  // quoting: single and double quotes, the other quote inside, no escapes
  { selector: `a == 'b'`, matches: [{ a: "b" }], rejects: [{ a: "'b'" }] },
  { selector: `a == '"'`, matches: [{ a: `"` }], rejects: [{ a: "'" }] },
  { selector: `a == "'"`, matches: [{ a: "'" }], rejects: [{ a: `"` }] },
  { selector: `a == "x\\y"`, matches: [{ a: "x\\y" }], rejects: [{ a: "xy" }] },
  {
    selector: `a == "with space && || ( ) {}"`,
    matches: [{ a: "with space && || ( ) {}" }],
    rejects: [{}],
  },
  // whitespace is optional between tokens
  { selector: `a=="b"&&has(c)`, matches: [{ a: "b", c: "" }], rejects: [{ a: "b" }] },
  { selector: `a!="b"||!has(c)`, matches: [{}, { a: "b" }], rejects: [{ a: "b", c: "" }] },
  { selector: `a in{"b"}&&c notin{"d"}`, matches: [{ a: "b" }], rejects: [{ a: "b", c: "d" }] },
  {
    selector: `a startswith"x"&&a endswith"y"`,
    matches: [{ a: "xy" }, { a: "x-y" }],
    rejects: [{ a: "yx" }],
  },
  { selector: `\ta\t==\t"b"\t`, matches: [{ a: "b" }], rejects: [{}] },
  { selector: `has( a )&&all( )||global( )`, matches: [{}], rejects: [] },
  // operator words are only operators after a label: labels may be named like them
  { selector: `in == "x"`, matches: [{ in: "x" }], rejects: [{}] },
  {
    selector: `has == "x" && all == "y"`,
    matches: [{ has: "x", all: "y" }],
    rejects: [{ has: "x" }],
  },
  {
    selector: `contains contains "contains"`,
    matches: [{ contains: "xcontainsx" }],
    rejects: [{}],
  },
  { selector: `not not in {"in"}`, matches: [{}, { not: "x" }], rejects: [{ not: "in" }] },
  { selector: `startswith starts with "x"`, matches: [{ startswith: "xy" }], rejects: [{}] },
  // Calico's label-key characters, prefixes included
  {
    selector: `projectcalico.org/namespace == "kube-system" && k8s-app == "kube-dns"`,
    matches: [{ "projectcalico.org/namespace": "kube-system", "k8s-app": "kube-dns" }],
    rejects: [{ "k8s-app": "kube-dns" }],
  },
  {
    selector: `has(calico/k8s_NS-.1/role)`,
    matches: [{ "calico/k8s_NS-.1/role": "" }],
    rejects: [{}],
  },
  {
    selector: `9lives == "x" && -odd_/key. == "y"`,
    matches: [{ "9lives": "x", "-odd_/key.": "y" }],
    rejects: [{}],
  },
  // names of Object.prototype properties are ordinary, usually absent, labels
  { selector: `has(constructor)`, matches: [{ constructor: "x" }], rejects: [{}] },
  {
    selector: `has(__proto__)`,
    matches: [JSON.parse(`{"__proto__": "x"}`) as Labels],
    rejects: [{}],
  },
  { selector: `toString != "x"`, matches: [{}, { toString: "y" }], rejects: [{ toString: "x" }] },
  { selector: `constructor contains "f"`, matches: [{ constructor: "f" }], rejects: [{}] },
  { selector: `hasOwnProperty not in {"x"}`, matches: [{}], rejects: [{ hasOwnProperty: "x" }] },
  {
    selector: `constructor in {"a", "b", "c", "d", "e"}`,
    matches: [{ constructor: "e" }],
    rejects: [{}],
  },
];

describe("parseSelector matching", () => {
  for (const c of matchCases) {
    it(`${JSON.stringify(c.selector)} matches and rejects the right label sets`, () => {
      const sel = parseSelector(c.selector);
      const again = parseSelector(sel.toString());
      for (const labels of c.matches) {
        assert.equal(sel.matches(labels), true, `should match ${JSON.stringify(labels)}`);
        assert.equal(
          again.matches(labels),
          true,
          `canonical form should match ${JSON.stringify(labels)}`,
        );
      }
      for (const labels of c.rejects) {
        assert.equal(sel.matches(labels), false, `should not match ${JSON.stringify(labels)}`);
        assert.equal(
          again.matches(labels),
          false,
          `canonical form should not match ${JSON.stringify(labels)}`,
        );
      }
    });
  }

  it("matches labels held in a prototype-less object", () => {
    const labels = Object.assign(Object.create(null) as Labels, { a: "b" });
    assert.equal(parseSelector(`a == "b" && !has(constructor)`).matches(labels), true);
  });

  it("works when matches is called detached from the selector", () => {
    const { matches } = parseSelector(`has(a)`);
    assert.equal(matches({ a: "" }), true);
  });
});

/** [input, canonical form]. The first block is Calico's own canonicalisation table. */
const canonicalCases: [string, string][] = [
  ["", "all()"],
  [" all() ", "all()"],
  [" (all() )", "all()"],
  [`! (has( b)||! has(a ))`, "!(has(b) || !has(a))"],
  [`! (a == "b"&&! c != "d")`, `!(a == "b" && !c != "d")`],
  [`a == "'"`, `a == "'"`],
  [`a == '"'`, `a == '"'`],
  [`a contains '"'`, `a contains '"'`],
  [`a contains "'"`, `a contains "'"`],
  [`a startswith '"'`, `a starts with '"'`],
  [`a endswith "'"`, `a ends with "'"`],
  [`a!='"'`, `a != '"'`],
  [`a in {"d"}`, `a in {"d"}`],
  [`a in {"a", "b"}`, `a in {"a", "b"}`],
  [`a in {"d", "a", "b"}`, `a in {"a", "b", "d"}`],
  [`a in {"z", "x", "y", "a"}`, `a in {"a", "x", "y", "z"}`],
  [`a in {"z", "z", "x", "y", "x", "a"}`, `a in {"a", "x", "y", "z"}`],
  [`!(k == 'v')`, `!k == "v"`],
  [`k == 'v' && x == 'y'`, `(k == "v" && x == "y")`],
  [`k == 'v' || has(x)`, `(k == "v" || has(x))`],
  [
    `!(!(k == 'v' && has(t) || all()) && (a in {'b', 'c'}))`,
    `!(!((k == "v" && has(t)) || all()) && a in {"b", "c"})`,
  ],
  // ours
  ["global()", "global()"],
  ["\tglobal( )\t", "global()"],
  ["has(a)", "has(a)"],
  ["a  starts  with  'x'", `a starts with "x"`],
  ["a ends\twith 'x'", `a ends with "x"`],
  ["a not  in {'x','y',}", `a not in {"x", "y"}`],
  ["a notin {}", "a not in {}"],
  ["a in{ }", "a in {}"],
  ["!!has(a)", "has(a)"],
  ["!!!has(a)", "!has(a)"],
  ["!(!has(a))", "has(a)"],
  ["!(!(!has(a)))", "!has(a)"],
  ["((((a == 'b'))))", `a == "b"`],
  ["a == 'b' && c == 'd' && e == 'f'", `(a == "b" && c == "d" && e == "f")`],
  ["(a == 'b' && c == 'd') && e == 'f'", `((a == "b" && c == "d") && e == "f")`],
  ["a == 'b' || c == 'd' && e == 'f'", `(a == "b" || (c == "d" && e == "f"))`],
  ["(a == 'b' || c == 'd') && e == 'f'", `((a == "b" || c == "d") && e == "f")`],
  ["!(a == 'b' || c == 'd')", `!(a == "b" || c == "d")`],
  ["a in {'x\"y'}", `a in {'x"y'}`],
  ['a in {"it\'s", \'say "hi"\'}', `a in {"it's", 'say "hi"'}`],
  // set values sort by code point (UTF-8 byte order), not UTF-16 code unit
  ["a in {'\u{1F600}', '\uFFFD', 'z', 'Z', ''}", `a in {"", "Z", "z", "\uFFFD", "\u{1F600}"}`],
  ["a == 'ünïcødé'", `a == "ünïcødé"`],
];

describe("parseSelector canonical form", () => {
  for (const [input, canonical] of canonicalCases) {
    it(`renders ${JSON.stringify(input)} as ${JSON.stringify(canonical)}`, () => {
      assert.equal(parseSelector(input).toString(), canonical);
    });
  }

  const validInputs = [
    ...matchCases.map((c) => c.selector),
    ...canonicalCases.map(([input]) => input),
  ];
  it("gives back the canonical form, and the same tree, when the canonical form is parsed", () => {
    for (const input of validInputs) {
      const first = parseSelector(input);
      const second = parseSelector(first.toString());
      assert.equal(second.toString(), first.toString(), `round trip of ${JSON.stringify(input)}`);
      assert.deepEqual(second.ast, first.ast, `tree of ${JSON.stringify(input)}`);
    }
  });

  it("gives String() the canonical form too", () => {
    assert.equal(String(parseSelector(`a=='b'`)), `a == "b"`);
    assert.equal(`${parseSelector(`has(x)`)}`, "has(x)");
  });
});

describe("parseSelector tree", () => {
  const cases: [string, SelectorNode][] = [
    ["", { kind: "all" }],
    ["all()", { kind: "all" }],
    ["global()", { kind: "global" }],
    ["has(a)", { kind: "has", key: "a" }],
    [`a == "b"`, { kind: "eq", key: "a", value: "b" }],
    [`a != "b"`, { kind: "ne", key: "a", value: "b" }],
    [`a contains "b"`, { kind: "contains", key: "a", value: "b" }],
    [`a starts with "b"`, { kind: "startsWith", key: "a", value: "b" }],
    [`a ends with "b"`, { kind: "endsWith", key: "a", value: "b" }],
    [`a in {"c", "b", "c"}`, { kind: "in", key: "a", values: ["b", "c"] }],
    [`a not in {}`, { kind: "notIn", key: "a", values: [] }],
    ["!has(a)", { kind: "not", operand: { kind: "has", key: "a" } }],
    [
      "has(a) || has(b) && !has(c)",
      {
        kind: "or",
        operands: [
          { kind: "has", key: "a" },
          {
            kind: "and",
            operands: [
              { kind: "has", key: "b" },
              { kind: "not", operand: { kind: "has", key: "c" } },
            ],
          },
        ],
      },
    ],
  ];
  for (const [input, ast] of cases) {
    it(`parses ${JSON.stringify(input)} into its tree`, () => {
      assert.deepEqual(parseSelector(input).ast, ast);
    });
  }

  it("freezes the selector and every node of its tree", () => {
    const sel = parseSelector(`!(a in {"x", "y"} && b == "c") || has(d)`);
    assert.ok(Object.isFrozen(sel));
    const stack: unknown[] = [sel.ast];
    for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
      assert.ok(Object.isFrozen(node), `${JSON.stringify(node)} is frozen`);
      if (typeof node === "object" && node !== null) {
        for (const child of Object.values(node)) if (typeof child === "object") stack.push(child);
      }
    }
  });
});

describe("parseSelector label keys", () => {
  it(`accepts keys of ${MAX_LABEL_KEY_LENGTH} characters`, () => {
    const key = "k".repeat(MAX_LABEL_KEY_LENGTH);
    assert.equal(parseSelector(`${key} == "v"`).matches({ [key]: "v" }), true);
    assert.equal(parseSelector(`has(${key})`).toString(), `has(${key})`);
  });

  for (const text of [
    `${"k".repeat(513)} == "v"`,
    `has(${"k".repeat(513)})`,
    `!(${"k".repeat(600)} in {})`,
  ]) {
    it(`rejects a ${text.length}-character selector with a key over ${MAX_LABEL_KEY_LENGTH} characters`, () => {
      assert.throws(
        () => parseSelector(text),
        (err: unknown) => {
          assert.ok(err instanceof SelectorError);
          assert.equal(err.position, text.indexOf("k"));
          assert.match(err.expected, /at most 512 characters/);
          return true;
        },
      );
    });
  }
});

/** [input, position, expected]: where parsing stops and what it wanted there. */
const errorCases: [string, number, string][] = [
  // missing operand or operator
  [`a == `, 5, "a quoted string"],
  [`a ==`, 4, "a quoted string"],
  [`a`, 1, "an operator"],
  [`a `, 2, "an operator"],
  [`a b`, 2, "an operator"],
  [`b == b`, 5, "a quoted string"],
  [`b contains b`, 11, "a quoted string"],
  [`b starts with b`, 14, "a quoted string"],
  [`b ends with b`, 12, "a quoted string"],
  [`'b1' == b`, 0, "a label key"],
  [`!`, 1, "a label key"],
  [`!!`, 2, "a label key"],
  [`has(foo) &&`, 11, "a label key"],
  [`has(foo) ||`, 11, "a label key"],
  [`has(foo) && || has(bar)`, 12, "a label key"],
  [`&& has(a)`, 0, "a label key"],
  // malformed operators
  [`foo == "bar" &`, 13, `"&&"`],
  [`foo == "bar" |`, 13, `"||"`],
  [`foo == "bar" & has(x)`, 13, `"&&"`],
  [`a = "b"`, 2, `"=="`],
  [`a === "b"`, 4, "a quoted string"],
  [`a ! "b"`, 2, "an operator"],
  [`a & "b"`, 2, "an operator"],
  [`a starts "x"`, 9, `"with"`],
  [`a ends "x"`, 7, `"with"`],
  [`a not "x"`, 6, `"in"`],
  [`a startswithx "x"`, 2, "an operator"],
  [`a inx {"x"}`, 2, "an operator"],
  [`a containsx "x"`, 2, "an operator"],
  [`a squiggles "x"`, 2, "an operator"],
  [`a in "x"`, 5, `"{"`],
  [`a not in "x"`, 9, `"{"`],
  [`!= "x"`, 0, "a label key"],
  [`a != ||`, 5, "a quoted string"],
  // sets
  [`a in {`, 6, `a quoted string or "}"`],
  [`a in {"x"`, 9, `"," or "}"`],
  [`a in {"x",`, 10, `a quoted string or "}"`],
  [`a in {"x",,"y"}`, 10, `a quoted string or "}"`],
  [`a in {,"x"}`, 6, `a quoted string or "}"`],
  [`a in {"x" "y"}`, 10, `"," or "}"`],
  [`a in {x}`, 6, `a quoted string or "}"`],
  [`foo in {"", ||`, 12, `a quoted string or "}"`],
  // strings
  [`a == "b`, 7, `'"' to close the string opened at position 5`],
  [`a == 'b`, 7, `"'" to close the string opened at position 5`],
  [`a == "b'`, 8, `'"' to close the string opened at position 5`],
  [`"FOO`, 0, "a label key"],
  [`a in {"x", 'y}`, 14, `"'" to close the string opened at position 11`],
  // parentheses
  [`(`, 1, "a label key"],
  [`()`, 1, "a label key"],
  [`)`, 0, "a label key"],
  [`(a == "foo"`, 11, `"&&", "||" or ")" to close "(" at position 0`],
  [`((a == "foo")`, 13, `"&&", "||" or ")" to close "(" at position 0`],
  [`a == "foo")`, 10, `"&&", "||" or the end of the selector`],
  [`(a == "foo"))`, 12, `"&&", "||" or the end of the selector`],
  [`(a == "foo" has(b))`, 12, `"&&", "||" or ")" to close "(" at position 0`],
  // has(), all(), global()
  [`has()`, 4, "a label key"],
  [`has( )`, 5, "a label key"],
  [`has(a`, 5, `")"`],
  [`has(a b)`, 6, `")"`],
  [`has("a")`, 4, "a label key"],
  [`has (a)`, 4, "an operator"],
  [`all(x)`, 4, `")"`],
  [`all ()`, 4, "an operator"],
  [`global(`, 7, `")"`],
  // trailing garbage and stray characters
  [`%`, 0, "a label key"],
  [`a == "b" && %`, 12, "a label key"],
  [`a == "b" || %`, 12, "a label key"],
  [`a == "b" c == "d"`, 9, `"&&", "||" or the end of the selector`],
  [`all() all()`, 6, `"&&", "||" or the end of the selector`],
  [`a$b == "c"`, 1, "an operator"],
  [`ünï == "c"`, 0, "a label key"],
  // only spaces and tabs are whitespace
  [`a == "b"\n`, 8, `"&&", "||" or the end of the selector`],
  [`\na == "b"`, 0, "a label key"],
  [`a\n== "b"`, 1, "an operator"],
];

describe("parseSelector errors", () => {
  for (const [input, position, expected] of errorCases) {
    it(`rejects ${JSON.stringify(input)} at position ${position}, expecting ${expected}`, () => {
      assert.throws(
        () => parseSelector(input),
        (err: unknown) => {
          assert.ok(err instanceof SelectorError, `threw ${String(err)}`);
          assert.equal(err.position, position, err.message);
          assert.ok(
            err.expected.startsWith(expected),
            `expected ${JSON.stringify(err.expected)} to start with ${JSON.stringify(expected)}`,
          );
          assert.equal(
            err.message,
            `selector ${JSON.stringify(input)} at position ${position}: expected ${err.expected}`,
          );
          return true;
        },
      );
    });
  }

  it("throws a TwillError with code Invalid that names the selector", () => {
    const err = (() => {
      try {
        parseSelector(`a == `);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.ok(err instanceof SelectorError);
    assert.ok(err instanceof TwillError);
    assert.ok(err instanceof Error);
    assert.equal(err.code, "Invalid");
    assert.equal(err.name, "SelectorError");
    assert.equal(err.selector, `a == `);
    assert.equal(err.message, `selector "a == " at position 5: expected a quoted string`);
  });
});

describe("parseSelector nesting", () => {
  it(`accepts ${MAX_SELECTOR_NESTING} nested parentheses`, () => {
    const text = "(".repeat(MAX_SELECTOR_NESTING) + "has(a)" + ")".repeat(MAX_SELECTOR_NESTING);
    assert.equal(parseSelector(text).toString(), "has(a)");
  });

  it(`rejects ${MAX_SELECTOR_NESTING + 1} nested parentheses at the innermost one`, () => {
    const n = MAX_SELECTOR_NESTING + 1;
    const text = "(".repeat(n) + "has(a)" + ")".repeat(n);
    assert.throws(
      () => parseSelector(text),
      (err: unknown) => err instanceof SelectorError && err.position === MAX_SELECTOR_NESTING,
    );
  });

  it("handles long chains of ! and && without recursion limits", () => {
    assert.equal(parseSelector("!".repeat(10001) + "has(a)").toString(), "!has(a)");
    const many = Array.from({ length: 5000 }, (_, i) => `has(k${i})`).join(" && ");
    const labels = Object.fromEntries(Array.from({ length: 5000 }, (_, i) => [`k${i}`, ""]));
    assert.equal(parseSelector(many).matches(labels), true);
  });
});
