// The BGP part of the agent: gathers BgpInputs, renders BIRD's configuration
// and hands it to the BIRD supervisor.
//
//   syncer batches ──► BgpInputsTracker ◄── watch <prefix>/ipam/hosts/<node>
//                         │ (something changed, after the first in-sync
//                         ▼  and the first read of the host record)
//               render, coalesced: at most one per minIntervalMs
//                         │ buildBgpModel → renderBird (pure)
//                         ▼
//               BirdRuntime.setConfig(text) ── same text: nothing
//                                           └─ changed: write + `configure`
//
// Invariants:
// - Nothing is rendered (and BIRD is not started) before the syncer's first
//   in-sync and the first read of this host's IPAM record: a partial view
//   would withdraw routes a restarted agent's BIRD still announces.
// - A render or reload that fails is retried with a backoff (1 s doubling to
//   30 s); BIRD keeps its previous configuration meanwhile.
import type { Backend, KvEntry } from "../datastore/backend.js";
import { parseHostRecord } from "../ipam/ipam-records.js";
import { ipamKeys } from "../ipam/ipam-keys.js";
import type { SyncUpdate } from "../sync/syncer.js";
import { TwillError } from "../util/errors.js";
import type { BgpInputs } from "./bgp-inputs.js";
import { BgpInputsTracker } from "./bgp-inputs-tracker.js";
import type { BirdControl, BirdProtocol } from "./bird-control.js";
import type { BirdLogger, BirdSupervisorStats, ConfigOutcome } from "./bird-supervisor.js";
import { sleep } from "../util/sleep.js";

/** What the runtime needs of a BIRD supervisor (BirdSupervisor; a fake in tests). */
export interface BirdRuntime {
  start(): Promise<"adopted" | "clean" | "stale">;
  setConfig(text: string): Promise<ConfigOutcome>;
  stop(options?: { stopBird?: boolean }): Promise<void>;
  stats(): BirdSupervisorStats;
  query<T>(fn: (c: BirdControl) => Promise<T>): Promise<T>;
}

export interface BgpRuntimeOptions {
  nodeName: string;
  /** The datastore backend and key prefix (for this host's IPAM record). */
  backend: Backend;
  prefix: string;
  bird: BirdRuntime;
  /** BgpInputs → BIRD configuration text (buildBgpModel + renderBird). */
  render(inputs: BgpInputs): string;
  logger: BirdLogger;
  /** Least time between two renders (default 50 ms). */
  minIntervalMs?: number;
  /** Called for every failure (a metric). */
  onError?(): void;
  /** Inputs from the agent's own settings (its workload route protocol and interface prefix). */
  extras?: BgpExtras;
}

export type BgpExtras = Pick<
  BgpInputs,
  "workloadRouteProtocol" | "workloadInterfacePrefix" | "secrets"
>;

export interface BgpRuntimeStats extends BirdSupervisorStats {
  renders: number;
  /** The last render's outcome, or the error that kept it from BIRD. */
  lastOutcome: ConfigOutcome | "error" | "none";
  ownBlocks: number;
}

const RETRY_INITIAL_MS = 1_000;
const RETRY_MAX_MS = 30_000;

export class BgpRuntime {
  readonly #o: BgpRuntimeOptions;
  readonly #tracker: BgpInputsTracker;
  readonly #minIntervalMs: number;
  readonly #stop = new AbortController();
  #hostRecordRead = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #rendering: Promise<void> | undefined;
  #again = false;
  #lastRenderAt = -Infinity;
  #retryMs = 0;
  #renders = 0;
  #lastOutcome: BgpRuntimeStats["lastOutcome"] = "none";
  #watch: Promise<void> | undefined;
  #extras: BgpExtras;

  constructor(options: BgpRuntimeOptions) {
    this.#o = options;
    this.#tracker = new BgpInputsTracker(options.nodeName);
    this.#minIntervalMs = options.minIntervalMs ?? 50;
    this.#extras = { ...options.extras };
  }

  /** Adopt or prepare BIRD, and start watching this host's IPAM record. */
  async start(): Promise<void> {
    await this.#o.bird.start();
    this.#watch = this.#watchHostRecord(this.#stop.signal);
  }

  /** One syncer batch (call with every batch, status updates included). */
  onUpdates(batch: readonly SyncUpdate[]): void {
    const changed = this.#tracker.onUpdates(batch);
    for (const e of this.#tracker.drainErrors()) {
      this.#o.onError?.();
      this.#o.logger.warn({ resource: e.resource, problem: e.message }, "resource left out of BGP");
    }
    if (changed) this.#request();
  }

