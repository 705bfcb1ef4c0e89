// The twill agent: one per host, the control loop from the datastore to
// this host's kernel.
//
//   config (flags > env > file > FelixConfiguration node.<n> > default > built-in)
//   datastore ── syncer ── batches ──► calc graph ── flush() ──► dataplane manager
//       ▲          │ FelixConfiguration, IPPools: live settings     │ apply loop (coalesced)
//       │          ▼                                                ▼
//       │      Node resource (at start)              nftables · sysctls · routes
//       └──── endpoint status keys ◄── after each successful apply ─┘
//   link monitor (ip monitor link) ──► dataplane (a veth that appears later)
//   syncer batches + IPAM host record ──► BGP runtime ──► BIRD (supervised; bgpEnabled)
//   HTTP: /livez /readyz /metrics · JSON logs, a summary every reportingInterval
//
// Invariants:
// - Nothing is written to the kernel before the first in-sync: the calc
//   emits nothing before it, and the apply loop checks again.
// - Applies are coalesced: at most one every minApplyInterval while busy.
// - A failed apply leaves the dataplane dirty for the next pass (with
//   backoff). maxApplyFailures failed policy applies in a row end the agent
//   with a non-zero exit: never run with policy it cannot program.
// - Stopping (the signal) leaves the kernel as it is, so a restarted agent
//   finds it right and changes nothing. BIRD keeps running too (unless
//   birdStopOnExit): the next agent adopts it, and no route is withdrawn.
import { hostname as osHostname } from "node:os";
import type { DestinationStream } from "pino";
import { kindById } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { CalcGraph } from "../calc/calc-graph.js";
import type { DataplaneMessage } from "../calc/messages.js";
import { buildBgpModel } from "../bgp/bgp-model.js";
import { birdPaths } from "../bgp/bgp-inputs.js";
import type { BirdPaths } from "../bgp/bgp-inputs.js";
import { BgpRuntime } from "../bgp/bgp-runtime.js";
import type { BgpExtras } from "../bgp/bgp-runtime.js";
import { loadBgpSecrets } from "../bgp/secret-dir.js";
import type { BgpSecrets } from "../bgp/secret-dir.js";
import type { BirdRuntime } from "../bgp/bgp-runtime.js";
import { BirdSupervisor, defaultBirdDir } from "../bgp/bird-supervisor.js";
import type { BirdSupervisorOptions } from "../bgp/bird-supervisor.js";
import { renderBird } from "../bgp/render-bird.js";
import type { DatastoreFlags } from "../datastore/connect.js";
import type { EndpointStatus } from "../datastore/endpoint-status.js";
import type { ResourceStore } from "../datastore/resource-store.js";
import { Dataplane } from "../dataplane/dataplane.js";
import type { DataplaneSettings, EndpointProgramming } from "../dataplane/dataplane.js";
import { LinkMonitor } from "../dataplane/link-monitor.js";
import type { LinkSource } from "../dataplane/link-monitor.js";
import type { NftKernel } from "../dataplane/nft-driver.js";
import type { RouteTable } from "../dataplane/route-driver.js";
import type { Sysctls } from "../dataplane/sysctl-driver.js";
import { startSyncer } from "../sync/syncer.js";
import type { Syncer, SyncStatus, SyncUpdate } from "../sync/syncer.js";
import { TwillError, isErrorCode } from "../util/errors.js";
import { CONFIG_PARAMS, liveSettingsChanged, parseConfigFile, resolveConfig } from "./config.js";
import type { AgentConfig, ConfigName, ConfigSources, FelixSource } from "./config.js";
import { startHealthServer } from "./health-server.js";
import type { HealthServer } from "./health-server.js";
import { createLogging, errorFields, fieldLogger } from "./logging.js";
import type { Logger, Logging } from "./logging.js";
import { createMetrics } from "./metrics.js";
import type { AgentMetrics } from "./metrics.js";
import { registerNode } from "./node-registration.js";
import { EndpointStatusWriter } from "./status-writer.js";
import { sleep } from "../util/sleep.js";

/** The OS facilities the dataplane drives. */
export interface KernelDeps {
  nft: NftKernel;
  routes: RouteTable;
  sysctls: Sysctls;
  links: LinkSource;
}

