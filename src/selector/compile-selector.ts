// Turns a selector tree into one JavaScript closure per node, so matching is a
// few property reads and string comparisons: no tree walk, no regex, no
// allocation per match.
//
// Label lookup is `labels[key]`. On a plain object an absent key can still
// find something on Object.prototype (`constructor`, `__proto__`, ...); those
// are never strings, so a label counts as present only when its value is a
// string. `==`, `in` and friends get that for free by comparing against
// strings; `has`, `contains`, `starts with` and `ends with` check the type.

import type { SelectorNode } from "./ast.js";

export type LabelMatcher = (labels: Readonly<Record<string, string>>) => boolean;

const always: LabelMatcher = () => true;

/** Up to this many values, `in` compares one by one; above it, a Set is faster. */
const SMALL_SET = 4;

function compileSet(key: string, values: readonly string[], negate: boolean): LabelMatcher {
  const [a, b, c, d] = values;
  let inSet: LabelMatcher;
  switch (values.length) {
    case 0:
      inSet = () => false;
      break;
    case 1:
      inSet = (labels) => labels[key] === a;
      break;
    case 2:
      inSet = (labels) => {
        const v = labels[key];
        return v === a || v === b;
      };
      break;
    case 3:
      inSet = (labels) => {
        const v = labels[key];
        return v === a || v === b || v === c;
      };
      break;
    case SMALL_SET:
      inSet = (labels) => {
        const v = labels[key];
        return v === a || v === b || v === c || v === d;
      };
      break;
    default: {
      const set = new Set(values);
      inSet = (labels) => {
        const v = labels[key];
        return v !== undefined && set.has(v);
      };
    }
  }
  if (!negate) return inSet;
  return (labels) => !inSet(labels);
}

function compileAll(operands: readonly LabelMatcher[]): LabelMatcher {
  const [a, b, c] = operands;
  if (operands.length === 2) return (labels) => a!(labels) && b!(labels);
  if (operands.length === 3) return (labels) => a!(labels) && b!(labels) && c!(labels);
  return (labels) => {
    for (let i = 0; i < operands.length; i++) if (!operands[i]!(labels)) return false;
    return true;
  };
}

function compileAny(operands: readonly LabelMatcher[]): LabelMatcher {
  const [a, b, c] = operands;
  if (operands.length === 2) return (labels) => a!(labels) || b!(labels);
  if (operands.length === 3) return (labels) => a!(labels) || b!(labels) || c!(labels);
  return (labels) => {
    for (let i = 0; i < operands.length; i++) if (operands[i]!(labels)) return true;
    return false;
  };
}

/** Compiles a tree into a matcher with the semantics of Calico's Evaluate. */
export function compileSelector(node: SelectorNode): LabelMatcher {
  switch (node.kind) {
    case "all":
    case "global":
      return always;
    case "has": {
      const { key } = node;
      return (labels) => typeof labels[key] === "string";
    }
    case "eq": {
      const { key, value } = node;
      return (labels) => labels[key] === value;
    }
    case "ne": {
      // True when the label is absent.
      const { key, value } = node;
      return (labels) => labels[key] !== value;
    }
    case "contains": {
      const { key, value } = node;
      return (labels) => {
        const v = labels[key];
        return typeof v === "string" && v.includes(value);
      };
    }
    case "startsWith": {
      const { key, value } = node;
      return (labels) => {
        const v = labels[key];
        return typeof v === "string" && v.startsWith(value);
      };
    }
    case "endsWith": {
      const { key, value } = node;
      return (labels) => {
        const v = labels[key];
        return typeof v === "string" && v.endsWith(value);
      };
    }
    case "in":
      return compileSet(node.key, node.values, false);
    case "notIn":
      // True when the label is absent.
      return compileSet(node.key, node.values, true);
    case "not": {
      const operand = compileSelector(node.operand);
      return (labels) => !operand(labels);
    }
    case "and":
      return compileAll(node.operands.map(compileSelector));
    case "or":
      return compileAny(node.operands.map(compileSelector));
  }
}
