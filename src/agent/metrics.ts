// The agent's Prometheus metrics, on a registry of its own (never the
// prom-client global, so tests and several agents in one process do not
// share counters). Gauges that mirror other components' state are read when
// scraped, through `sources`, so the hot path only counts applies and errors.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export type ErrorKind =
  "calc" | "apply" | "status" | "datastore" | "config" | "link-monitor" | "bgp";

/** What the scrape reads of the BGP runtime (absent when bgpEnabled is false). */
export interface BgpMetricSource {
  stats(): { up: boolean; restarts: number; reloads: number };
  sessions(): Promise<readonly { bgp?: { state: string } | undefined }[]>;
}

/** What the scrape reads from the running agent. */
export interface MetricSources {
  syncStatus(): "waiting" | "resyncing" | "in-sync";
  syncStats(): { resyncs: number; watchRestarts: number; revision: number };
  calcStats(): {
    localEndpoints: number;
    activePolicies: number;
    activeProfiles: number;
    ipsets: number;
  };
  dataplaneStats(): { routes: number; pendingRoutes: number; programmedEndpoints: number };
  /** The BGP runtime, once started (undefined: BGP off or not started yet). */
  bgp?(): BgpMetricSource | undefined;
}

export interface AgentMetrics {
  readonly registry: Registry;
  /** One apply of the dataplane: how long, and whether it failed. */
  observeApply(seconds: number, ok: boolean): void;
  countError(kind: ErrorKind): void;
  /** Prometheus text exposition. */
  render(): Promise<string>;
  readonly contentType: string;
}

const SYNC_STATES = ["waiting", "resyncing", "in-sync"] as const;

export function createMetrics(
  sources: MetricSources,
  options: { processMetrics?: boolean } = {},
): AgentMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true)
    collectDefaultMetrics({ register: registry, prefix: "twill_" });

  new Gauge({
    name: "twill_sync_state",
    help: "Datastore sync state: 1 for the current state (waiting, resyncing, in-sync), 0 for the others.",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const now = sources.syncStatus();
      for (const s of SYNC_STATES) this.set({ state: s }, s === now ? 1 : 0);
    },
  });
  // Counters mirrored from the syncer's own counts: advance by the difference.
  const mirrored = (name: string, help: string, read: () => number) => {
    let seen = 0;
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const n = read();
        if (n > seen) this.inc(n - seen);
        seen = Math.max(seen, n);
      },
    });
  };
  mirrored(
    "twill_resyncs_total",
    "Fresh datastore snapshots forced by a compacted watch.",
    () => sources.syncStats().resyncs,
  );
  mirrored(
    "twill_watch_restarts_total",
    "Datastore watches resumed after they broke.",
    () => sources.syncStats().watchRestarts,
  );
  new Gauge({
    name: "twill_datastore_revision",
    help: "The datastore revision the agent's view reflects.",
    registers: [registry],
    collect() {
      this.set(sources.syncStats().revision);
    },
  });

  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  gauge(
    "twill_local_endpoints",
    "Endpoints on this host (workload and host endpoints).",
    () => sources.calcStats().localEndpoints,
  );
  gauge(
    "twill_active_policies",
    "Policies that select at least one local endpoint.",
    () => sources.calcStats().activePolicies,
  );
  gauge(
    "twill_active_profiles",
    "Profiles used by local endpoints.",
    () => sources.calcStats().activeProfiles,
  );
  gauge("twill_ipsets", "IP sets the active policies need.", () => sources.calcStats().ipsets);
  gauge(
    "twill_routes",
    "Workload routes programmed in the kernel.",
    () => sources.dataplaneStats().routes,
  );
  gauge(
    "twill_routes_pending",
    "Workload routes waiting for their interface.",
    () => sources.dataplaneStats().pendingRoutes,
  );
  gauge(
    "twill_programmed_endpoints",
    "Local workload endpoints whose policy and routes are programmed.",
    () => sources.dataplaneStats().programmedEndpoints,
  );

  if (sources.bgp) {
    const bgp = sources.bgp;
    gauge("twill_bird_up", "1 when this node's BIRD is running and answers, else 0.", () =>
      bgp()?.stats().up ? 1 : 0,
    );
    mirrored(
      "twill_bird_restarts_total",
      "Times BIRD was started again after it died.",
      () => bgp()?.stats().restarts ?? 0,
    );
    mirrored(
      "twill_bird_reloads_total",
      "Configuration reloads (`configure`) after the rendered text changed.",
      () => bgp()?.stats().reloads ?? 0,
    );
    new Gauge({
      name: "twill_bgp_sessions",
      help: "BGP sessions of this node's BIRD, by state (established, other); read from BIRD's control socket on scrape.",
      labelNames: ["state"],
      registers: [registry],
      async collect() {
        let established = 0;
        let other = 0;
        try {
          for (const p of (await bgp()?.sessions()) ?? []) {
            if (p.bgp?.state === "Established") established++;
            else other++;
          }
        } catch {
          // BIRD is down or busy: report no sessions rather than fail the scrape.
        }
        this.set({ state: "established" }, established);
        this.set({ state: "other" }, other);
      },
    });
  }

  const applies = new Counter({
    name: "twill_dataplane_applies_total",
    help: "Dataplane applies, by result (ok, error).",
    labelNames: ["result"],
    registers: [registry],
  });
  const applyDuration = new Histogram({
    name: "twill_dataplane_apply_duration_seconds",
    help: "How long one dataplane apply took (nftables, routes, sysctls).",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const errors = new Counter({
    name: "twill_errors_total",
    help: "Errors by where they happened (calc, apply, status, datastore, config, link-monitor, bgp).",
    labelNames: ["kind"],
    registers: [registry],
  });
  // Every label shows up from the start, so rate() works before the first error.
  applies.inc({ result: "ok" }, 0);
  applies.inc({ result: "error" }, 0);
  for (const k of [
    "calc",
    "apply",
    "status",
    "datastore",
    "config",
    "link-monitor",
    "bgp",
  ] as const) {
    errors.inc({ kind: k }, 0);
  }

  return {
    registry,
    observeApply(seconds, ok) {
      applies.inc({ result: ok ? "ok" : "error" });
      applyDuration.observe(seconds);
    },
    countError(kind) {
      errors.inc({ kind });
    },
    render: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