export interface AgentDeps {
  env: Readonly<Record<string, string | undefined>>;
  hostname?: () => string;
  readFile(path: string): Promise<string>;
  /** Open the datastore from the resolved --etcd-* settings (the real one: datastore/connect.ts). */
  openStore(flags: DatastoreFlags): Promise<ResourceStore>;
  kernel: KernelDeps;
  /** Where the JSON log lines go (default standard output). */
  logDestination?: DestinationStream;
  /** A monotonic clock in milliseconds (default performance.now). */
  now?: () => number;
  /** The BIRD supervisor for bgpEnabled (default: BirdSupervisor, the real BIRD). */
  bird?: (paths: BirdPaths, options: BirdSupervisorOptions) => BirdRuntime;
}

export interface AgentOptions {
  /** Flag values as given on the command line, by setting name. */
  flags: Partial<Record<ConfigName, string>>;
  /** Aborting stops the agent cleanly (SIGTERM). */
  signal: AbortSignal;
  /** Called once the HTTP server listens and the loops run. */
  onStarted?(info: { healthPort: number; nodeName: string }): void;
}

const FELIX_CONFIGURATION = kindById("FelixConfiguration");

/** Exit codes of `twill agent`. */
export const AGENT_EXIT = { ok: 0, failed: 1 } as const;

/** How long one apply may run before /livez reports the agent stuck. */
const APPLY_STUCK_MS = 120_000;
/** How long stopping waits for a component that does not stop by itself. */
const STOP_GRACE_MS = 5_000;
/** More endpoint state changes than this in one apply are logged as one summary line. */
const ENDPOINT_CHANGES_LOGGED = 20;

/**
 * Run the agent until the signal aborts (resolves 0) or it fails for good
 * (resolves 1, the reason logged). Configuration errors and an unreachable
 * datastore at start throw a TwillError (the CLI prints it).
 */
