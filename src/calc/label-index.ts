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
// Both reverse indexes live in one column per label key that some selector
// reads (any key of its tree, not only its plan's):
//
//   column  key ─► items by value: value ─► item | item[]   (+ count)
//                  selectors by plan: any value ─► Set<sel>, value ─► Set<sel>
//   + the unindexed selectors
//
// A new selector is evaluated only against the items in its buckets (all
// items if unindexed); a changed item only against the selectors filed under
// its values' buckets and its keys' any-value buckets, plus the unindexed
// ones. A plan is a necessary condition, never a sufficient one, so the
// selector's matcher always has the last word. Plans are chosen when a
// selector is added, from the bucket sizes then; they stay correct as items
// change, only perhaps no longer the cheapest.
//
// Keys no selector reads are not indexed at all: at 250,000 endpoints a
// unique pod-template-hash alone would cost a 250,000-entry map. A selector
// reading a new key has the index file every item under it then (one pass
// over the items); the last selector reading a key drops its column. Items'
// labels are held by reference, never copied (the calc graph shares one
// namespace's inherited labels between its endpoints, see model.ts), so a key
// that becomes read later is found in them.
//
// Both indexes and the match relation hold state objects, not ids, so the
// hot paths do no lookups by id. Each match is recorded twice: the selector's
// Set of item ids (what matchingItems returns, e.g. an IP set's members) and
// the item's small list of selector states.
//
// Invariants:
// - A selector's `matches` holds item i exactly when i's `matches` holds the
//   selector, and exactly when the selector matches i's current labels.
// - A column exists exactly for the keys some selector's tree reads, and
//   holds every item carrying that key, in the bucket of its value, at the
//   position the item's `slots` record for the column.
// - Every selector is filed under exactly the buckets of its plan (or among
//   the unindexed); a plan uses only keys its selector reads.
// - Callbacks fire once per change of the relation, synchronously, after the
//   whole operation's state change is applied, so a callback that queries the
//   index sees the final state. Started before stopped within one operation.
//   A callback may not modify the index (that throws). A callback that throws
//   leaves the index consistent, but the operation's remaining callbacks
//   unsent.

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

/** The distinct label keys a selector tree reads, in first-seen order. */
function selectorKeys(node: SelectorNode): string[] {
  const keys = new Set<string>();
  const visit = (n: SelectorNode): void => {
    switch (n.kind) {
      case "all":
      case "global":
        return;
      case "not":
        visit(n.operand);
        return;
      case "and":
      case "or":
        for (const o of n.operands) visit(o);
        return;
      default:
        keys.add(n.key);
    }
  };
  visit(node);
  return [...keys];
}

/**
 * The value of label `key`, or undefined when absent. Only strings count: on a
 * plain object an absent `constructor` or `__proto__` finds Object.prototype's.
 * Inherited properties count (see model.ts: items share their namespace's
 * labels through the prototype chain).
 */
function labelValue(labels: Labels, key: string): string | undefined {
  const v = labels[key];
  return typeof v === "string" ? v : undefined;
}

interface ItemState<S extends string, I extends string> {
  readonly id: I;
  /** The caller's object, by reference: callers pass a new object for new labels. */
  labels: Labels;
  /**
   * Per key column (KeyColumn.column): the item's position in the bucket of
   * its value, or -1 when it lacks the key. May be shorter than the column
   * list: missing entries are -1. Exactly sized, as V8 would give an array
   * grown by push room for 16 more.
   */
  slots: number[];
  /** Selectors matching this item; undefined while there are none. */
  matches: SmallSet<SelectorState<S, I>> | undefined;
}

interface SelectorState<S extends string, I extends string> {
  readonly id: S;
  selector: Selector;
  /** Canonical text: a replacement with the same text changes nothing. */
  text: string;
  /** The label keys its tree reads (see selectorKeys): each holds a column. */
  keys: readonly string[];
  plan: SelectorPlan;
  matches: Set<I>;
  /**
   * Stamps of the item update in progress (see updateItem): the selector
   * matched the item before it, has been evaluated in it, matched in it.
   */
  matchedBeforeAt: number;
  evaluatedAt: number;
  matchedAt: number;
}

