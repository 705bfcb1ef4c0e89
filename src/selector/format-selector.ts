// The canonical text of a selector: the same string Calico's Go parser
// prints for the same selector (its String()), so a selector's canonical form,
// and any hash of it, agree between twill and Calico.
//
// The canonical form:
// - `all()` for the empty selector and for `all()`; `global()`; `has(key)`;
// - `key == "v"`, `key != "v"`, `key contains "v"`, `key starts with "v"`,
//   `key ends with "v"`: one space either side of the operator;
// - `key in {"a", "b"}` and `key not in {"a", "b"}`: values sorted by code
//   point and deduplicated, separated by ", "; an empty set is `{}`;
// - values in double quotes, or in single quotes when they contain a double
//   quote (the language has no escapes, so no value holds both);
// - `!` directly before its operand, no space: `!has(a)`, `!a == "b"`,
//   `!(a == "b" && c == "d")`;
// - every `&&` and `||` group in parentheses, the outermost too:
//   `(a == "b" && (c == "d" || has(e)))`.
// Parsing the canonical form gives the same tree, hence the same text. (One
// difference from Calico: our parser removes double negation, `!(!has(a))`,
// so its canonical form is `has(a)` where Calico prints `!!has(a)`, a string
// that Calico itself then reads back as `has(a)`.)

import type { SelectorNode } from "./ast.js";

function quote(value: string): string {
  return value.includes('"') ? `'${value}'` : `"${value}"`;
}

const OPERATOR_TEXT = {
  eq: " == ",
  ne: " != ",
  contains: " contains ",
  startsWith: " starts with ",
  endsWith: " ends with ",
} as const;

/** Renders a tree in Calico's canonical form (see the file header). */
export function formatSelector(node: SelectorNode): string {
  switch (node.kind) {
    case "all":
      return "all()";
    case "global":
      return "global()";
    case "has":
      return `has(${node.key})`;
    case "eq":
    case "ne":
    case "contains":
    case "startsWith":
    case "endsWith":
      return node.key + OPERATOR_TEXT[node.kind] + quote(node.value);
    case "in":
    case "notIn":
      return `${node.key} ${node.kind === "in" ? "in" : "not in"} {${node.values.map(quote).join(", ")}}`;
    case "not":
      return "!" + formatSelector(node.operand);
    case "and":
      return "(" + node.operands.map(formatSelector).join(" && ") + ")";
    case "or":
      return "(" + node.operands.map(formatSelector).join(" || ") + ")";
  }
}
