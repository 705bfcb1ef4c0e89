// The syntax tree of a parsed Calico selector, and small read-only walks over
// it. Later stages (the label index, IP-set computation, validation) switch
// over `kind` exhaustively, so adding a node kind is a compile error wherever
// it is not yet handled.
//
// Invariants of a tree made by parseSelector:
// - `and` / `or` have at least two operands (a single operand is unwrapped);
// - a `not` never wraps another `not` (double negation is removed);
// - `in` / `not in` values are sorted by code point and deduplicated;
// - every node is frozen.

/** Matches every label set: `all()`, and the empty selector. */
export interface AllNode {
  readonly kind: "all";
}

/** `global()`: matches every label set; calc gives it its namespace meaning. */
export interface GlobalNode {
  readonly kind: "global";
}

/** `has(key)`: the label is present, with any value. */
export interface HasNode {
  readonly kind: "has";
  readonly key: string;
}

/** The comparison operators that take one quoted value. */
export type CompareOp = "eq" | "ne" | "contains" | "startsWith" | "endsWith";

/**
 * `key == "v"`, `key != "v"`, `key contains "v"`, `key starts with "v"`,
 * `key ends with "v"`. Only `ne` is true when the label is absent.
 */
export interface CompareNode {
  readonly kind: CompareOp;
  readonly key: string;
  readonly value: string;
}

/** `key in {...}` and `key not in {...}`; only `notIn` is true when the label is absent. */
export interface SetNode {
  readonly kind: "in" | "notIn";
  readonly key: string;
  /** Sorted by code point (Calico's byte order), without duplicates; may be empty. */
  readonly values: readonly string[];
}

export interface NotNode {
  readonly kind: "not";
  readonly operand: SelectorNode;
}

export interface AndNode {
  readonly kind: "and";
  /** Two or more. */
  readonly operands: readonly SelectorNode[];
}

export interface OrNode {
  readonly kind: "or";
  /** Two or more. */
  readonly operands: readonly SelectorNode[];
}

export type SelectorNode =
  AllNode | GlobalNode | HasNode | CompareNode | SetNode | NotNode | AndNode | OrNode;

/** Anything that carries a tree: a parsed Selector, or a node itself. */
export type SelectorLike = SelectorNode | { readonly ast: SelectorNode };

function rootOf(sel: SelectorLike): SelectorNode {
  return "ast" in sel ? sel.ast : sel;
}

/** Calls `visit` on every node of the tree, parents before children. */
export function walkSelector(sel: SelectorLike, visit: (node: SelectorNode) => void): void {
  const stack: SelectorNode[] = [rootOf(sel)];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    visit(node);
    switch (node.kind) {
      case "not":
        stack.push(node.operand);
        break;
      case "and":
      case "or":
        for (let i = node.operands.length - 1; i >= 0; i--) stack.push(node.operands[i]!);
        break;
      default:
        break;
    }
  }
}

/**
 * True when `global()` occurs anywhere in the selector. Calico accepts
 * `global()` only in namespace selectors; validation uses this to reject it
 * elsewhere.
 */
export function selectorUsesGlobal(sel: SelectorLike): boolean {
  let found = false;
  walkSelector(sel, (node) => {
    if (node.kind === "global") found = true;
  });
  return found;
}

/** The label keys the selector looks at, sorted and without duplicates. */
export function selectorLabelKeys(sel: SelectorLike): string[] {
  const keys = new Set<string>();
  walkSelector(sel, (node) => {
    if ("key" in node) keys.add(node.key);
  });
  return [...keys].sort(compareCodePoints);
}

/**
 * Orders strings by Unicode code point, which is the byte order of their
 * UTF-8 encoding: the order Go's string comparison, and so Calico's canonical
 * form, uses. Plain `<` on JS strings compares UTF-16 code units and differs
 * only when a surrogate pair meets a character in U+E000..U+FFFF.
 */
export function compareCodePoints(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xSurrogate = x >= 0xd800 && x <= 0xdfff;
    const ySurrogate = y >= 0xd800 && y <= 0xdfff;
    if (xSurrogate !== ySurrogate) {
      // A surrogate (a code point above U+FFFF) sorts after any BMP character
      // in U+E000..U+FFFF, though its code unit is smaller.
      const other = xSurrogate ? y : x;
      if (other >= 0xe000) return xSurrogate ? 1 : -1;
    }
    return x - y;
  }
  return a.length - b.length;
}
