// Parser for Calico's selector language, behaving like Calico's own
// (libcalico-go lib/selector: tokenizer + parser): the same inputs are accepted
// and mean the same thing.
//
// Grammar (whitespace is spaces and tabs only, optional between tokens):
//
//   selector  = ws* | or
//   or        = and ("||" and)*
//   and       = operation ("&&" operation)*
//   operation = "!"* ( "(" or ")" | "has(" ws* key ws* ")" | "all(" ws* ")"
//                    | "global(" ws* ")" | key op string | key setop set )
//   op        = "==" | "!=" | "contains" | "starts" ws* "with" | "ends" ws* "with"
//   setop     = "in" | "not" ws* "in"
//   set       = "{" (string ("," string)* ","?)? "}"
//   string    = '"' [^"]* '"' | "'" [^']* "'"        (no escapes)
//   key       = [A-Za-z0-9_./-]{1,512}
//
// Points where Calico's behaviour is not obvious, followed here:
// - Operator words are recognised only right after a label key, and must end at
//   a word boundary, so a key may itself be `in`, `has`, `contains`, `all`...:
//   `in == "x"` and `has == "x"` compare labels named "in" and "has".
//   `has(`, `all(` and `global(` must be written without a space before `(`.
// - Label keys are any run of the characters above, up to 512 long; the
//   DNS-prefix/name structure that Kubernetes demands of label keys on objects
//   is not checked in selectors (Calico does not either).
// - A trailing comma in a set is allowed (`{"a",}`), and so is an empty set.
// - Leading `!`s collapse: `!!has(a)` is `has(a)`. We also drop the double
//   negation in `!(!has(a))`, which Calico keeps as a tree but prints as
//   `!!has(a)`; the two mean the same.
// - Newlines are not whitespace: Calico rejects them, so do we.
// Beyond Calico: parentheses nest at most MAX_SELECTOR_NESTING deep, so no
// input can exhaust the stack.

import type { AndNode, CompareNode, OrNode, SelectorNode, SetNode } from "./ast.js";
import { compareCodePoints } from "./ast.js";
import type { LabelMatcher } from "./compile-selector.js";
import { compileSelector } from "./compile-selector.js";
import { formatSelector } from "./format-selector.js";
import { SelectorError } from "./selector-error.js";

/** Longest label key a selector may name, as in Calico. */
export const MAX_LABEL_KEY_LENGTH = 512;

/** Deepest nesting of parentheses accepted (Calico has no limit; no real selector comes near). */
export const MAX_SELECTOR_NESTING = 200;

/** A parsed selector. Immutable; safe to share and cache. */
export interface Selector {
  /** The tree; see ast.ts for its invariants. */
  readonly ast: SelectorNode;
  /** True when the labels satisfy the selector, with Calico's semantics. */
  matches(labels: Readonly<Record<string, string>>): boolean;
  /** The canonical form (see format-selector.ts); parsing it gives it back unchanged. */
  toString(): string;
}

const EXPECT_OPERAND = 'a label key, "!", "(", "has(", "all()" or "global()"';
const EXPECT_OPERATOR =
  'an operator ("==", "!=", "in", "not in", "contains", "starts with" or "ends with")';
const EXPECT_STRING = "a quoted string";

const SPACE = 0x20;
const TAB = 0x09;
const DQUOTE = 0x22;
const SQUOTE = 0x27;
const LPAREN = 0x28;
const RPAREN = 0x29;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const COMMA = 0x2c;
const BANG = 0x21;
const EQUALS = 0x3d;
const AMP = 0x26;
const PIPE = 0x7c;

/** KEY_CHAR[c] is 1 when char code c may appear in a label key. */
const KEY_CHAR = new Uint8Array(128);
for (const ch of "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-") {
  KEY_CHAR[ch.charCodeAt(0)] = 1;
}

function isKeyChar(c: number): boolean {
  return c < 128 && KEY_CHAR[c] === 1;
}

const ALL_NODE: SelectorNode = Object.freeze({ kind: "all" });
const GLOBAL_NODE: SelectorNode = Object.freeze({ kind: "global" });

class Parser {
  readonly text: string;
  pos = 0;
  depth = 0;

  constructor(text: string) {
    this.text = text;
  }

  fail(position: number, expected: string): never {
    throw new SelectorError(this.text, position, expected);
  }

