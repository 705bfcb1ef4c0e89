// The nftables driver: keeps twill's table (`inet twill`) equal to the
// renderer's desired ruleset, one `nft -f -` transaction per apply.
//
//   setDesired(r) ──► apply():
//     read back needed? (first apply, nftablesRefreshInterval, after a failure)
//       ├─ no table              → create it (below)
//       ├─ kernel == desired     → nothing (a restart with unchanged resources
//       │                          writes nothing: no established flow notices)
//       ├─ kernel readable       → renderDelta(kernel, desired): the minimal repair;
//       │                          if nft refuses it, the full transaction
//       └─ kernel not ours/odd   → full transaction (flush and recreate in ONE
//                                  transaction, so no packet sees an empty table)
//     otherwise                  → renderDelta(last written, desired), or nothing
//
// The desired ruleset is usually a RulesetRenderer's live one, changed in
// place, with the changes it reports since the last setDesired: the delta
// then compares only there, and the driver's own copy of what the kernel
// holds (#actual: its own maps, sharing the renderer's immutable rule arrays
// and sets) is patched there once nft has taken it. Anything else (a new
// ruleset object, no changes given, a read-back) compares everything.
//
// Creating the table from nothing takes two transactions: first the IP sets
// with their elements and the "leaf" chains (policy and profile chains:
// no jump, goto or verdict map), then everything else, every base chain
// among it. Until the second commits the table has no hook, so packets see
// no table at all, as before the first: nothing is ever less filtered than
// it was. Why: the kernel (6.x) walks the whole transaction's list each time
// a rule binds an anonymous set (`ip saddr { a, b }`), so one transaction of
// ~80,000 rules with ~1,000 such sets cost ~1 s of kernel time more than the
// same work split this way (bench/dataplane.ts, docs/benchmarks.md).
//
// Deltas are written as one table block (renderDelta's "table-block"): with
// 50,000 set elements in the table nft 1.0.6 applies it ~3× faster than the
// same change as separate commands.
//
// A failed transaction changes nothing in the kernel (nft is atomic); the
// driver stays dirty and reads the kernel back before its next attempt (a
// creation that failed at its second step is then repaired by a delta).
// Every object lives in our own table, so a fresh process finds all of it by
// reading that one table.
import { TwillError } from "../util/errors.js";
import { diffRulesets, parseNftListing } from "./nft-listing.js";
import {
  NFT_FAMILY,
  NFT_TABLE,
  emptyRendered,
  emptyRulesetChanges,
  mergeRulesetChanges,
  renderDelta,
  renderFullTransaction,
} from "./render-nft.js";
import type { DeltaOptions, RenderedRuleset, RenderedSet, RulesetChanges } from "./render-nft.js";
import type { RunCommand } from "./run-command.js";
import { stderrSummary } from "./run-command.js";

/** The OS facility: run a transaction, list our table. */
export interface NftKernel {
  /** Run one transaction atomically; TwillError with nft's message when refused (nothing changed). */
  run(script: string, signal?: AbortSignal): Promise<void>;
  /** The text of `nft list table inet twill`, or undefined when there is no such table. */
  list(signal?: AbortSignal): Promise<string | undefined>;
}

export interface NftApplyResult {
  wrote: "nothing" | "delta" | "full";
  /** Length of the transaction written. */
  bytes: number;
  /** On a read-back: how the kernel differed from what was wanted (empty when it matched). */
  drift: string[];
}

export class NftDriver {
  readonly #kernel: NftKernel;
  #desired: RenderedRuleset | undefined;
  /**
   * What the kernel holds as far as the driver knows: maps of its own (the
   * desired ruleset's may be changed in place by its renderer), sharing the
   * rendering's immutable rule arrays and sets.
   */
  #actual: RenderedRuleset | undefined;
  /** Where the desired ruleset may differ from #actual ("all": anywhere). */
  #pending: RulesetChanges | "all" = "all";
  #resyncNeeded = true;

  constructor(kernel: NftKernel) {
    this.#kernel = kernel;
  }

