// twill/selector: Calico's selector language. This is a public, stable entry
// point (package.json "exports"), imported by other programs as
// `import { parseSelector, SelectorError } from "twill/selector"`.

export type {
  AllNode,
  AndNode,
  CompareNode,
  CompareOp,
  GlobalNode,
  HasNode,
  NotNode,
  OrNode,
  SelectorLike,
  SelectorNode,
  SetNode,
} from "./ast.js";
export { compareCodePoints, selectorLabelKeys, selectorUsesGlobal, walkSelector } from "./ast.js";
export type { LabelMatcher } from "./compile-selector.js";
export { formatSelector } from "./format-selector.js";
export type { Selector } from "./parse-selector.js";
export { MAX_LABEL_KEY_LENGTH, MAX_SELECTOR_NESTING, parseSelector } from "./parse-selector.js";
export { SelectorError } from "./selector-error.js";
