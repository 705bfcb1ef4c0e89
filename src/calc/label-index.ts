// The incremental label index: keeps the relation "selector S matches item I"
// for a set of selectors and a set of labelled items (endpoints, network
// sets, namespaces), and reports every change of that relation through two
// callbacks. It never evaluates every selector against every item: adding or
// changing a selector costs in proportion to the items it could match, and
// changing an item in proportion to the selectors that could match it.
//
// How: each selector gets a *plan*, a set of label buckets that every item it
// matches must fall in, read off its tree (see planFor):
//
//   ns == "a" && app == "web"       buckets (ns,"a") or (app,"web"): the smaller
//   role in {"db","cache"}          buckets (role,"db"), (role,"cache")
//   has(tier) && x != "y"           bucket  (tier, any value)
//   a == "1" || b starts with "x"   buckets (a,"1"), (b, any value)
//   all(), !has(x), a != "b"        no plan: "unindexed", tried on every item
//
// Two reverse indexes serve the plans:
//
//   items by label     key ─► { count, value ─► item | Set<item> }  (item states)
//   selectors by plan  key ─► { any value: Set<sel>, value ─► Set<sel> }
//                      + the unindexed selectors
//
// A new selector is evaluated only against the items in its buckets (all
// items if unindexed); a changed item only against the selectors filed under
// its labels' (key, value) and key buckets, plus the unindexed ones. A plan is
// a necessary condition, never a sufficient one, so the selector's matcher
// always has the last word.
//
// Invariants:
// - `#selectors.get(s).matches` holds i exactly when `#items.get(i).matches`
//   holds s, and exactly when s's selector matches i's current labels.
// - Every selector is filed under exactly the buckets of its plan (or among
//   the unindexed), and every item under exactly its (key, value) pairs.
// - Callbacks fire once per change of the relation, after the whole
//   operation's state change is applied, so a callback that queries the index
//   sees the final state. A callback may not modify the index (it throws).

import type { Selector, SelectorNode } from "../selector/index.js";
import { TwillError } from "../util/errors.js";

export interface LabelIndexCallbacks<S extends string, I extends string> {
  /** Selector `selectorId` now matches item `itemId` (and did not before). */
  onMatchStarted(selectorId: S, itemId: I): void;
  /** Selector `selectorId` no longer matches item `itemId` (but did before). */
  onMatchStopped(selectorId: S, itemId: I): void;
}

type Labels = Readonly<Record<string, string>>;

/**
 * One conjunct-derived condition on a single label: the item has label `key`
 * with one of `values`, or, when `values` is undefined, with any value.
 */
export interface PlanBucket {
  readonly key: string;
  readonly values: readonly string[] | undefined;
}

/**
 * Buckets at least one of which holds every item the selector matches; an
 * empty list means the selector matches nothing. `undefined`: no such buckets
 * (the selector is unindexed).
 */
export type SelectorPlan = readonly PlanBucket[] | undefined;

/** Item-count estimates for choosing among alternative plans. */
export interface BucketSizes {
  /** Items carrying label `key` with value `value`. */
  itemsWithValue(key: string, value: string): number;
  /** Items carrying label `key`, with any value. */
  itemsWithKey(key: string): number;
}

/**
 * Extra cost charged to a key-only bucket (`has(k)`, `k starts with ...`)
 * over an equality bucket when choosing a plan, so that with no items yet (or
 * equal counts) equality wins: the key's population can only be larger.
 */
const KEY_BUCKET_PENALTY = 16;

function planCost(plan: readonly PlanBucket[], sizes: BucketSizes): number {
  let cost = 0;
  for (const { key, values } of plan) {
    if (values === undefined) {
      cost += sizes.itemsWithKey(key) + KEY_BUCKET_PENALTY;
    } else {
      for (const value of values) cost += sizes.itemsWithValue(key, value) + 1;
    }
  }
  return cost;
}

/** The union of two or more plans, merging buckets on the same key. */
function unionPlans(plans: readonly (readonly PlanBucket[])[]): readonly PlanBucket[] {
  // key -> undefined (any value) or the set of values
  const byKey = new Map<string, Set<string> | undefined>();
  for (const plan of plans) {
    for (const { key, values } of plan) {
      if (values === undefined) {
        byKey.set(key, undefined);
        continue;
      }
      if (byKey.has(key)) {
        const known = byKey.get(key);
        if (known !== undefined) for (const v of values) known.add(v);
      } else {
        byKey.set(key, new Set(values));
      }
    }
  }
  const out: PlanBucket[] = [];
  for (const [key, values] of byKey) out.push({ key, values: values && [...values] });
  return out;
}