  /** The agent's settings changed (FelixConfiguration): render again if they matter. */
  setExtras(extras: BgpExtras): void {
    if (JSON.stringify(extras) === JSON.stringify(this.#extras)) return;
    this.#extras = { ...extras };
    this.#request();
  }

  /** The inputs as they stand (what the next render uses). */
  inputs(): BgpInputs {
    return { ...this.#tracker.inputs(), ...this.#extras };
  }

  stats(): BgpRuntimeStats {
    return {
      ...this.#o.bird.stats(),
      renders: this.#renders,
      lastOutcome: this.#lastOutcome,
      ownBlocks: this.#tracker.ownBlocks.length,
    };
  }

  /** BGP sessions from BIRD's control socket (empty when BIRD is not up). */
  async sessions(): Promise<BirdProtocol[]> {
    if (!this.#o.bird.stats().up) return [];
    const all = await this.#o.bird.query((c) => c.showProtocols());
    return all.filter((p) => p.proto === "BGP");
  }

  /** Stop rendering and watching; BIRD keeps running unless stopBird. */
  async stop(options: { stopBird?: boolean } = {}): Promise<void> {
    this.#stop.abort();
    clearTimeout(this.#timer);
    await this.#rendering?.catch(() => undefined);
    await this.#watch?.catch(() => undefined);
    await this.#o.bird.stop(options);
  }

  // ---------------------------------------------------------------------------

  #ready(): boolean {
    return this.#tracker.inSync && this.#hostRecordRead && !this.#stop.signal.aborted;
  }

  #request(delayMs = 0): void {
    if (!this.#ready()) return;
    if (this.#rendering) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined) return;
    const wait = Math.max(delayMs, this.#lastRenderAt + this.#minIntervalMs - performance.now());
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#rendering = this.#renderOnce().then((retryMs) => {
          this.#rendering = undefined;
          const again = this.#again;
          this.#again = false;
          if (retryMs !== undefined) this.#request(retryMs);
          else if (again) this.#request();
        });
      },
      Math.max(0, wait),
    );
  }

  /** Render and hand to BIRD; resolves with a retry delay after a failure. */
  async #renderOnce(): Promise<number | undefined> {
    if (!this.#ready()) return undefined;
    this.#lastRenderAt = performance.now();
    const inputs = this.inputs();
    try {
      const text = this.#o.render(inputs);
      this.#renders++;
      const outcome = await this.#o.bird.setConfig(text);
      if (
        outcome !== "unchanged" ||
        this.#lastOutcome === "error" ||
        this.#lastOutcome === "none"
      ) {
        this.#o.logger.info(
          {
            outcome,
            bytes: text.length,
            nodes: inputs.nodes.length,
            peers: inputs.bgpPeers.length,
            ownBlocks: inputs.ownBlocks,
          },
          outcome === "unchanged" ? "BIRD configuration up to date" : "BIRD configuration applied",
        );
      }
      this.#lastOutcome = outcome;
      this.#retryMs = 0;
      return undefined;
    } catch (err) {
      if (this.#stop.signal.aborted) return undefined;
      this.#lastOutcome = "error";
      this.#o.onError?.();
      this.#retryMs = Math.min(Math.max(this.#retryMs * 2, RETRY_INITIAL_MS), RETRY_MAX_MS);
      this.#o.logger.error(
        {
          error: (err as Error).message,
          ...(err instanceof TwillError ? { code: err.code } : {}),
          retryMs: this.#retryMs,
        },
        "BIRD configuration not applied; retrying",
      );
      return this.#retryMs;
    }
  }

  #onHostRecord(entry: KvEntry | undefined): void {
    let blocks: string[] = [];
    if (entry) {
      try {
        blocks = parseHostRecord(entry).blocks;
      } catch (err) {
        this.#o.onError?.();
        this.#o.logger.warn(
          { error: (err as Error).message },
          "IPAM host record unreadable; keeping the blocks known",
        );
        blocks = [...this.#tracker.ownBlocks];
      }
    }
    const changed = this.#tracker.setOwnBlocks(blocks);
    const first = !this.#hostRecordRead;
    this.#hostRecordRead = true;
    if (changed || first) this.#request();
  }

  /** List the host record, then watch it; again after a compaction or a broken watch. */
  async #watchHostRecord(signal: AbortSignal): Promise<void> {
    const key = ipamKeys(this.#o.prefix).host(this.#o.nodeName);
    const backend = this.#o.backend;
    let delay = 100;
    while (!signal.aborted) {
      try {
        const { entries, revision } = await backend.list(key);
        this.#onHostRecord(entries.find((e) => e.key === key));
        for await (const ev of backend.watch(key, { fromRevision: revision, signal })) {
          if (ev.type === "compacted") break;
          if (ev.type === "put" && ev.entry.key === key) this.#onHostRecord(ev.entry);
          else if (ev.type === "delete" && ev.key === key) this.#onHostRecord(undefined);
          delay = 100;
        }
      } catch (err) {
        if (signal.aborted) break;
        this.#o.onError?.();
        this.#o.logger.warn(
          { error: (err as Error).message, retryMs: delay },
          "watching this host's IPAM record failed; retrying",
        );
        await sleep(delay, signal);
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }
}
