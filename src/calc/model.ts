// The semantics that turn stored resources into what the calc graph and the
// explain function reason about: effective labels (own labels, labels
// inherited from profiles, automatic namespace/orchestrator labels and the
// namespace's labels under the `pcns.` prefix), the effective selector of a
// policy, and the effective selector of one side of a rule. Kept in one
// place so the incremental graph and the brute-force explain function can
// never disagree on them.
//
// Namespace labels: as in Calico, a namespace's labels live in the
// `labelsToApply` of the Profile named `kns.<namespace>`, already carrying
// the `pcns.` prefix (`pcns.env: prod`). Every endpoint and network set in
// the namespace inherits them (after its own labels and its own profiles'),
// together with `pcns.projectcalico.org/name: <namespace>`, so a
// namespaceSelector `env == "prod"` becomes `pcns.env == "prod"` and one
// selector over an item's labels answers both questions.
import { formatSelector, parseSelector } from "../selector/index.js";
import type { Selector, SelectorNode } from "../selector/index.js";

export const NAMESPACE_LABEL = "projectcalico.org/namespace";
export const ORCHESTRATOR_LABEL = "projectcalico.org/orchestrator";
export const SERVICE_ACCOUNT_LABEL = "projectcalico.org/serviceaccount";
export const NAME_LABEL = "projectcalico.org/name";
export const NAMESPACE_LABEL_PREFIX = "pcns.";
export const NAMESPACE_PROFILE_PREFIX = "kns.";
export const DEFAULT_TIER = "default";

export type Labels = Readonly<Record<string, string>>;

export function namespaceProfileName(namespace: string): string {
  return `${NAMESPACE_PROFILE_PREFIX}${namespace}`;
}

/**
 * The labels a namespace gives the items in it: its profile's labelsToApply
 * as they are (Calico stores them `pcns.`-prefixed) and its name.
 */
export function namespaceLabels(
  namespace: string,
  profileLabelsToApply: Labels | undefined,
): Labels {
  return { ...(profileLabelsToApply ?? {}), [NAMESPACE_LABEL_PREFIX + NAME_LABEL]: namespace };
}

export interface EffectiveLabelsInput {
  own: Labels | undefined;
  /** labelsToApply of the item's profiles, in the item's profile order (first wins). */
  inherited?: readonly (Labels | undefined)[] | undefined;
  namespace?: string | undefined;
  /** The namespace's labels (see namespaceLabels), inherited last. */
  namespaceLabels?: Labels | undefined;
  orchestrator?: string | undefined;
  serviceAccount?: string | undefined;
}

/**
 * The labels selectors see: automatic labels win, then the item's own
 * labels, then its profiles' labelsToApply in order (the first profile that
 * sets a key wins), then the namespace's labels.
 */
export function effectiveLabels(input: EffectiveLabelsInput): Record<string, string> {
  const out: Record<string, string> = {};
  if (input.namespaceLabels) assignLabels(out, input.namespaceLabels);
  const inherited = input.inherited ?? [];
  for (let i = inherited.length - 1; i >= 0; i--) assignLabels(out, inherited[i]);
  assignLabels(out, input.own);
  if (input.namespace !== undefined) out[NAMESPACE_LABEL] = input.namespace;
  if (input.orchestrator !== undefined) out[ORCHESTRATOR_LABEL] = input.orchestrator;
  if (input.serviceAccount !== undefined) out[SERVICE_ACCOUNT_LABEL] = input.serviceAccount;
  return out;
}

/**
 * Object.assign for labels, except that a label named `__proto__` becomes a
 * label (on a plain object, assigning it would call Object.prototype's setter).
 */
function assignLabels(out: Record<string, string>, labels: Labels | undefined): void {
  for (const key in labels) {
    if (!Object.hasOwn(labels, key)) continue;
    if (key === "__proto__") {
      Object.defineProperty(out, key, {
        value: labels[key],
        writable: true,
        enumerable: true,
        configurable: true,
      });
    } else {
      out[key] = labels[key]!;
    }
  }
}

/** The part of effectiveLabels' input that items in one group share. */
export interface InheritedLabelsInput {
  /** labelsToApply of the items' profiles, in profile order (first wins). */
  inherited?: readonly (Labels | undefined)[] | undefined;
  namespace?: string | undefined;
  namespaceLabels?: Labels | undefined;
  orchestrator?: string | undefined;
}