/**
 * The plan for `node`, or for its negation when `negated`. A conjunction
 * takes the cheapest plan among its operands (any one is necessary); a
 * disjunction needs a plan for every operand and takes their union.
 */
function planOf(node: SelectorNode, negated: boolean, sizes: BucketSizes): SelectorPlan {
  switch (node.kind) {
    case "all":
    case "global":
      // !all() matches nothing: no buckets at all.
      return negated ? [] : undefined;
    case "has":
    case "contains":
    case "startsWith":
    case "endsWith":
      // All four are false when the label is absent; their negations are true.
      return negated ? undefined : [{ key: node.key, values: undefined }];
    case "eq":
      return negated ? undefined : [{ key: node.key, values: [node.value] }];
    case "ne":
      return negated ? [{ key: node.key, values: [node.value] }] : undefined;
    case "in":
      // `in {}` matches nothing: no buckets.
      if (negated) return undefined;
      return node.values.length === 0 ? [] : [{ key: node.key, values: node.values }];
    case "notIn":
      if (!negated) return undefined;
      return node.values.length === 0 ? [] : [{ key: node.key, values: node.values }];
    case "not":
      return planOf(node.operand, !negated, sizes);
    case "and":
    case "or": {
      // De Morgan: !(a && b) is !a || !b, and !(a || b) is !a && !b.
      const conjunction = (node.kind === "and") !== negated;
      if (conjunction) {
        let best: readonly PlanBucket[] | undefined;
        let bestCost = Infinity;
        for (const operand of node.operands) {
          const plan = planOf(operand, negated, sizes);
          if (plan === undefined) continue;
          const cost = planCost(plan, sizes);
          if (cost < bestCost) {
            best = plan;
            bestCost = cost;
          }
        }
        return best;
      }
      const plans: (readonly PlanBucket[])[] = [];
      for (const operand of node.operands) {
        const plan = planOf(operand, negated, sizes);
        if (plan === undefined) return undefined;
        plans.push(plan);
      }
      return unionPlans(plans);
    }
  }
}

/**
 * The label buckets that every item matched by `selector` falls in, chosen to
 * hold as few items as `sizes` reports (equality over key-only buckets on a
 * tie); undefined when the selector admits no such buckets and must be tried
 * on every item. Exported for tests and for explaining index behaviour.
 */
export function planFor(selector: Selector | SelectorNode, sizes: BucketSizes): SelectorPlan {
  return planOf("ast" in selector ? selector.ast : selector, false, sizes);
}

// ---- storage ----------------------------------------------------------------

interface ItemState<S extends string, I extends string> {
  readonly id: I;
  /** Our own copy, so a caller mutating its object cannot desynchronise the index. */
  labels: Labels;
  /** The label keys the item is filed under, and its position in each bucket. */
  readonly keys: string[];
  readonly slots: number[];
  /** Selectors matching this item; undefined while there are none. */
  matches: Set<S> | undefined;
}

/**
 * The items carrying one label value. Usually one item (a pod-template-hash or
 * a pod name is unique): then the item itself, which saves an array per unique
 * value across hundreds of thousands of items. Otherwise an array, each item
 * knowing its position (`slots`) so that removal is a swap with the last.
 * Arrays, not Sets: a label such as projectcalico.org/orchestrator == "k8s"
 * puts every item in one bucket, and filing 250,000 items under a dozen keys
 * is three times faster as array appends than as Set inserts.
 */
type ItemBucket<S extends string, I extends string> = ItemState<S, I> | ItemState<S, I>[];

function bucketSize(bucket: ItemBucket<string, string> | undefined): number {
  if (bucket === undefined) return 0;
  return Array.isArray(bucket) ? bucket.length : 1;
}

function forEachInBucket<S extends string, I extends string>(
  bucket: ItemBucket<S, I> | undefined,
  visit: (item: ItemState<S, I>) => void,
): void {
  if (bucket === undefined) return;
  if (!Array.isArray(bucket)) {
    visit(bucket);
    return;
  }
  for (let n = 0; n < bucket.length; n++) visit(bucket[n]!);
}