/**
 * A set that is usually small: the selectors matching one item, a handful in
 * a real cluster but in principle thousands. An array (appending is several
 * times cheaper than a Set insert, or than copying into an exactly sized
 * array, which matters across 250,000 items) until it holds SMALL_SET_MAX, a
 * Set from then on.
 */
type SmallSet<T> = T[] | Set<T>;

const SMALL_SET_MAX = 32;

/** Adds `x`, which the caller knows is not in `set`. */
function smallSetAdd<T>(set: SmallSet<T> | undefined, x: T): SmallSet<T> {
  if (set === undefined) return [x];
  if (!Array.isArray(set)) return set.add(x);
  if (set.length >= SMALL_SET_MAX) return new Set(set).add(x);
  set.push(x);
  return set;
}

/** Removes `x`; undefined when nothing is left. */
function smallSetDelete<T>(set: SmallSet<T> | undefined, x: T): SmallSet<T> | undefined {
  if (set === undefined) return undefined;
  if (Array.isArray(set)) {
    const at = set.indexOf(x);
    if (at < 0) return set;
    const last = set.pop()!;
    if (at < set.length) set[at] = last;
    return set.length === 0 ? undefined : set;
  }
  set.delete(x);
  return set.size === 0 ? undefined : set;
}

/**
 * The items carrying one label value. Usually one item when values are
 * unique: then the item itself, which saves an array per value. Otherwise an
 * array, each item knowing its position (`slots`) so that removal is a swap
 * with the last. Arrays, not Sets: a label such as
 * projectcalico.org/orchestrator == "k8s" puts every item in one bucket, and
 * filing 250,000 items is three times faster as array appends than as Set
 * inserts, at a third of the memory.
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

function slotOf(item: ItemState<string, string>, column: number): number {
  return column < item.slots.length ? item.slots[column]! : -1;
}

function setSlot(item: ItemState<string, string>, column: number, slot: number): void {
  const slots = item.slots;
  if (column < slots.length) {
    slots[column] = slot;
    return;
  }
  // Grown to exactly the size needed (see ItemState.slots).
  const grown = new Array<number>(column + 1);
  for (let c = 0; c < grown.length; c++) grown[c] = c < slots.length ? slots[c]! : -1;
  grown[column] = slot;
  item.slots = grown;
}

/** No key filed yet: shared, never written (setSlot replaces it). */
const NO_SLOTS: number[] = [];

/**
 * One label key some selector reads: the items by value, and the selectors
 * filed under the key. Exists while at least one selector reads the key.
 */
interface KeyColumn<S extends string, I extends string> {
  readonly key: string;
  /** Position in the column list, and in every item's `slots`. */
  readonly column: number;
  /** Selectors whose tree reads the key. */
  readers: number;
  /** Items carrying this key, with any value. */
  count: number;
  readonly items: Map<string, ItemBucket<S, I>>;
  /** Selectors filed under the key with any value. */
  readonly anyValue: Set<SelectorState<S, I>>;
  readonly selectors: Map<string, Set<SelectorState<S, I>>>;
}

const EMPTY: ReadonlySet<never> = new Set<never>();

function samePlan(a: SelectorPlan, b: SelectorPlan): boolean {
  if (a === undefined || b === undefined) return a === b;
  if (a.length !== b.length) return false;
  return a.every((x, i) => {
    const y = b[i]!;
    if (x.key !== y.key) return false;
    if (x.values === undefined || y.values === undefined) return x.values === y.values;
    return x.values.length === y.values.length && x.values.every((v, j) => v === y.values![j]);
  });
}

/**
 * Selector-to-item matches, maintained incrementally. Ids are opaque strings;
 * `S` and `I` let callers brand them.
 */