export async function runAgent(options: AgentOptions, deps: AgentDeps): Promise<number> {
  const hostname = (deps.hostname ?? osHostname)();
  const local: ConfigSources = { flags: options.flags, env: deps.env };
  const configFile = options.flags.configFile || deps.env["TWILL_CONFIG_FILE"] || undefined;
  if (configFile !== undefined) {
    let text: string;
    try {
      text = await deps.readFile(configFile);
    } catch (err) {
      throw new TwillError(
        "Invalid",
        `cannot read config file ${configFile}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    local.file = parseConfigFile(configFile, text);
  }
  const first = resolveConfig(local, { hostname });
  const logging = createLogging({
    severity: first.config.logSeverityScreen,
    base: { node: first.config.nodeName },
    ...(deps.logDestination ? { destination: deps.logDestination } : {}),
  });
  const agent = new Agent(options, deps, local, hostname, first.config, logging);
  try {
    return await agent.run();
  } finally {
    logging.flush();
  }
}

interface Pool {
  cidr: string;
  natOutgoing: boolean;
}

class Agent {
  readonly #options: AgentOptions;
  readonly #deps: AgentDeps;
  readonly #local: ConfigSources;
  readonly #hostname: string;
  readonly #logging: Logging;
  readonly #log: Logger;
  readonly #now: () => number;
  #config: AgentConfig;
  #felixDefault: FelixSource | undefined;
  #felixNode: FelixSource | undefined;
  readonly #pools = new Map<string, Pool>();

  /** Stops every loop: the caller's signal, or a fatal error of ours. */
  readonly #stop = new AbortController();
  #fatal: string | undefined;

  #store!: ResourceStore;
  #calc!: CalcGraph;
  #dataplane!: Dataplane;
  #syncer: Syncer | undefined;
  #metrics!: AgentMetrics;
  #statusWriter!: EndpointStatusWriter;
  #links!: LinkMonitor;
  #bgp: BgpRuntime | undefined;
  #bgpSecrets: BgpSecrets = {};

  // Sync and apply state.
  #syncStatus: SyncStatus = "waiting";
  #inSyncSeen = false;
  /** Local workload endpoint id → its resourceVersion, as fed to the calc. */
  readonly #endpointVersions = new Map<string, string>();
  #applyRequested = false;
  #wake: (() => void) | undefined;
  #lastApplyStart = -Infinity;
  #applyStartedAt: number | undefined;
  #retryAt = 0;
  #consecutiveFailures = 0;
  #firstApplyDone = false;
  #lastApplyOk = false;
  #statuses = new Map<string, { namespace: string; name: string; status: EndpointStatus }>();
  #endpointStates = new Map<string, string>();
  #statusLoop: Promise<void> | undefined;
  #statusAgain = false;
  // For the summary line.
  #appliesSinceSummary = 0;
  #failuresSinceSummary = 0;
  #lastApplyMs = 0;
  readonly #timers: ReturnType<typeof setInterval>[] = [];

  constructor(
    options: AgentOptions,
    deps: AgentDeps,
    local: ConfigSources,
    hostname: string,
    config: AgentConfig,
    logging: Logging,
  ) {
    this.#options = options;
    this.#deps = deps;
    this.#local = local;
    this.#hostname = hostname;
    this.#config = config;
    this.#logging = logging;
    this.#log = logging.child("agent");
    this.#now = deps.now ?? (() => performance.now());
  }

  async run(): Promise<number> {
    const signal = this.#options.signal;
    const onAbort = () => this.#stop.abort();
    if (signal.aborted) return AGENT_EXIT.ok;
    signal.addEventListener("abort", onAbort, { once: true });
    const cleanups: (() => Promise<void> | void)[] = [];
    try {
      await this.#start(cleanups);
      await new Promise<void>((resolve) => {
        if (this.#stop.signal.aborted) resolve();
        else this.#stop.signal.addEventListener("abort", () => resolve(), { once: true });
      });
    } finally {
      signal.removeEventListener("abort", onAbort);
      this.#stop.abort();
      for (const c of cleanups.reverse()) {
        try {
          await c();
        } catch (err) {
          this.#log.warn(errorFields(err), "clean-up step failed");
        }
      }
    }
    if (this.#fatal !== undefined) {
      this.#log.fatal({ reason: this.#fatal }, "agent stopped: failure");
      return AGENT_EXIT.failed;
    }
    this.#log.info("agent stopped; kernel state left in place");
    return AGENT_EXIT.ok;
  }

  #die(reason: string): void {
    this.#fatal ??= reason;
    this.#stop.abort();
  }

  async #start(cleanups: (() => Promise<void> | void)[]): Promise<void> {
    const c = this.#config;
    const stop = this.#stop.signal;

    // --- Datastore and the cluster's view of our settings.
    this.#store = await this.#deps.openStore({
      etcdEndpoints: c.etcdEndpoints,
      ...(c.etcdCaCertFile !== undefined ? { etcdCaFile: c.etcdCaCertFile } : {}),
      ...(c.etcdCertFile !== undefined ? { etcdCertFile: c.etcdCertFile } : {}),
      ...(c.etcdKeyFile !== undefined ? { etcdKeyFile: c.etcdKeyFile } : {}),
      ...(c.etcdUsername !== undefined ? { etcdUsername: c.etcdUsername } : {}),
      ...(c.etcdPassword !== undefined ? { etcdPassword: c.etcdPassword } : {}),
    });
    cleanups.push(() => this.#store.backend.close());
    this.#felixDefault = await this.#readFelix("default");
    this.#felixNode = await this.#readFelix(`node.${c.nodeName}`);
    this.#reconfigure(true);
    const node = await registerNode(this.#store, {
      name: this.#config.nodeName,
      ...(this.#config.nodeIPv4 !== undefined ? { ipv4: this.#config.nodeIPv4 } : {}),
      ...(this.#config.nodeIPv6 !== undefined ? { ipv6: this.#config.nodeIPv6 } : {}),
      ...(this.#config.asNumber !== undefined ? { asNumber: this.#config.asNumber } : {}),
    });
    this.#log.info(
      {
        created: node.created,
        changed: node.changed,
        resourceVersion: node.resource.metadata.resourceVersion,
      },
      node.created ? "node registered" : node.changed ? "node updated" : "node unchanged",
    );

    // --- The pipeline.
    this.#calc = new CalcGraph({ hostname: this.#config.nodeName });
    this.#dataplane = new Dataplane(
      {
        ...this.#deps.kernel,
        isUp: (name) => this.#links.isUp(name),
      },
      this.#dataplaneSettings(),
    );
    this.#statusWriter = new EndpointStatusWriter(this.#store.backend, {
      prefix: this.#store.prefix,
      node: this.#config.nodeName,
    });
    this.#metrics = createMetrics({
      syncStatus: () => this.#syncStatus,
      syncStats: () => this.#syncer?.stats() ?? { resyncs: 0, watchRestarts: 0, revision: 0 },
      calcStats: () => this.#calc.stats(),
      dataplaneStats: () => this.#dataplane.stats(),
      ...(this.#config.bgpEnabled ? { bgp: () => this.#bgp } : {}),
    });

    // --- HTTP: always on.
    const health: HealthServer = await startHealthServer(
      {
        live: () => {
          const stuck =
            this.#applyStartedAt !== undefined &&
            this.#now() - this.#applyStartedAt > APPLY_STUCK_MS;
          return {
            ok: !stuck && this.#fatal === undefined,
            detail: { syncStatus: this.#syncStatus, applyStuck: stuck },
          };
        },
        ready: () => ({
          ok: this.#firstApplyDone && this.#lastApplyOk && !stop.aborted,
          detail: {
            syncStatus: this.#syncStatus,
            firstApplyDone: this.#firstApplyDone,
            lastApplyOk: this.#lastApplyOk,
            consecutiveFailures: this.#consecutiveFailures,
          },
        }),
        metrics: async () => ({
          contentType: this.#metrics.contentType,
          body: await this.#metrics.render(),
        }),
      },
      {
        host: this.#config.healthHost,
        port: this.#config.healthPort,
        logger: this.#logging.child("http"),
      },
    );
    cleanups.push(() => health.close());

    // --- Interfaces: watched, so a veth that appears late gets its routes.
    const linkLog = this.#logging.child("links");
    this.#links = new LinkMonitor(this.#deps.kernel.links, {
      refreshIntervalMs: this.#config.interfaceRefreshInterval,
      onChange: (name, link) => {
        this.#dataplane.onLinkChange(name, link);
        if (this.#dataplane.dirty) this.#requestApply();
      },
      onError: (err) => {
        this.#metrics.countError("link-monitor");
        linkLog.warn(errorFields(err), "link monitor problem; restarting it");
      },
    });
    const links = await this.#links.start(stop);
    cleanups.push(() => links.done);

    // --- BGP: adopt a running BIRD (or clean up after a dead one) now;
    // nothing is rendered before the first in-sync.
    if (this.#config.bgpEnabled) await this.#startBgp(cleanups);

    // --- Loops: apply, periodic read-backs, summary.
    const applyLoop = this.#applyLoop(stop);
    cleanups.push(() => applyLoop);
    cleanups.push(() => this.#statusLoop);
    this.#startTimers();
    cleanups.push(() => this.#stopTimers());

    // --- The syncer last: everything it feeds is in place.
    const syncLog = this.#logging.child("syncer");
    this.#syncer = startSyncer(this.#store, (batch) => this.#onUpdates(batch), {
      signal: stop,
      logger: fieldLogger(syncLog),
    });
    const syncer = this.#syncer;
    syncer.done.then(
      () => undefined,
      (err: unknown) => {
        this.#metrics.countError("datastore");
        syncLog.error(errorFields(err), "datastore syncer failed");
        this.#die(`datastore syncer failed: ${(err as Error).message}`);
      },
    );
    // A list in flight is not cancelled by the signal: wait, but not forever.
    cleanups.push(() =>
      within(
        STOP_GRACE_MS,
        syncer.done.catch(() => undefined),
      ),
    );

    this.#log.info(
      { healthHost: health.host, healthPort: health.port, nodeName: this.#config.nodeName },
      "agent started; waiting for the datastore snapshot",
    );
    this.#options.onStarted?.({ healthPort: health.port, nodeName: this.#config.nodeName });
  }

  async #startBgp(cleanups: (() => Promise<void> | void)[]): Promise<void> {
    const c = this.#config;
    const paths = birdPaths(c.birdDir ?? defaultBirdDir(c.nodeName));
    const birdLog = this.#logging.child("bird");
    const options: BirdSupervisorOptions = { binary: c.birdBinary, logger: birdLog };
    const bird = this.#deps.bird?.(paths, options) ?? new BirdSupervisor(paths, options);
    this.#bgpSecrets = await loadBgpSecrets(c.bgpSecretsDir);
    const bgp = new BgpRuntime({
      nodeName: c.nodeName,
      backend: this.#store.backend,
      prefix: this.#store.prefix,
      bird,
      render: (inputs) => renderBird(buildBgpModel(inputs), paths),
      logger: this.#logging.child("bgp"),
      minIntervalMs: c.minApplyInterval,
      onError: () => this.#metrics.countError("bgp"),
      extras: this.#bgpExtras(),
    });
    await bgp.start();
    this.#bgp = bgp;
    cleanups.push(() => bgp.stop({ stopBird: this.#config.birdStopOnExit }));
  }

  #bgpExtras(): BgpExtras {
    return {
      workloadRouteProtocol: this.#config.deviceRouteProtocol,
      workloadInterfacePrefix: this.#config.interfacePrefix,
      secrets: this.#bgpSecrets,
    };
  }

  async #readFelix(name: string): Promise<FelixSource | undefined> {
    try {
      const r = await this.#store.get(FELIX_CONFIGURATION, name);
      return { name, spec: (r.spec ?? {}) as Record<string, unknown> };
    } catch (err) {
      if (isErrorCode(err, "NotFound")) return undefined;
      throw err;
    }
  }

  // ---------------------------------------------------------------------------
  // Configuration.

  /** Resolve again from every source; apply what may change live. */
  #reconfigure(initial: boolean): void {
    const sources: ConfigSources = { ...this.#local };
    if (this.#felixNode) sources.felixNode = this.#felixNode;
    if (this.#felixDefault) sources.felixDefault = this.#felixDefault;
    const log = this.#logging.child("config");
    let resolved;
    try {
      resolved = resolveConfig(sources, { hostname: this.#hostname });
    } catch (err) {
      // Only local sources can fail, and they were fine at start.
      log.error(errorFields(err), "configuration no longer resolves; keeping the current one");
      return;
    }
    for (const w of resolved.warnings) log.warn({ problem: w }, "FelixConfiguration value ignored");
    const before = this.#config;
    const after = { ...resolved.config, nodeName: before.nodeName };
    if (initial) {
      this.#config = after;
      const nonDefault: Record<string, string> = {};
      for (const p of CONFIG_PARAMS) {
        if (resolved.origins[p.name] === "default" || p.name === "etcdPassword") continue;
        nonDefault[p.name] =
          `${p.type.format(after[p.name] as never)} (${resolved.origins[p.name]})`;
      }
      log.info({ settings: nonDefault }, "configuration resolved");
      this.#logging.setSeverity(after.logSeverityScreen);
      return;
    }
    const changed = liveSettingsChanged(before, after);
    if (changed.length === 0) return;
    const needRestart = changed.filter((n) => CONFIG_PARAMS.find((p) => p.name === n)?.restart);
    for (const n of needRestart) (after as Record<string, unknown>)[n] = before[n];
    this.#config = after;
    const live = changed.filter((n) => !needRestart.includes(n));
    if (needRestart.length > 0)
      log.warn(
        { settings: needRestart },
        "setting changed in FelixConfiguration; takes effect when the agent restarts",
      );
    if (live.length === 0) return;
    log.info(
      { settings: Object.fromEntries(live.map((n) => [n, after[n]])) },
      "settings changed in FelixConfiguration; applying",
    );
    this.#logging.setSeverity(after.logSeverityScreen);
    this.#dataplane.configure(this.#dataplaneSettings());
    this.#bgp?.setExtras(this.#bgpExtras());
    if (live.some((n) => n.endsWith("RefreshInterval") || n === "reportingInterval"))
      this.#startTimers();
    this.#requestApply();
  }

  #dataplaneSettings(): DataplaneSettings {
    const c = this.#config;
    const pools = [...this.#pools.values()];
    return {
      render: {
        interfacePrefix: c.interfacePrefix,
        defaultEndpointToHostAction: c.defaultEndpointToHostAction,
        failsafeInbound: c.failsafeInboundHostPorts,
        failsafeOutbound: c.failsafeOutboundHostPorts,
        natOutgoingPools: pools
          .filter((p) => p.natOutgoing)
          .map((p) => p.cidr)
          .sort(),
        allPools: pools.map((p) => p.cidr).sort(),
        logPrefix: c.logPrefix,
      },
      routeProtocol: c.deviceRouteProtocol,
      ipv6: c.ipv6Support,
      forwarding: c.ipForwarding === "Enabled",
      allowSourceSpoofing: c.workloadSourceSpoofing === "Any",
      routeSyncDisabled: c.routeSyncDisabled,
    };
  }

  // ---------------------------------------------------------------------------
  // The syncer's stream.

  #onUpdates(batch: SyncUpdate[]): void {
    let felixChanged = false;
    let poolsChanged = false;
    const node = this.#config.nodeName;
    for (const u of batch) {
      if (u.type === "status") {
        if (u.status !== this.#syncStatus) {
          this.#log.info({ from: this.#syncStatus, to: u.status }, "datastore sync status");
          this.#syncStatus = u.status;
        }
        continue;
      }
      const kind = u.type === "put" ? u.resource.kind : u.kind.id;
      const name = u.type === "put" ? u.resource.metadata.name : u.name;
      if (kind === "FelixConfiguration" && (name === "default" || name === `node.${node}`)) {
        const source =
          u.type === "put"
            ? { name, spec: (u.resource.spec ?? {}) as Record<string, unknown> }
            : undefined;
        if (name === "default") this.#felixDefault = source;
        else this.#felixNode = source;
        felixChanged = true;
      } else if (kind === "IPPool") {
        poolsChanged = this.#onPool(u) || poolsChanged;
      } else if (kind === "WorkloadEndpoint") {
        this.#trackEndpointVersion(u);
      }
    }
    this.#calc.onUpdates(batch);
    this.#bgp?.onUpdates(batch);
    for (const e of this.#calc.drainErrors()) {
      this.#metrics.countError("calc");
      this.#logging
        .child("calc")
        .warn({ resource: e.resource, problem: e.message }, "resource skipped");
    }
    if (felixChanged) this.#reconfigure(false);
    if (poolsChanged) {
      this.#dataplane.configure(this.#dataplaneSettings());
    }
    this.#requestApply();
  }

  #onPool(u: SyncUpdate): boolean {
    if (u.type === "status") return false;
    const name = u.type === "put" ? u.resource.metadata.name : u.name;
    if (u.type === "delete") return this.#pools.delete(name);
    const spec = (u.resource.spec ?? {}) as { cidr?: unknown; natOutgoing?: unknown };
    if (typeof spec.cidr !== "string") return this.#pools.delete(name);
    const pool = { cidr: spec.cidr, natOutgoing: spec.natOutgoing === true };
    const old = this.#pools.get(name);
    if (old && old.cidr === pool.cidr && old.natOutgoing === pool.natOutgoing) return false;
    this.#pools.set(name, pool);
    return true;
  }

  #trackEndpointVersion(u: SyncUpdate): void {
    if (u.type === "status") return;
    if (u.type === "delete") {
      this.#endpointVersions.delete(`workload/${u.namespace ?? "default"}/${u.name}`);
      return;
    }
    const r: Resource = u.resource;
    const id = `workload/${r.metadata.namespace ?? "default"}/${r.metadata.name}`;
    if ((r.spec as { node?: unknown } | undefined)?.node === this.#config.nodeName) {
      this.#endpointVersions.set(id, String(r.metadata.resourceVersion ?? "0"));
    } else {
      this.#endpointVersions.delete(id);
    }
  }

  // ---------------------------------------------------------------------------
  // The apply loop.

  #requestApply(): void {
    this.#applyRequested = true;
    this.#wake?.();
  }

  async #applyLoop(stop: AbortSignal): Promise<void> {
    stop.addEventListener("abort", () => this.#wake?.(), { once: true });
    while (!stop.aborted) {
      if (!this.#applyRequested) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = undefined;
        continue;
      }
      // Coalesce a burst, and back off after a failure.
      const wait =
        Math.max(this.#lastApplyStart + this.#config.minApplyInterval, this.#retryAt) - this.#now();
      if (wait > 0) await sleep(wait, stop);
      if (stop.aborted) break;
      this.#applyRequested = false;
      try {
        await this.#applyOnce(stop);
      } catch (err) {
        // A bug, not a kernel failure: log it and stop rather than spin.
        this.#log.error(errorFields(err), "apply loop failed");
        this.#die(`apply loop failed: ${(err as Error).message}`);
      }
    }
  }

  async #applyOnce(stop: AbortSignal): Promise<void> {
    const msgs: DataplaneMessage[] = this.#calc.flush();
    if (msgs.length > 0) this.#dataplane.onMessages(msgs);
    // Nothing reaches the kernel before the first complete snapshot.
    if (!this.#dataplane.inSync) return;
    if (!this.#inSyncSeen) {
      this.#inSyncSeen = true;
      this.#log.info(this.#calc.stats(), "in sync with the datastore; programming the dataplane");
    }
    const versions = new Map(this.#endpointVersions);
    if (!this.#dataplane.dirty) {
      // Only resourceVersions may have moved on (a change the dataplane does not see).
      this.#publishStatus(versions);
      return;
    }
    const t0 = this.#now();
    this.#lastApplyStart = t0;
    this.#applyStartedAt = t0;
    let result;
    try {
      result = await this.#dataplane.apply(stop);
    } catch (err) {
      const ms = this.#now() - t0;
      this.#applyStartedAt = undefined;
      if (stop.aborted) return;
      this.#consecutiveFailures++;
      this.#failuresSinceSummary++;
      this.#lastApplyOk = false;
      this.#metrics.observeApply(ms / 1000, false);
      this.#metrics.countError("apply");
      const max = this.#config.maxApplyFailures;
      this.#logging.child("dataplane").error(
        {
          ...errorFields(err),
          consecutiveFailures: this.#consecutiveFailures,
          maxApplyFailures: max,
        },
        "dataplane apply failed",
      );
      this.#publishErrors(versions, (err as Error).message);
      if (this.#consecutiveFailures >= max) {
        this.#die(
          `${this.#consecutiveFailures} dataplane applies failed in a row (maxApplyFailures ${max}); last: ${(err as Error).message}`,
        );
        return;
      }
      this.#retryAt = this.#now() + Math.min(100 * 2 ** this.#consecutiveFailures, 5_000);
      this.#requestApply();
      return;
    }
    const ms = this.#now() - t0;
    this.#applyStartedAt = undefined;
    this.#lastApplyMs = ms;
    this.#appliesSinceSummary++;
    this.#metrics.observeApply(ms / 1000, true);
    if (this.#consecutiveFailures > 0) {
      this.#log.info({ after: this.#consecutiveFailures }, "dataplane apply succeeded again");
    }
    this.#consecutiveFailures = 0;
    this.#lastApplyOk = true;
    const dpLog = this.#logging.child("dataplane");
    const drift = result.nft.drift;
    if (drift.length === 1 && drift[0] === "table missing") {
      dpLog.info("nftables table inet twill created");
    } else if (drift.length > 0 && result.nft.wrote !== "nothing") {
      dpLog.warn(
        { drift, wrote: result.nft.wrote },
        "nftables differed from the desired ruleset; repaired",
      );
    }
    if (
      result.nft.wrote !== "nothing" ||
      result.routes.changed > 0 ||
      result.sysctlWrites > 0 ||
      !this.#firstApplyDone
    ) {
      dpLog.info(
        {
          nft: result.nft.wrote,
          nftBytes: result.nft.bytes,
          routesChanged: result.routes.changed,
          routesPending: result.routes.pending.length,
          sysctlWrites: result.sysctlWrites,
          ms: Math.round(ms),
        },
        this.#firstApplyDone ? "dataplane updated" : "dataplane programmed (first apply)",
      );
    }
    for (const f of result.routes.failed) {
      this.#metrics.countError("apply");
      dpLog.warn({ dst: f.dst, dev: f.dev, error: f.error }, "route not programmed; will retry");
    }
    this.#firstApplyDone = true;
    this.#logEndpointChanges(result.endpoints);
    this.#publishStatus(versions);
    if (this.#dataplane.dirty) {
      // Routes or sysctls failed: try again soon, without counting it as a policy failure.
      this.#retryAt = this.#now() + 1_000;
      this.#requestApply();
    }
  }

  #logEndpointChanges(endpoints: ReadonlyMap<string, EndpointProgramming>): void {
    const changes: { id: string; state: string; message?: string }[] = [];
    for (const [id, ep] of endpoints) {
      if (this.#endpointStates.get(id) !== ep.state) {
        changes.push(
          ep.message === undefined
            ? { id, state: ep.state }
            : { id, state: ep.state, message: ep.message },
        );
      }
    }
    for (const id of this.#endpointStates.keys())
      if (!endpoints.has(id)) changes.push({ id, state: "removed" });
    this.#endpointStates = new Map([...endpoints].map(([id, ep]) => [id, ep.state]));
    if (changes.length === 0) return;
    const log = this.#logging.child("endpoints");
    if (changes.length > ENDPOINT_CHANGES_LOGGED) {
      const counts: Record<string, number> = {};
      for (const c of changes) counts[c.state] = (counts[c.state] ?? 0) + 1;
      log.info({ changes: changes.length, ...counts }, "endpoint states changed");
      return;
    }
    for (const c of changes) log.info(c, "endpoint state");
  }

  /** After a successful apply (or none needed): each endpoint's status, written in the background. */
  #publishStatus(versions: ReadonlyMap<string, string>): void {
    if (!this.#firstApplyDone) return;
    const next = new Map<string, { namespace: string; name: string; status: EndpointStatus }>();
    for (const [id, ep] of this.#dataplane.endpointStatus) {
      const rv = versions.get(id);
      if (rv === undefined) continue;
      if (ep.state === "pending") {
        // Keep what was said before; "programmed" at an older revision does not count for a newer one.
        const prev = this.#statuses.get(id);
        if (prev) next.set(id, prev);
        continue;
      }
      const status: EndpointStatus = { state: ep.state, resourceVersion: rv };
      if (ep.message !== undefined) status.message = ep.message;
      next.set(id, { namespace: ep.namespace, name: ep.name, status });
    }
    this.#statuses = next;
    this.#statusWriter.setDesired(next);
    this.#kickStatusWriter();
  }

  /** After a failed apply: endpoints not programmed at their current revision learn why. */
  #publishErrors(versions: ReadonlyMap<string, string>, message: string): void {
    if (!this.#firstApplyDone) return;
    const next = new Map(this.#statuses);
    for (const ep of this.#dataplane.desired.endpoints.values()) {
      if (ep.kind !== "workload") continue;
      const rv = versions.get(ep.id);
      const prev = next.get(ep.id);
      if (rv === undefined || (prev && prev.status.resourceVersion === rv)) continue;
      next.set(ep.id, {
        namespace: ep.namespace ?? "default",
        name: ep.name,
        status: {
          state: "error",
          resourceVersion: rv,
          message: `policy not programmed: ${message.split("\n")[0]}`,
        },
      });
    }
    this.#statuses = next;
    this.#statusWriter.setDesired(next);
    this.#kickStatusWriter();
  }

  #kickStatusWriter(): void {
    if (this.#statusLoop) {
      this.#statusAgain = true;
      return;
    }
    const stop = this.#stop.signal;
    const log = this.#logging.child("status");
    this.#statusLoop = (async () => {
      let delay = 200;
      do {
        this.#statusAgain = false;
        try {
          const r = await this.#statusWriter.flush();
          if (r.put + r.deleted > 0) log.debug(r, "endpoint status written");
          delay = 200;
        } catch (err) {
          if (stop.aborted) break;
          this.#metrics.countError("status");
          log.warn(
            { ...errorFields(err), retryMs: delay },
            "writing endpoint status failed; retrying",
          );
          await sleep(delay, stop);
          delay = Math.min(delay * 2, 10_000);
          this.#statusAgain = true;
        }
      } while (this.#statusAgain && !stop.aborted);
    })().finally(() => {
      this.#statusLoop = undefined;
      // A kick that came after the loop's last check but before this
      // callback only set #statusAgain: run again, or those statuses would
      // wait for the next apply (and a CNI ADD waiting on them with it).
      if (this.#statusAgain && !stop.aborted) this.#kickStatusWriter();
    });
  }

  // ---------------------------------------------------------------------------
  // Timers: read-backs and the summary.

  #startTimers(): void {
    this.#stopTimers();
    const c = this.#config;
    const timers = this.#timers;
    const every = (ms: number, fn: () => void) => {
      if (ms > 0) timers.push(setInterval(fn, ms));
    };
    every(c.nftablesRefreshInterval, () => {
      this.#dataplane.requestNftResync();
      this.#requestApply();
    });
    every(c.routeRefreshInterval, () => {
      this.#dataplane.requestRouteResync();
      this.#requestApply();
    });
    every(c.reportingInterval, () => this.#summary());
  }

  #stopTimers(): void {
    for (const t of this.#timers.splice(0)) clearInterval(t);
  }

  #summary(): void {
    const calc = this.#calc.stats();
    const dp = this.#dataplane.stats();
    this.#log.info(
      {
        syncStatus: this.#syncStatus,
        revision: this.#syncer?.stats().revision ?? 0,
        localEndpoints: calc.localEndpoints,
        activePolicies: calc.activePolicies,
        ipsets: calc.ipsets,
        programmedEndpoints: dp.programmedEndpoints,
        routes: dp.routes,
        pendingRoutes: dp.pendingRoutes,
        applies: this.#appliesSinceSummary,
        applyFailures: this.#failuresSinceSummary,
        lastApplyMs: Math.round(this.#lastApplyMs),
        ready: this.#firstApplyDone && this.#lastApplyOk,
        ...(this.#bgp ? { bird: this.#bgp.stats().state } : {}),
      },
      "summary",
    );
    this.#appliesSinceSummary = 0;
    this.#failuresSinceSummary = 0;
  }
}

/** `p`, or nothing after `ms`. */
async function within(ms: number, p: Promise<unknown>): Promise<void> {
  let t: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise<void>((resolve) => (t = setTimeout(resolve, ms)))]);
  clearTimeout(t);
}