/** Sets the position of `item` in its bucket for `key`. */
function setSlot(item: ItemState<string, string>, key: string, slot: number): void {
  item.slots[item.keys.indexOf(key)] = slot;
}

interface ItemKeyEntry<S extends string, I extends string> {
  /** Items carrying this key, with any value. */
  count: number;
  readonly byValue: Map<string, ItemBucket<S, I>>;
}

interface SelectorKeyEntry<S extends string> {
  /** Selectors filed under this key with any value. */
  readonly anyValue: Set<S>;
  readonly byValue: Map<string, Set<S>>;
}

interface SelectorState<I extends string> {
  selector: Selector;
  text: string;
  plan: SelectorPlan;
  matches: Set<I>;
  /** Stamps of the item update in progress, to evaluate each selector once per update. */
  evaluatedAt: number;
  matchedAt: number;
}

const EMPTY: ReadonlySet<never> = new Set<never>();

function sameLabels(held: ItemState<string, string>, labels: Labels): boolean {
  let n = 0;
  for (const key in labels) {
    if (!Object.hasOwn(labels, key)) continue;
    if (!Object.hasOwn(held.labels, key) || held.labels[key] !== labels[key]) return false;
    n++;
  }
  return n === held.keys.length;
}

/**
 * Selector-to-item matches, maintained incrementally. Ids are opaque strings;
 * `S` and `I` let callers brand them.
 */
export class LabelIndex<S extends string = string, I extends string = string> {
  readonly #callbacks: LabelIndexCallbacks<S, I>;
  readonly #items = new Map<I, ItemState<S, I>>();
  readonly #selectors = new Map<S, SelectorState<I>>();
  readonly #itemsByKey = new Map<string, ItemKeyEntry<S, I>>();
  readonly #selectorsByKey = new Map<string, SelectorKeyEntry<S>>();
  readonly #unindexed = new Set<S>();
  #stamp = 0;
  #notifying = false;

  readonly #sizes: BucketSizes = {
    itemsWithValue: (key, value) => bucketSize(this.#itemsByKey.get(key)?.byValue.get(value)),
    itemsWithKey: (key) => this.#itemsByKey.get(key)?.count ?? 0,
  };

  constructor(callbacks: LabelIndexCallbacks<S, I>) {
    this.#callbacks = callbacks;
  }

  get itemCount(): number {
    return this.#items.size;
  }

  get selectorCount(): number {
    return this.#selectors.size;
  }

  /**
   * Items the selector currently matches; empty if the selector is unknown.
   * The set belongs to the index: read it, do not keep it across changes.
   */
  matchingItems(selectorId: S): ReadonlySet<I> {
    return this.#selectors.get(selectorId)?.matches ?? EMPTY;
  }

  /**
   * Selectors currently matching the item; empty if the item is unknown.
   * The set belongs to the index: read it, do not keep it across changes.
   */
  matchingSelectors(itemId: I): ReadonlySet<S> {
    return this.#items.get(itemId)?.matches ?? EMPTY;
  }

  /** The selector's plan (see planFor), or null if the selector is unknown. */
  selectorPlan(selectorId: S): SelectorPlan | null {
    const state = this.#selectors.get(selectorId);
    return state === undefined ? null : state.plan;
  }