  /**
   * The ruleset wanted. `changes` says where it changed since the last call,
   * when `r` is the same (live) ruleset as then (RulesetRenderer.takeChanges);
   * without it, or for another object, the next apply compares everything.
   */
  setDesired(r: RenderedRuleset, changes?: RulesetChanges): void {
    if (r !== this.#desired || changes === undefined) this.#pending = "all";
    else if (this.#pending !== "all") mergeRulesetChanges(this.#pending, changes);
    this.#desired = r;
  }

  /** Read the kernel back before the next write (periodic refresh, suspected drift). */
  requestResync(): void {
    this.#resyncNeeded = true;
  }

  get dirty(): boolean {
    if (this.#desired === undefined) return false;
    if (this.#resyncNeeded || this.#pending === "all") return true;
    const p = this.#pending;
    return p.chains.size > 0 || p.sets.size > 0 || p.maps.size > 0;
  }

  /**
   * The table is in the kernel as far as the driver knows: it wrote or read
   * it back successfully, and nothing since (a failure, a refresh request)
   * calls for a read-back first.
   */
  get tableInPlace(): boolean {
    return this.#actual !== undefined && !this.#resyncNeeded;
  }

  /** The ruleset the kernel holds as far as the driver knows (after a successful apply). */
  get current(): RenderedRuleset | undefined {
    return this.#actual;
  }

  async apply(signal?: AbortSignal): Promise<NftApplyResult> {
    const desired = this.#desired;
    if (desired === undefined) return { wrote: "nothing", bytes: 0, drift: [] };
    // What changes from here on is pending for the next apply.
    const pending = this.#pending;
    this.#pending = emptyRulesetChanges();
    try {
      let result: NftApplyResult;
      if (this.#resyncNeeded || this.#actual === undefined) {
        result = await this.#reconcile(desired, signal);
      } else {
        // Script and what it makes of #actual, both before the first await.
        const script = renderDelta(
          this.#actual,
          desired,
          pending === "all" ? DELTA : { ...DELTA, only: pending },
        );
        let next: () => RenderedRuleset;
        if (pending === "all") {
          const snapshot = snapshotRuleset(desired);
          next = () => snapshot;
        } else next = patchFor(this.#actual, desired, pending);
        result = await this.#write(script, "delta", signal);
        this.#actual = next();
      }
      this.#resyncNeeded = false;
      return result;
    } catch (err) {
      // Read the kernel back and compare everything next time.
      this.#resyncNeeded = true;
      throw err;
    }
  }

  async #write(
    script: string,
    kind: "delta" | "full",
    signal?: AbortSignal,
  ): Promise<NftApplyResult> {
    if (script === "") return { wrote: "nothing", bytes: 0, drift: [] };
    await this.#kernel.run(script, signal);
    return { wrote: kind, bytes: script.length, drift: [] };
  }

  /** The table from nothing: sets and leaf chains, then the rest (see the header). */
  async #create(desired: RenderedRuleset, signal?: AbortSignal): Promise<NftApplyResult> {
    const leaves = leafStage(desired);
    const first = renderFullTransaction(leaves);
    const second = renderDelta(leaves, desired, DELTA);
    await this.#kernel.run(first, signal);
    if (second !== "") await this.#kernel.run(second, signal);
    return { wrote: "full", bytes: first.length + second.length, drift: [] };
  }

  /** Reads the kernel back and repairs it; #actual is then what was written. */
  async #reconcile(live: RenderedRuleset, signal?: AbortSignal): Promise<NftApplyResult> {
    const text = await this.#kernel.list(signal);
    // Compared and written as it is now, whatever its renderer does meanwhile.
    const desired = snapshotRuleset(live);
    const result = await this.#repair(text, desired, signal);
    this.#actual = desired;
    return result;
  }

  async #repair(
    text: string | undefined,
    desired: RenderedRuleset,
    signal?: AbortSignal,
  ): Promise<NftApplyResult> {
    const full = () => this.#write(renderFullTransaction(desired), "full", signal);
    if (text === undefined)
      return { ...(await this.#create(desired, signal)), drift: ["table missing"] };
    let parsed;
    try {
      parsed = parseNftListing(text);
    } catch (err) {
      return { ...(await full()), drift: [`unreadable: ${(err as Error).message}`] };
    }
    if (parsed.extra.length > 0) return { ...(await full()), drift: parsed.extra.slice(0, 20) };
    const drift = diffRulesets(parsed.ruleset, desired);
    if (drift.length === 0) return { wrote: "nothing", bytes: 0, drift };
    let delta: string | undefined;
    try {
      delta = renderDelta(parsed.ruleset, desired, DELTA);
    } catch {
      // The kernel's objects cannot be morphed (a hook or set type changed): replace them all.
      delta = undefined;
    }
    if (delta !== undefined) {
      try {
        return { ...(await this.#write(delta, "delta", signal)), drift };
      } catch (err) {
        if (signal?.aborted) throw err;
        // nft refused the repair (the listing hid something): the full transaction still works.
      }
    }
    return { ...(await full()), drift };
  }
}

/**
 * A copy of a ruleset's maps (and verdict maps' elements), sharing what a
 * renderer never changes once made: rule arrays, sets, base chain specs.
 */
export function snapshotRuleset(r: RenderedRuleset): RenderedRuleset {
  return {
    chains: new Map(r.chains),
    base: new Map(r.base),
    comments: new Map(r.comments),
    sets: new Map(r.sets),
    maps: new Map(
      [...r.maps].map(([k, v]) => [k, { type: v.type, elements: new Map(v.elements) }]),
    ),
  };
}

/**
 * What `r` holds where `changes` point, taken now; the function returns
 * `actual` brought up to it (called once that is in the kernel).
 */
function patchFor(
  actual: RenderedRuleset,
  r: RenderedRuleset,
  changes: RulesetChanges,
): () => RenderedRuleset {
  const chains = [...changes.chains].map(
    (name) => [name, r.chains.get(name), r.base.get(name), r.comments.get(name)] as const,
  );
  const sets = [...changes.sets].map((name) => [name, r.sets.get(name)] as const);
  const maps = [...changes.maps].map(([name, keys]) => {
    const m = r.maps.get(name);
    const elements =
      m === undefined || keys === "all" || !actual.maps.has(name)
        ? undefined
        : [...keys].map((k) => [k, m.elements.get(k)] as const);
    const whole = m && !elements ? { type: m.type, elements: new Map(m.elements) } : undefined;
    return { name, m, elements, whole };
  });
  return () => {
    const put = <V>(map: Map<string, V>, k: string, v: V | undefined) => {
      if (v === undefined) map.delete(k);
      else map.set(k, v);
    };
    for (const [name, rules, base, comment] of chains) {
      put(actual.chains, name, rules);
      put(actual.base, name, base);
      put(actual.comments, name, comment);
    }
    for (const [name, set] of sets) put(actual.sets, name, set);
    for (const { name, m, elements, whole } of maps) {
      if (!m) actual.maps.delete(name);
      else if (whole) actual.maps.set(name, whole);
      else {
        let have = actual.maps.get(name);
        if (!have) actual.maps.set(name, (have = { type: m.type, elements: new Map() }));
        for (const [k, v] of elements ?? []) put(have.elements, k, v);
      }
    }
    return actual;
  };
}

const DELTA: DeltaOptions = { additions: "table-block" };

/**
 * What the first transaction of a creation holds: every set, and the chains
 * that jump nowhere and name no map (so they refer to sets only). Nothing in
 * it is reachable from a hook.
 */
export function leafStage(r: RenderedRuleset): RenderedRuleset {
  const chains = new Map<string, string[]>();
  const comments = new Map<string, string>();
  for (const [name, rules] of r.chains) {
    if (r.base.has(name)) continue;
    const leaf = rules.every((rule) => {
      const refs = references(rule);
      return refs.chains.length === 0 && refs.sets.every((s) => r.sets.has(s));
    });
    if (!leaf) continue;
    chains.set(name, rules);
    const c = r.comments.get(name);
    if (c !== undefined) comments.set(name, c);
  }
  return { chains, base: new Map(), comments, sets: r.sets, maps: new Map() };
}

// ---------------------------------------------------------------------------
// The real kernel: the nft command, in the current network namespace.

export function nftCommandKernel(run: RunCommand): NftKernel {
  return {
    async run(script, signal) {
      const r = await run("nft", ["-f", "-"], { input: script, ...(signal ? { signal } : {}) });
      if (r.code !== 0) {
        throw new TwillError(
          "Unavailable",
          `nft refused the transaction (${script.split("\n").length} lines): ${stderrSummary(r.stderr)}`,
        );
      }
    },
    async list(signal) {
      const r = await run(
        "nft",
        ["list", "table", NFT_FAMILY, NFT_TABLE],
        signal ? { signal } : {},
      );
      if (r.code === 0) return r.stdout;
      if (/No such file or directory/.test(r.stderr)) return undefined;
      throw new TwillError(
        "Unavailable",
        `nft list table ${NFT_FAMILY} ${NFT_TABLE} failed: ${stderrSummary(r.stderr)}`,
      );
    },
  };
}

// ---------------------------------------------------------------------------
// The fake kernel: interprets the transactions the renderer writes, keeping
// the table as a RenderedRuleset. Like the kernel it is atomic (a failing
// line changes nothing) and refuses what breaks references: a rule naming a
// set, map or chain that does not exist, deleting an object something still
// refers to, deleting an element that is not there. Lines it does not
// understand are refused too, so a renderer change cannot slip past it.

export interface FakeNftKernel extends NftKernel {
  /** The table, or undefined when absent; tests may change it ("someone ran nft"). */
  table: RenderedRuleset | undefined;
  /** Every transaction that was applied. */
  readonly scripts: string[];
  /** The next `count` calls (run or list) fail with `message`. */
  failNext(count: number, message?: string): void;
}

function cloneRuleset(r: RenderedRuleset): RenderedRuleset {
  return {
    chains: new Map([...r.chains].map(([k, v]) => [k, [...v]])),
    base: new Map([...r.base].map(([k, v]) => [k, { ...v }])),
    comments: new Map(r.comments),
    sets: new Map(
      [...r.sets].map(([k, v]) => [k, { ...v, flags: [...v.flags], elements: [...v.elements] }]),
    ),
    maps: new Map(
      [...r.maps].map(([k, v]) => [k, { type: v.type, elements: new Map(v.elements) }]),
    ),
  };
}

/** Names a rule or verdict refers to: sets/maps (@x) and chains (jump/goto x). */
function references(text: string): { sets: string[]; chains: string[] } {
  const sets = [...text.matchAll(/@([A-Za-z0-9_.-]+)/g)].map((m) => m[1] ?? "");
  const chains = [...text.matchAll(/\b(?:jump|goto) ([A-Za-z0-9_.-]+)/g)].map((m) => m[1] ?? "");
  return { sets, chains };
}

function checkReferences(t: RenderedRuleset, text: string, where: string): void {
  const refs = references(text);
  for (const s of refs.sets) {
    if (!t.sets.has(s) && !t.maps.has(s))
      throw new TwillError("Unavailable", `${where}: no set or map "${s}"`);
  }
  for (const c of refs.chains) {
    if (!t.chains.has(c)) throw new TwillError("Unavailable", `${where}: no chain "${c}"`);
  }
}

function referencedBy(t: RenderedRuleset, name: string, kind: "set" | "chain"): string | undefined {
  for (const [chain, rules] of t.chains) {
    for (const rule of rules) {
      const refs = references(rule);
      if ((kind === "set" ? refs.sets : refs.chains).includes(name)) return `chain ${chain}`;
    }
  }
  if (kind === "chain") {
    for (const [map, m] of t.maps) {
      for (const v of m.elements.values())
        if (references(v).chains.includes(name)) return `map ${map}`;
    }
  }
  return undefined;
}

const T = `${NFT_FAMILY} ${NFT_TABLE}`;

function splitElements(body: string): string[] {
  return body
    .split(/,\s*/)
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

function applyLine(t: RenderedRuleset, line: string): void {
  const bad = (why: string): never => {
    throw new TwillError("Unavailable", `Error: ${why}: ${line}`);
  };
  let m: RegExpExecArray | null;
  if ((m = new RegExp(`^add set ${T} (\\S+) \\{ (.*) \\}$`).exec(line))) {
    const name = m[1] ?? "";
    if (t.sets.has(name)) return;
    const spec = (m[2] ?? "").split(/;\s*/).filter((s) => s !== "");
    const set: RenderedSet = { type: "", flags: [], elements: [] };
    for (const s of spec) {
      if (s.startsWith("type ")) set.type = s.slice(5);
      else if (s.startsWith("flags ")) set.flags = s.slice(6).split(",");
      else if (s.startsWith("comment ")) set.comment = s.slice(8);
      else bad(`unknown set attribute "${s}"`);
    }
    t.sets.set(name, set);
  } else if ((m = new RegExp(`^add map ${T} (\\S+) \\{ type (.*); \\}$`).exec(line))) {
    if (!t.maps.has(m[1] ?? "")) t.maps.set(m[1] ?? "", { type: m[2] ?? "", elements: new Map() });
  } else if ((m = new RegExp(`^add chain ${T} (\\S+)(?: \\{ (.*) \\})?$`).exec(line))) {
    const name = m[1] ?? "";
    if (t.chains.has(name)) return;
    t.chains.set(name, []);
    let spec = m[2] ?? "";
    const c = /^comment ("(?:[^"\\]|\\.)*");\s*/.exec(spec);
    if (c) {
      t.comments.set(name, c[1] ?? "");
      spec = spec.slice(c[0].length);
    }
    if (spec !== "") {
      const b = /^type (filter|nat) hook (\S+) priority (\S+); policy (accept);$/.exec(spec);
      if (!b) bad("unknown chain spec");
      t.base.set(name, {
        type: b?.[1] as "filter",
        hook: b?.[2] as "input",
        priority: b?.[3] as "filter",
        policy: "accept",
      });
    }
  } else if ((m = new RegExp(`^(add|delete) element ${T} (\\S+) \\{ (.*) \\}$`).exec(line))) {
    const verb = m[1];
    const name = m[2] ?? "";
    const elements = splitElements(m[3] ?? "");
    const set = t.sets.get(name);
    const map = t.maps.get(name);
    if (set) {
      const have = new Set(set.elements);
      for (const e of elements) {
        if (verb === "add") have.add(e);
        else if (!have.delete(e))
          bad(`Could not process rule: No such file or directory (element ${e})`);
      }
      set.elements = [...have].sort();
    } else if (map) {
      for (const e of elements) {
        const kv = /^"([^"]*)" : (.+)$/.exec(e);
        if (!kv) bad(`bad map element "${e}"`);
        const key = kv?.[1] ?? "";
        if (verb === "add") {
          checkReferences(t, kv?.[2] ?? "", `map ${name}`);
          map.elements.set(key, kv?.[2] ?? "");
        } else if (!map.elements.delete(key))
          bad(`Could not process rule: No such file or directory (key ${key})`);
      }
    } else bad(`No such file or directory (set or map ${name})`);
  } else if ((m = new RegExp(`^flush (set|map) ${T} (\\S+)$`).exec(line))) {
    const name = m[2] ?? "";
    if (m[1] === "set") {
      const set = t.sets.get(name);
      if (!set) bad("No such file or directory");
      else set.elements = [];
    } else {
      const map = t.maps.get(name);
      if (!map) bad("No such file or directory");
      else map.elements.clear();
    }
  } else if ((m = new RegExp(`^flush chain ${T} (\\S+)$`).exec(line))) {
    const rules = t.chains.get(m[1] ?? "");
    if (!rules) bad("No such file or directory");
    else rules.length = 0;
  } else if ((m = new RegExp(`^add rule ${T} (\\S+) (.+)$`).exec(line))) {
    const rules = t.chains.get(m[1] ?? "");
    if (!rules) bad("No such file or directory");
    checkReferences(t, m[2] ?? "", `chain ${m[1]}`);
    rules?.push(m[2] ?? "");
  } else if ((m = new RegExp(`^delete (set|map|chain) ${T} (\\S+)$`).exec(line))) {
    const kind = m[1] as "set" | "map" | "chain";
    const name = m[2] ?? "";
    const user = referencedBy(t, name, kind === "chain" ? "chain" : "set");
    if (user)
      bad(`Could not process rule: Device or resource busy (${kind} ${name} used by ${user})`);
    if (kind === "chain") {
      if ((t.chains.get(name)?.length ?? 0) > 0)
        bad("Could not process rule: Device or resource busy (chain not empty)");
      if (!t.chains.delete(name)) bad("No such file or directory");
      t.base.delete(name);
      t.comments.delete(name);
    } else if (!(kind === "set" ? t.sets : t.maps).delete(name)) bad("No such file or directory");
  } else {
    bad("the fake kernel does not understand this line");
  }
}

export function fakeNftKernel(): FakeNftKernel {
  const scripts: string[] = [];
  let failures = 0;
  let failMessage = "injected failure";
  const maybeFail = () => {
    if (failures > 0) {
      failures--;
      throw new TwillError("Unavailable", failMessage);
    }
  };
  const kernel: FakeNftKernel = {
    table: undefined,
    scripts,
    failNext(count, message = "injected failure") {
      failures = count;
      failMessage = message;
    },
    async run(script) {
      maybeFail();
      const lines = script.split("\n");
      let table = kernel.table ? cloneRuleset(kernel.table) : undefined;
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i] ?? "";
        if (line.trim() === "") continue;
        if (line === `table ${T}`) {
          table ??= emptyRendered();
        } else if (line === `delete table ${T}`) {
          if (!table)
            throw new TwillError("Unavailable", `Error: No such file or directory: ${line}`);
          table = undefined;
        } else if (line === `table ${T} {`) {
          // A table block: the listing's own format (the full transaction).
          let end = i + 1;
          while (end < lines.length && lines[end] !== "}") end++;
          const block = parseNftListing(lines.slice(i, end + 1).join("\n"));
          if (block.extra.length > 0)
            throw new TwillError("Unavailable", `fake nft: unsupported ${block.extra[0]}`);
          // As nft merges a block into a table: new objects are created, the
          // elements of existing sets and maps added, rules appended to
          // existing chains (whose hook and comment stay as they are).
          const t = (table ??= emptyRendered());
          for (const [k, v] of block.ruleset.sets) {
            const old = t.sets.get(k);
            if (!old) t.sets.set(k, v);
            else if (old.type !== v.type)
              throw new TwillError(
                "Unavailable",
                `Error: Could not process rule: File exists (set ${k})`,
              );
            else old.elements = [...new Set([...old.elements, ...v.elements])].sort();
          }
          for (const [k, v] of block.ruleset.maps) {
            const old = t.maps.get(k);
            if (!old) t.maps.set(k, v);
            else {
              for (const [key, verdict] of v.elements) {
                const had = old.elements.get(key);
                if (had !== undefined && had !== verdict)
                  throw new TwillError(
                    "Unavailable",
                    `Error: Could not process rule: File exists (map ${k} key ${key})`,
                  );
                old.elements.set(key, verdict);
              }
            }
          }
          for (const [k, rules] of block.ruleset.chains) {
            const old = t.chains.get(k);
            if (old) {
              old.push(...rules);
              continue;
            }
            t.chains.set(k, [...rules]);
            const b = block.ruleset.base.get(k);
            if (b) t.base.set(k, b);
            const c = block.ruleset.comments.get(k);
            if (c !== undefined) t.comments.set(k, c);
          }
          for (const [k, rules] of block.ruleset.chains) {
            for (const r of rules) checkReferences(t, r, `chain ${k}`);
          }
          for (const [k, m] of block.ruleset.maps) {
            for (const v of m.elements.values()) checkReferences(t, v, `map ${k}`);
          }
          i = end;
        } else {
          if (!table)
            throw new TwillError(
              "Unavailable",
              `Error: No such file or directory (table): ${line}`,
            );
          applyLine(table, line);
        }
      }
      kernel.table = table;
      scripts.push(script);
    },
    async list() {
      maybeFail();
      if (!kernel.table) return undefined;
      // The full transaction's table block is in nft's listing format.
      const text = renderFullTransaction(kernel.table);
      return text.slice(text.indexOf(`table ${T} {`));
    },
  };
  return kernel;
}