/**
 * What items sharing namespace, orchestrator and profiles inherit: the
 * namespace's labels, then their profiles' labelsToApply, then the automatic
 * namespace and orchestrator labels, in one object with no prototype (so no
 * Object.prototype name reads as a label). Used as the prototype of each
 * item's own labels (see layeredLabels).
 */
export function inheritedLabels(input: InheritedLabelsInput): Labels {
  const out = Object.create(null) as Record<string, string>;
  if (input.namespaceLabels) Object.assign(out, input.namespaceLabels);
  const inherited = input.inherited ?? [];
  for (let i = inherited.length - 1; i >= 0; i--) Object.assign(out, inherited[i] ?? {});
  if (input.namespace !== undefined) out[NAMESPACE_LABEL] = input.namespace;
  if (input.orchestrator !== undefined) out[ORCHESTRATOR_LABEL] = input.orchestrator;
  return out;
}

/**
 * The effective labels of an item as two layers: an object holding its own
 * labels (an automatic label overriding an own label of the same key, and
 * its service account) whose prototype is `inherited`, shared by every item
 * of its group (see inheritedLabels). Selectors read labels by property
 * lookup, which finds inherited labels, and `for...in` lists each label
 * once; the values are exactly effectiveLabels' for the same input. At
 * 250,000 endpoints, sharing the namespace's labels (and not copying them
 * into every endpoint) is a large part of the calc graph's memory.
 */
export function layeredLabels(
  inherited: Labels,
  own: Labels | undefined,
  automatic: {
    namespace?: string | undefined;
    orchestrator?: string | undefined;
    serviceAccount?: string | undefined;
  },
): Labels {
  const out = Object.create(inherited) as Record<string, string>;
  for (const key in own) if (Object.hasOwn(own, key)) out[key] = own[key]!;
  if (automatic.namespace !== undefined && Object.hasOwn(out, NAMESPACE_LABEL)) {
    out[NAMESPACE_LABEL] = automatic.namespace;
  }
  if (automatic.orchestrator !== undefined && Object.hasOwn(out, ORCHESTRATOR_LABEL)) {
    out[ORCHESTRATOR_LABEL] = automatic.orchestrator;
  }
  if (automatic.serviceAccount !== undefined) out[SERVICE_ACCOUNT_LABEL] = automatic.serviceAccount;
  return out;
}

/**
 * The same item labels over another inherited layer (its profiles' labels
 * changed): the own layer does not depend on the inherited one.
 */
export function relayeredLabels(labels: Labels, inherited: Labels): Labels {
  const out = Object.create(inherited) as Record<string, string>;
  for (const key of Object.keys(labels)) out[key] = labels[key]!;
  return out;
}

function prefixKeys(node: SelectorNode, prefix: string): SelectorNode {
  switch (node.kind) {
    case "all":
    case "global":
      return node;
    case "has":
      return { kind: "has", key: prefix + node.key };
    case "eq":
    case "ne":
    case "contains":
    case "startsWith":
    case "endsWith":
      return { kind: node.kind, key: prefix + node.key, value: node.value };
    case "in":
    case "notIn":
      return { kind: node.kind, key: prefix + node.key, values: node.values };
    case "not":
      return { kind: "not", operand: prefixKeys(node.operand, prefix) };
    case "and":
    case "or":
      return { kind: node.kind, operands: node.operands.map((o) => prefixKeys(o, prefix)) };
  }
}

function isAll(node: SelectorNode): boolean {
  return node.kind === "all";
}

/** `a && b && …` as one canonical selector, dropping all() terms. */
export function andSelectors(nodes: readonly SelectorNode[]): Selector {
  const terms = nodes.filter((n) => !isAll(n));
  if (terms.length === 0) return parseSelector("all()");
  if (terms.length === 1) return parseSelector(formatSelector(terms[0]!));
  return parseSelector(formatSelector({ kind: "and", operands: terms }));
}