  /** Adds the selector, or replaces the one with this id; reports the difference in matches. */
  updateSelector(id: S, selector: Selector): void {
    this.#checkNotNotifying("updateSelector", id);
    const text = selector.toString();
    const old = this.#selectors.get(id);
    if (old !== undefined && old.text === text) {
      // Same canonical form, same matches; keep the newer object.
      old.selector = selector;
      return;
    }
    const plan = planFor(selector, this.#sizes);
    const matches = new Set<I>();
    const matched: ItemState<S, I>[] = [];
    const consider = (item: ItemState<S, I>) => {
      if (!selector.matches(item.labels)) return;
      // A plan over several keys can offer an item more than once.
      const before = matches.size;
      matches.add(item.id);
      if (matches.size !== before) matched.push(item);
    };
    if (plan === undefined) {
      for (const item of this.#items.values()) consider(item);
    } else {
      for (const { key, values } of plan) {
        const entry = this.#itemsByKey.get(key);
        if (entry === undefined) continue;
        if (values === undefined) {
          for (const bucket of entry.byValue.values()) forEachInBucket(bucket, consider);
        } else {
          for (const value of values) forEachInBucket(entry.byValue.get(value), consider);
        }
      }
    }

    const started: I[] = [];
    const stopped: I[] = [];
    for (const item of matched) {
      if (old !== undefined && old.matches.has(item.id)) continue;
      (item.matches ??= new Set()).add(id);
      started.push(item.id);
    }
    if (old === undefined) {
      this.#selectors.set(id, { selector, text, plan, matches, evaluatedAt: 0, matchedAt: 0 });
    } else {
      for (const itemId of old.matches) {
        if (!matches.has(itemId)) {
          this.#itemMatchesDelete(itemId, id);
          stopped.push(itemId);
        }
      }
      this.#fileSelector(id, old.plan, false);
      old.selector = selector;
      old.text = text;
      old.plan = plan;
      old.matches = matches;
    }
    this.#fileSelector(id, plan, true);
    this.#notify(id, started, stopped);
  }

  /** Removes the selector, reporting every match it had as stopped. No-op if unknown. */
  deleteSelector(id: S): void {
    this.#checkNotNotifying("deleteSelector", id);
    const state = this.#selectors.get(id);
    if (state === undefined) return;
    this.#selectors.delete(id);
    this.#fileSelector(id, state.plan, false);
    const stopped = [...state.matches];
    for (const itemId of stopped) this.#itemMatchesDelete(itemId, id);
    this.#notify(id, [], stopped);
  }

  /**
   * Adds the item, or replaces its labels. `labels` is the complete label set
   * (inherited labels already merged in); the index keeps a copy. Identical
   * labels change nothing and report nothing.
   */
  updateItem(id: I, labels: Labels): void {
    this.#checkNotNotifying("updateItem", id);
    let item = this.#items.get(id);
    if (item !== undefined && sameLabels(item, labels)) return;
    const copy: Labels = { ...labels };

    if (item === undefined) {
      item = { id, labels: copy, labelCount: countKeys(copy), matches: undefined };
      this.#items.set(id, item);
      for (const key in copy) if (Object.hasOwn(copy, key)) this.#fileItem(item, key, copy[key]!);
    } else {
      const old = item.labels;
      for (const key in old) {
        if (!Object.hasOwn(old, key)) continue;
        if (!Object.hasOwn(copy, key) || copy[key] !== old[key])
          this.#unfileItem(item, key, old[key]!);
      }
      for (const key in copy) {
        if (!Object.hasOwn(copy, key)) continue;
        if (!Object.hasOwn(old, key) || copy[key] !== old[key])
          this.#fileItem(item, key, copy[key]!);
      }
      item.labels = copy;
      item.labelCount = countKeys(copy);
    }

    // Evaluate every selector that could match the new labels; each at most
    // once, marking the matching ones with this update's stamp.
    const stamp = ++this.#stamp;
    const started: S[] = [];
    const consider = (selectorId: S) => {
      const sel = this.#selectors.get(selectorId)!;
      if (sel.evaluatedAt === stamp) return;
      sel.evaluatedAt = stamp;
      if (!sel.selector.matches(copy)) return;
      sel.matchedAt = stamp;
      if (!sel.matches.has(id)) {
        sel.matches.add(id);
        started.push(selectorId);
      }
    };
    for (const key in copy) {
      if (!Object.hasOwn(copy, key)) continue;
      const entry = this.#selectorsByKey.get(key);
      if (entry === undefined) continue;
      for (const selectorId of entry.anyValue) consider(selectorId);
      const byValue = entry.byValue.get(copy[key]!);
      if (byValue !== undefined) for (const selectorId of byValue) consider(selectorId);
    }
    for (const selectorId of this.#unindexed) consider(selectorId);

    // Whatever matched before and was not marked now has stopped matching:
    // either it was evaluated and failed, or the item left all its buckets.
    const stopped: S[] = [];
    if (item.matches !== undefined) {
      for (const selectorId of item.matches) {
        const sel = this.#selectors.get(selectorId)!;
        if (sel.matchedAt !== stamp) {
          sel.matches.delete(id);
          stopped.push(selectorId);
        }
      }
      for (const selectorId of stopped) item.matches.delete(selectorId);
    }
    if (started.length > 0) {
      item.matches ??= new Set();
      for (const selectorId of started) item.matches.add(selectorId);
    }
    if (item.matches?.size === 0) item.matches = undefined;

    if (started.length === 0 && stopped.length === 0) return;
    this.#notifying = true;
    try {
      for (const selectorId of started) this.#callbacks.onMatchStarted(selectorId, id);
      for (const selectorId of stopped) this.#callbacks.onMatchStopped(selectorId, id);
    } finally {
      this.#notifying = false;
    }
  }

  /** Removes the item, reporting every match it had as stopped. No-op if unknown. */
  deleteItem(id: I): void {
    this.#checkNotNotifying("deleteItem", id);
    const item = this.#items.get(id);
    if (item === undefined) return;
    this.#items.delete(id);
    const { labels } = item;
    for (const key in labels)
      if (Object.hasOwn(labels, key)) this.#unfileItem(item, key, labels[key]!);
    if (item.matches === undefined) return;
    const stopped = [...item.matches];
    for (const selectorId of stopped) this.#selectors.get(selectorId)!.matches.delete(id);
    this.#notifying = true;
    try {
      for (const selectorId of stopped) this.#callbacks.onMatchStopped(selectorId, id);
    } finally {
      this.#notifying = false;
    }
  }

  // ---- private ----------------------------------------------------------------

  #checkNotNotifying(operation: string, id: string): void {
    if (this.#notifying) {
      throw new TwillError(
        "Internal",
        `label index: ${operation}("${id}") called from a match callback; queue it and apply it after the callback returns`,
      );
    }
  }

  #notify(selectorId: S, started: readonly I[], stopped: readonly I[]): void {
    if (started.length === 0 && stopped.length === 0) return;
    this.#notifying = true;
    try {
      for (const itemId of started) this.#callbacks.onMatchStarted(selectorId, itemId);
      for (const itemId of stopped) this.#callbacks.onMatchStopped(selectorId, itemId);
    } finally {
      this.#notifying = false;
    }
  }

  #itemMatchesDelete(itemId: I, selectorId: S): void {
    const item = this.#items.get(itemId)!;
    if (item.matches === undefined) return;
    item.matches.delete(selectorId);
    if (item.matches.size === 0) item.matches = undefined;
  }