  /** The char code at the cursor, or NaN at the end. */
  peek(offset = 0): number {
    return this.text.charCodeAt(this.pos + offset);
  }

  skipSpace(): void {
    const text = this.text;
    let pos = this.pos;
    for (let c = text.charCodeAt(pos); c === SPACE || c === TAB; c = text.charCodeAt(++pos));
    this.pos = pos;
  }

  /** After skipping space: true and advance past `word` when it is next. */
  eat(word: string): boolean {
    if (this.text.startsWith(word, this.pos)) {
      this.pos += word.length;
      return true;
    }
    return false;
  }

  atWordBoundary(): boolean {
    return !isKeyChar(this.peek());
  }

  parseSelector(): SelectorNode {
    this.skipSpace();
    if (this.pos === this.text.length) return ALL_NODE;
    const node = this.parseOr();
    // parseOr stops only before something that is not "&&" or "||".
    if (this.pos !== this.text.length) this.fail(this.pos, '"&&", "||" or the end of the selector');
    return node;
  }

  parseOr(): SelectorNode {
    const first = this.parseAnd();
    let operands: SelectorNode[] | undefined;
    for (;;) {
      this.skipSpace();
      if (this.peek() !== PIPE) break;
      if (this.peek(1) !== PIPE) this.fail(this.pos, '"||"');
      this.pos += 2;
      (operands ??= [first]).push(this.parseAnd());
    }
    if (operands === undefined) return first;
    const node: OrNode = { kind: "or", operands: Object.freeze(operands) };
    return Object.freeze(node);
  }

  parseAnd(): SelectorNode {
    const first = this.parseOperation();
    let operands: SelectorNode[] | undefined;
    for (;;) {
      this.skipSpace();
      if (this.peek() !== AMP) break;
      if (this.peek(1) !== AMP) this.fail(this.pos, '"&&"');
      this.pos += 2;
      (operands ??= [first]).push(this.parseOperation());
    }
    if (operands === undefined) return first;
    const node: AndNode = { kind: "and", operands: Object.freeze(operands) };
    return Object.freeze(node);
  }

  parseOperation(): SelectorNode {
    this.skipSpace();
    let negated = false;
    // "!=" is an operator, never a negation (as in Calico's tokenizer).
    while (this.peek() === BANG && this.peek(1) !== EQUALS) {
      negated = !negated;
      this.pos++;
      this.skipSpace();
    }
    const node = this.parseOperand();
    if (!negated) return node;
    if (node.kind === "not") return node.operand;
    return Object.freeze({ kind: "not", operand: node });
  }

  parseOperand(): SelectorNode {
    const c = this.peek();
    if (c === LPAREN) {
      const open = this.pos;
      if (this.depth >= MAX_SELECTOR_NESTING) {
        this.fail(open, `at most ${MAX_SELECTOR_NESTING} nested parentheses`);
      }
      this.pos++;
      this.depth++;
      const node = this.parseOr();
      if (this.peek() !== RPAREN)
        this.fail(this.pos, `"&&", "||" or ")" to close "(" at position ${open}`);
      this.pos++;
      this.depth--;
      return node;
    }
    if (this.eat("has(")) {
      this.skipSpace();
      const key = this.parseKey();
      this.skipSpace();
      if (!this.eat(")")) this.fail(this.pos, '")"');
      return Object.freeze({ kind: "has", key });
    }
    if (this.eat("all(")) {
      this.skipSpace();
      if (!this.eat(")")) this.fail(this.pos, '")"');
      return ALL_NODE;
    }
    if (this.eat("global(")) {
      this.skipSpace();
      if (!this.eat(")")) this.fail(this.pos, '")"');
      return GLOBAL_NODE;
    }
    if (isKeyChar(c)) {
      const key = this.parseKey();
      this.skipSpace();
      return this.parseComparison(key);
    }
    return this.fail(this.pos, EXPECT_OPERAND);
  }

  parseKey(): string {
    const text = this.text;
    const start = this.pos;
    let pos = start;
    while (isKeyChar(text.charCodeAt(pos))) pos++;
    if (pos === start) this.fail(start, "a label key");
    if (pos - start > MAX_LABEL_KEY_LENGTH) {
      this.fail(
        start,
        `a label key of at most ${MAX_LABEL_KEY_LENGTH} characters, not ${pos - start}`,
      );
    }
    this.pos = pos;
    return text.slice(start, pos);
  }