export class LabelIndex<S extends string = string, I extends string = string> {
  readonly #callbacks: LabelIndexCallbacks<S, I>;
  readonly #items = new Map<I, ItemState<S, I>>();
  readonly #selectors = new Map<S, SelectorState<S, I>>();
  readonly #keys = new Map<string, KeyColumn<S, I>>();
  /** By column number; undefined where a column was dropped (reused first). */
  readonly #columns: (KeyColumn<S, I> | undefined)[] = [];
  readonly #freeColumns: number[] = [];
  /** Scratch for updateItem: the item's value in each column. */
  readonly #values: (string | undefined)[] = [];
  readonly #unindexed = new Set<SelectorState<S, I>>();
  #stamp = 0;
  #notifying = false;

  readonly #sizes: BucketSizes = {
    itemsWithValue: (key, value) => bucketSize(this.#keys.get(key)?.items.get(value)),
    itemsWithKey: (key) => this.#keys.get(key)?.count ?? 0,
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

  /** The label keys indexed now: those some selector reads, sorted. */
  indexedKeys(): string[] {
    return [...this.#keys.keys()].sort();
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
   * A new set each call, which the caller may keep (the index holds these in
   * a more compact form); O(matches).
   */
  matchingSelectors(itemId: I): ReadonlySet<S> {
    const matches = this.#items.get(itemId)?.matches;
    if (matches === undefined) return EMPTY;
    const ids = new Set<S>();
    for (const sel of matches) ids.add(sel.id);
    return ids;
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
    let sel = this.#selectors.get(id);
    if (sel !== undefined && sel.text === text) {
      // Same canonical form, same matches; keep the newer object.
      sel.selector = selector;
      return;
    }

    // The new selector's keys are indexed before it is planned (so the plan
    // sees their real sizes), the old one's released after it is unfiled.
    const keys = selectorKeys(selector.ast);
    for (const key of keys) this.#acquireKey(key);
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
        const column = this.#keys.get(key)!;
        if (values === undefined) {
          for (const bucket of column.items.values()) forEachInBucket(bucket, consider);
        } else {
          for (const value of values) forEachInBucket(column.items.get(value), consider);
        }
      }
    }

    const oldMatches = sel?.matches;
    const stopped: I[] = [];
    if (sel === undefined) {
      sel = {
        id,
        selector,
        text,
        keys,
        plan,
        matches,
        matchedBeforeAt: 0,
        evaluatedAt: 0,
        matchedAt: 0,
      };
      this.#selectors.set(id, sel);
      this.#fileSelector(sel, true);
    } else {
      for (const itemId of sel.matches) {
        if (!matches.has(itemId)) {
          this.#itemMatchesDelete(itemId, sel);
          stopped.push(itemId);
        }
      }
      this.#fileSelector(sel, false);
      const oldKeys = sel.keys;
      sel.selector = selector;
      sel.text = text;
      sel.keys = keys;
      sel.plan = plan;
      sel.matches = matches;
      this.#fileSelector(sel, true);
      for (const key of oldKeys) this.#releaseKey(key);
    }
    const started: I[] = [];
    for (const item of matched) {
      if (oldMatches?.has(item.id) === true) continue;
      item.matches = smallSetAdd(item.matches, sel);
      started.push(item.id);
    }
    this.#notify(id, started, stopped);
  }

  /**
   * Re-files every selector under the plan the current bucket sizes give.
   * A plan chosen while the index was filling (during a snapshot, selectors
   * often arrive before most items) can be far from the cheapest; replanning
   * changes which candidates later updates consider, never the matches, so
   * it fires no callback. Returns how many selectors moved.
   */
  replan(): number {
    this.#checkNotNotifying("replan", "");
    let moved = 0;
    for (const sel of this.#selectors.values()) {
      const plan = planFor(sel.selector, this.#sizes);
      if (samePlan(plan, sel.plan)) continue;
      this.#fileSelector(sel, false);
      sel.plan = plan;
      this.#fileSelector(sel, true);
      moved++;
    }
    return moved;
  }

  /** Removes the selector, reporting every match it had as stopped. No-op if unknown. */
  deleteSelector(id: S): void {
    this.#checkNotNotifying("deleteSelector", id);
    const sel = this.#selectors.get(id);
    if (sel === undefined) return;
    this.#selectors.delete(id);
    this.#fileSelector(sel, false);
    for (const key of sel.keys) this.#releaseKey(key);
    const stopped = [...sel.matches];
    for (const itemId of stopped) this.#itemMatchesDelete(itemId, sel);
    this.#notify(id, [], stopped);
  }

  /**
   * Adds the item, or replaces its labels. `labels` is the complete label set
   * (inherited labels already merged in, or inherited through the prototype
   * chain). The index keeps the object itself, not a copy: pass a new object
   * for new labels, never change one already given. Labels no selector reads
   * are not looked at; a change confined to them reports nothing and costs
   * no evaluation.
   */
  updateItem(id: I, labels: Labels): void {
    this.#checkNotNotifying("updateItem", id);
    const columns = this.#columns;
    // The item's value for each column, read once (a lookup by a varying
    // key is the costly part of filing an item).
    const values = this.#values;
    let item = this.#items.get(id);
    if (item === undefined) {
      item = { id, labels, slots: NO_SLOTS, matches: undefined };
      this.#items.set(id, item);
      let last = -1;
      for (let c = 0; c < columns.length; c++) {
        const column = columns[c];
        const value = column === undefined ? undefined : labelValue(labels, column.key);
        values[c] = value;
        if (value !== undefined) last = c;
      }
      if (last >= 0) item.slots = new Array<number>(last + 1).fill(-1);
      for (let c = 0; c <= last; c++) {
        const value = values[c];
        if (value !== undefined) this.#fileItem(item, columns[c]!, value);
      }
    } else {
      const old = item.labels;
      item.labels = labels;
      if (old === labels) return;
      let changed = false;
      for (let c = 0; c < columns.length; c++) {
        const column = columns[c];
        if (column === undefined) {
          values[c] = undefined;
          continue;
        }
        const was = labelValue(old, column.key);
        const now = labelValue(labels, column.key);
        values[c] = now;
        if (was === now) continue;
        changed = true;
        if (was !== undefined) this.#unfileItem(item, column, was);
        if (now !== undefined) this.#fileItem(item, column, now);
      }
      // Every selector reads only indexed keys: none can change its mind.
      if (!changed) return;
    }

    // Stamp the selectors that matched before, then evaluate every selector
    // that could match now, each once, stamping those that do. No lookup in
    // a selector's (possibly huge) match set is needed to tell new from old.
    const stamp = ++this.#stamp;
    const before = item.matches;
    if (before !== undefined) for (const sel of before) sel.matchedBeforeAt = stamp;
    const started: SelectorState<S, I>[] = [];
    const consider = (sel: SelectorState<S, I>) => {
      if (sel.evaluatedAt === stamp) return;
      sel.evaluatedAt = stamp;
      if (!sel.selector.matches(labels)) return;
      sel.matchedAt = stamp;
      if (sel.matchedBeforeAt !== stamp) started.push(sel);
    };
    for (let c = 0; c < columns.length; c++) {
      const value = values[c];
      if (value === undefined) continue;
      const column = columns[c]!;
      for (const sel of column.anyValue) consider(sel);
      const byValue = column.selectors.get(value);
      if (byValue !== undefined) for (const sel of byValue) consider(sel);
    }
    for (const sel of this.#unindexed) consider(sel);

    // Whatever matched before and is not stamped now has stopped matching:
    // either it was evaluated and failed, or the item left all its buckets.
    const stopped: SelectorState<S, I>[] = [];
    if (before !== undefined) {
      for (const sel of before) if (sel.matchedAt !== stamp) stopped.push(sel);
    }
    if (started.length === 0 && stopped.length === 0) return;
    for (const sel of stopped) {
      sel.matches.delete(id);
      item.matches = smallSetDelete(item.matches, sel);
    }
    for (const sel of started) {
      sel.matches.add(id);
      item.matches = smallSetAdd(item.matches, sel);
    }

    this.#notifying = true;
    try {
      for (const sel of started) this.#callbacks.onMatchStarted(sel.id, id);
      for (const sel of stopped) this.#callbacks.onMatchStopped(sel.id, id);
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
    for (let c = 0; c < item.slots.length; c++) {
      if (item.slots[c]! < 0) continue;
      const column = this.#columns[c]!;
      this.#unfileItem(item, column, labelValue(item.labels, column.key)!);
    }
    if (item.matches === undefined) return;
    const stopped = [...item.matches];
    for (const sel of stopped) sel.matches.delete(id);
    this.#notifying = true;
    try {
      for (const sel of stopped) this.#callbacks.onMatchStopped(sel.id, id);
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

  #itemMatchesDelete(itemId: I, sel: SelectorState<S, I>): void {
    const item = this.#items.get(itemId)!;
    item.matches = smallSetDelete(item.matches, sel);
  }

  /**
   * One more selector reads `key`. The first one creates its column and
   * files every item carrying the key: the index learns a key's values only
   * when some selector needs them (a pod-template-hash, unique per pod, is
   * read by no selector and costs nothing).
   */
  #acquireKey(key: string): void {
    const known = this.#keys.get(key);
    if (known !== undefined) {
      known.readers++;
      return;
    }
    const column: KeyColumn<S, I> = {
      key,
      column: this.#freeColumns.pop() ?? this.#columns.length,
      readers: 1,
      count: 0,
      items: new Map(),
      anyValue: new Set(),
      selectors: new Map(),
    };
    this.#columns[column.column] = column;
    this.#keys.set(key, column);
    for (const item of this.#items.values()) {
      const value = labelValue(item.labels, key);
      if (value !== undefined) this.#fileItem(item, column, value);
    }
  }

  /** One selector fewer reads `key`; the last one drops its column. */
  #releaseKey(key: string): void {
    const column = this.#keys.get(key)!;
    if (--column.readers > 0) return;
    const c = column.column;
    for (const bucket of column.items.values()) {
      forEachInBucket(bucket, (item) => {
        item.slots[c] = -1;
      });
    }
    this.#keys.delete(key);
    this.#columns[c] = undefined;
    this.#freeColumns.push(c);
  }

  #fileItem(item: ItemState<S, I>, column: KeyColumn<S, I>, value: string): void {
    column.count++;
    const bucket = column.items.get(value);
    let slot = 0;
    if (bucket === undefined) {
      column.items.set(value, item);
    } else if (Array.isArray(bucket)) {
      slot = bucket.length;
      bucket.push(item);
    } else {
      // The first item keeps slot 0.
      column.items.set(value, [bucket, item]);
      slot = 1;
    }
    setSlot(item, column.column, slot);
  }

  /** Takes the item out of its bucket for `value`, the value it was filed under. */
  #unfileItem(item: ItemState<S, I>, column: KeyColumn<S, I>, value: string): void {
    const c = column.column;
    const slot = slotOf(item, c);
    item.slots[c] = -1;
    const bucket = column.items.get(value)!;
    if (Array.isArray(bucket)) {
      const last = bucket.pop()!;
      if (last !== item) {
        bucket[slot] = last;
        last.slots[c] = slot;
      }
      // The one left, if one, is at index 0 and its slot already says so.
      if (bucket.length === 1) column.items.set(value, bucket[0]!);
    } else {
      column.items.delete(value);
    }
    column.count--;
  }

  /** Files (`add`) or unfiles the selector under every bucket of its plan. */
  #fileSelector(sel: SelectorState<S, I>, add: boolean): void {
    const { plan } = sel;
    if (plan === undefined) {
      if (add) this.#unindexed.add(sel);
      else this.#unindexed.delete(sel);
      return;
    }
    for (const { key, values } of plan) {
      // A plan's keys are keys the selector reads: their columns exist.
      const column = this.#keys.get(key)!;
      if (values === undefined) {
        if (add) column.anyValue.add(sel);
        else column.anyValue.delete(sel);
        continue;
      }
      for (const value of values) {
        let set = column.selectors.get(value);
        if (add) {
          if (set === undefined) column.selectors.set(value, (set = new Set()));
          set.add(sel);
        } else if (set !== undefined) {
          set.delete(sel);
          if (set.size === 0) column.selectors.delete(value);
        }
      }
    }
  }
}