  #fileItem(item: ItemState<S, I>, key: string, value: string): void {
    let entry = this.#itemsByKey.get(key);
    if (entry === undefined) {
      entry = { count: 0, byValue: new Map() };
      this.#itemsByKey.set(key, entry);
    }
    entry.count++;
    bucketAdd(entry.byValue, value, item);
  }

  #unfileItem(item: ItemState<S, I>, key: string, value: string): void {
    const entry = this.#itemsByKey.get(key);
    if (entry === undefined) return;
    entry.count--;
    bucketDelete(entry.byValue, value, item);
    if (entry.count === 0) this.#itemsByKey.delete(key);
  }

  /** Files (`add`) or unfiles the selector under every bucket of its plan. */
  #fileSelector(id: S, plan: SelectorPlan, add: boolean): void {
    if (plan === undefined) {
      if (add) this.#unindexed.add(id);
      else this.#unindexed.delete(id);
      return;
    }
    for (const { key, values } of plan) {
      let entry = this.#selectorsByKey.get(key);
      if (entry === undefined) {
        if (!add) continue;
        entry = { anyValue: new Set(), byValue: new Map() };
        this.#selectorsByKey.set(key, entry);
      }
      if (values === undefined) {
        if (add) entry.anyValue.add(id);
        else entry.anyValue.delete(id);
      } else {
        for (const value of values) {
          let set = entry.byValue.get(value);
          if (add) {
            if (set === undefined) entry.byValue.set(value, (set = new Set()));
            set.add(id);
          } else if (set !== undefined) {
            set.delete(id);
            if (set.size === 0) entry.byValue.delete(value);
          }
        }
      }
      if (!add && entry.anyValue.size === 0 && entry.byValue.size === 0) {
        this.#selectorsByKey.delete(key);
      }
    }
  }
}