/** The namespace-selector term over `pcns.` labels; global() means "not namespaced". */
export function namespaceSelectorTerm(namespaceSelector: string): SelectorNode {
  const ns = parseSelector(namespaceSelector);
  if (ns.ast.kind === "global") return parseSelector(`!has(${NAMESPACE_LABEL})`).ast;
  return prefixKeys(ns.ast, NAMESPACE_LABEL_PREFIX);
}

function inNamespaceTerm(namespace: string): SelectorNode {
  return { kind: "eq", key: NAMESPACE_LABEL, value: namespace };
}

/**
 * The selector of the endpoints a policy applies to. A namespaced policy
 * applies only within its namespace; a global policy's namespaceSelector
 * narrows it to endpoints in matching namespaces.
 */
export function policyEndpointSelector(policy: {
  selector?: string | undefined;
  namespace?: string | undefined;
  namespaceSelector?: string | undefined;
}): Selector {
  const terms: SelectorNode[] = [parseSelector(policy.selector ?? "").ast];
  if (policy.namespace !== undefined) terms.push(inNamespaceTerm(policy.namespace));
  else if (policy.namespaceSelector !== undefined && policy.namespaceSelector.trim() !== "") {
    terms.push(namespaceSelectorTerm(policy.namespaceSelector));
  }
  return andSelectors(terms);
}

/**
 * The selector for one side of a rule, or undefined when the rule does not
 * restrict that side by labels. In a namespaced policy a selector without a
 * namespaceSelector means "in the policy's namespace"; a namespaceSelector
 * selects namespaces (global() selects non-namespaced resources: global
 * network sets and host endpoints). Service account names narrow it further.
 */
export function ruleSideSelector(
  side: {
    selector?: string | undefined;
    namespaceSelector?: string | undefined;
    serviceAccounts?: { names?: string[] | undefined; selector?: string | undefined } | undefined;
  },
  policyNamespace: string | undefined,
): Selector | undefined {
  const hasSel = side.selector !== undefined && side.selector.trim() !== "";
  const hasNs = side.namespaceSelector !== undefined && side.namespaceSelector.trim() !== "";
  const saNames = side.serviceAccounts?.names ?? [];
  if (!hasSel && !hasNs && saNames.length === 0) return undefined;
  const terms: SelectorNode[] = [parseSelector(side.selector ?? "").ast];
  if (hasNs) terms.push(namespaceSelectorTerm(side.namespaceSelector ?? ""));
  else if (policyNamespace !== undefined) terms.push(inNamespaceTerm(policyNamespace));
  if (saNames.length > 0) {
    terms.push({ kind: "in", key: SERVICE_ACCOUNT_LABEL, values: [...new Set(saNames)].sort() });
  }
  return andSelectors(terms);
}

/** A rule side's notSelector (not scoped to a namespace, as in Calico). */
export function ruleSideNotSelector(side: {
  notSelector?: string | undefined;
}): Selector | undefined {
  if (side.notSelector === undefined || side.notSelector.trim() === "") return undefined;
  return parseSelector(side.notSelector);
}

/** Order key: defined orders first ascending, undefined last, then by name. */
export function compareOrderThenName(
  a: { order?: number | undefined; name: string },
  b: { order?: number | undefined; name: string },
): number {
  const ao = a.order ?? Number.POSITIVE_INFINITY;
  const bo = b.order ?? Number.POSITIVE_INFINITY;
  if (ao !== bo) return ao < bo ? -1 : 1;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

export const PROTOCOL_NUMBERS: Readonly<Record<string, number>> = {
  TCP: 6,
  UDP: 17,
  ICMP: 1,
  ICMPv6: 58,
  SCTP: 132,
  UDPLite: 136,
};

/** A rule's protocol (name or number) as a number. */
export function protocolNumberOf(p: string | number | undefined): number | undefined {
  if (p === undefined) return undefined;
  if (typeof p === "number") return p;
  return PROTOCOL_NUMBERS[p] ?? (/^[0-9]+$/.test(p) ? Number(p) : undefined);
}

/** 32-bit FNV-1a twice (two seeds) as 16 hex digits: short stable ids for sets. */
export function stableHash(text: string): string {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ 0x5bd1e995;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x5bd1e995) >>> 0;
    h2 ^= h2 >>> 15;
  }
  return h1.toString(16).padStart(8, "0") + (h2 >>> 0).toString(16).padStart(8, "0");
}