  /**
   * A two-word operator such as `starts with`; the words may touch
   * (`startswith`) or be spaced, as in Calico.
   */
  eatTwoWords(first: string, second: string): boolean {
    const start = this.pos;
    if (!this.text.startsWith(first, start)) return false;
    this.pos = start + first.length;
    this.skipSpace();
    const secondAt = this.pos;
    if (this.eat(second) && this.atWordBoundary()) return true;
    // After a label only an operator may follow, so "starts" without "with"
    // cannot be anything else: say what is missing, where.
    if (!this.text.startsWith(second, secondAt)) return this.fail(secondAt, `"${second}"`);
    return this.fail(start, EXPECT_OPERATOR);
  }

  eatWord(word: string): boolean {
    const start = this.pos;
    if (this.eat(word) && this.atWordBoundary()) return true;
    this.pos = start;
    return false;
  }

  parseComparison(key: string): SelectorNode {
    const c = this.peek();
    let kind: CompareNode["kind"] | SetNode["kind"];
    if (c === EQUALS) {
      if (this.peek(1) !== EQUALS) this.fail(this.pos, '"=="');
      this.pos += 2;
      kind = "eq";
    } else if (c === BANG && this.peek(1) === EQUALS) {
      this.pos += 2;
      kind = "ne";
    } else if (this.eatWord("contains")) {
      kind = "contains";
    } else if (this.eatTwoWords("starts", "with")) {
      kind = "startsWith";
    } else if (this.eatTwoWords("ends", "with")) {
      kind = "endsWith";
    } else if (this.eatTwoWords("not", "in")) {
      kind = "notIn";
    } else if (this.eatWord("in")) {
      kind = "in";
    } else {
      return this.fail(this.pos, EXPECT_OPERATOR);
    }
    this.skipSpace();
    if (kind === "in" || kind === "notIn") {
      const values = this.parseSet();
      const node: SetNode = { kind, key, values };
      return Object.freeze(node);
    }
    const node: CompareNode = { kind, key, value: this.parseString(EXPECT_STRING) };
    return Object.freeze(node);
  }

  parseString(expected: string): string {
    const open = this.pos;
    const q = this.peek();
    if (q !== DQUOTE && q !== SQUOTE) this.fail(open, expected);
    const close = this.text.indexOf(q === DQUOTE ? '"' : "'", open + 1);
    if (close < 0) {
      this.fail(
        this.text.length,
        `${q === DQUOTE ? `'"'` : `"'"`} to close the string opened at position ${open}`,
      );
    }
    this.pos = close + 1;
    return this.text.slice(open + 1, close);
  }

  parseSet(): readonly string[] {
    if (this.peek() !== LBRACE) this.fail(this.pos, '"{"');
    this.pos++;
    const values: string[] = [];
    let wantValue = true; // after "{" or ",": a value or "}"; after a value: "," or "}"
    for (;;) {
      this.skipSpace();
      const c = this.peek();
      if (c === RBRACE) break;
      if (wantValue && (c === DQUOTE || c === SQUOTE)) {
        values.push(this.parseString(EXPECT_STRING));
        wantValue = false;
      } else if (!wantValue && c === COMMA) {
        this.pos++;
        wantValue = true;
      } else {
        this.fail(this.pos, wantValue ? 'a quoted string or "}"' : '"," or "}"');
      }
    }
    this.pos++;
    return Object.freeze(sortUnique(values));
  }
}

function sortUnique(values: string[]): string[] {
  if (values.length < 2) return values;
  values.sort(compareCodePoints);
  let n = 1;
  for (let i = 1; i < values.length; i++) {
    if (values[i] !== values[n - 1]) values[n++] = values[i]!;
  }
  values.length = n;
  return values;
}

class ParsedSelector implements Selector {
  readonly ast: SelectorNode;
  readonly matches: LabelMatcher;
  #text: string | undefined;

  constructor(ast: SelectorNode) {
    this.ast = ast;
    this.matches = compileSelector(ast);
  }

  toString(): string {
    return (this.#text ??= formatSelector(this.ast));
  }
}

/**
 * Parses a Calico selector. The empty or blank selector is `all()`.
 * Throws SelectorError, with the position and what was expected there, on
 * any invalid input.
 */
export function parseSelector(text: string): Selector {
  const ast = new Parser(text).parseSelector();
  return Object.freeze(new ParsedSelector(ast));
}
