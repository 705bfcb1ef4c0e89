// The dataplane manager: the calc's messages in, the kernel converged out.
//
//   onMessages(msgs) ── applyMessage ──► DesiredDataplane    (stash, mark dirty: no I/O)
//   onLinkChange(name)  ──────────────►  routes/sysctls dirty (no I/O)
//   configure(settings) ──────────────►  re-render, drivers reconfigured
//   apply():
//     1 render what the messages touched (RulesetRenderer, pure) → NftDriver:
//       one transaction, the delta over just what changed
//     2 sysctls: global forwarding; each workload interface that is up
//     3 RouteDriver: routes of workloads whose interface is up
//     4 status per local workload endpoint: programmed / pending / error
//
// Policy first. Until twill's table is in the kernel (the first apply, or
// after a failed write), nothing else is written before nft succeeds: if it
// refuses, apply() throws before any route or sysctl changes. Once the table
// is there, 2 and 3 run while nft works on 1: the table drops all traffic
// of a twill-prefixed interface its verdict maps do not name, so a route or
// sysctl that lands before its endpoint's policy opens nothing (and an
// endpoint is reported programmed only when all three are done). Either
// way, when nft refuses, apply() throws, the manager stays dirty, and the
// agent counts a failure (too many in a row and it exits rather than run
// with policy it could not program). Routes and sysctls that fail are
// reported per endpoint and retried at the next apply.
//
// Nothing is written before the calc's in-sync: apply() refuses until then.
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { DataplaneMessage, LocalEndpoint } from "../calc/messages.js";
import { TwillError, isErrorCode } from "../util/errors.js";
import {
  applyMessage,
  emptyChangedIds,
  emptyDesiredDataplane,
  noteChangedIds,
} from "./desired-state.js";
import type { ChangedIds, DesiredDataplane } from "./desired-state.js";
import type { Link } from "./link-monitor.js";
import { NftDriver } from "./nft-driver.js";
import type { NftApplyResult, NftKernel } from "./nft-driver.js";
import { RulesetRenderer, nftNames } from "./render-nft.js";
import type { RenderConfig, RenderedRuleset } from "./render-nft.js";
import { RouteDriver } from "./route-driver.js";
import type { RouteApplyResult, RouteTable } from "./route-driver.js";
import { SysctlDriver } from "./sysctl-driver.js";
import type { Sysctls } from "./sysctl-driver.js";

export interface DataplaneSettings {
  render: RenderConfig;
  routeProtocol: number;
  ipv6: boolean;
  /** Turn IP forwarding on (ipForwarding Enabled). */
  forwarding: boolean;
  /**
   * Honour endpoints' allowSpoofedSourcePrefixes (workloadSourceSpoofing Any).
   * When false they are ignored, and workload interfaces get strict rp_filter.
   */
  allowSourceSpoofing: boolean;
  /** Program no routes at all (routeSyncDisabled). */
  routeSyncDisabled: boolean;
}

export interface DataplaneDeps {
  nft: NftKernel;
  routes: RouteTable;
  sysctls: Sysctls;
  /** Whether an interface exists and is up (the link monitor). */
  isUp(name: string): boolean;
}

export type EndpointState = "programmed" | "pending" | "error";

export interface EndpointProgramming {
  id: string;
  namespace: string;
  name: string;
  state: EndpointState;
  /** Why it is pending or in error. */
  message?: string;
}

export interface ApplyResult {
  nft: NftApplyResult;
  routes: RouteApplyResult;
  sysctlWrites: number;
  /** Local workload endpoints by id. */
  endpoints: Map<string, EndpointProgramming>;
}

export class Dataplane {
  readonly #deps: DataplaneDeps;
  #settings: DataplaneSettings;
  readonly #state: DesiredDataplane = emptyDesiredDataplane();
  readonly #nft: NftDriver;
  readonly #routes: RouteDriver;
  readonly #sysctls: SysctlDriver;
  #renderDirty = true;
  #linksDirty = true;
  #rendered: RenderedRuleset | undefined;
  /** Keeps the ruleset, re-rendering what the messages touched. */
  readonly #renderer = new RulesetRenderer();
  /** Ids the messages touched since the last rendering. */
  readonly #touched: ChangedIds = emptyChangedIds();
  /** Render everything at the next apply (settings that change every endpoint). */
  #renderAll = true;
  /** The endpoints as the renderer sees them (see #forRender). */
  readonly #renderEndpoints = new Map<string, LocalEndpoint>();
  /** Interface → local workload endpoint ids using it. */
  readonly #byInterface = new Map<string, Set<string>>();
  /** Of those, the ones whose sysctls may not be set yet (the rest are not looked at). */
  readonly #sysctlsPending = new Set<string>();
  /** Local endpoint id → destinations of its routes (as the state holds them). */
  readonly #routesOf = new Map<string, Set<string>>();
  #lastStatus = new Map<string, EndpointProgramming>();

  constructor(deps: DataplaneDeps, settings: DataplaneSettings) {
    this.#deps = deps;
    this.#settings = settings;
    this.#nft = new NftDriver(deps.nft);
    this.#routes = new RouteDriver(deps.routes, {
      protocol: settings.routeProtocol,
      ipv6: settings.ipv6,
    });
    this.#sysctls = new SysctlDriver(deps.sysctls, sysctlOptions(settings));
  }

  /** Stash the calc's messages (in flush order). No I/O. */
  onMessages(msgs: readonly DataplaneMessage[]): void {
    for (const msg of msgs) {
      switch (msg.type) {
        case "endpoint-update": {
          const old = this.#state.endpoints.get(msg.endpoint.id);
          if (old) this.#unindex(old.id, old.interfaceName);
          if (msg.endpoint.kind === "workload")
            this.#index(msg.endpoint.id, msg.endpoint.interfaceName);
          this.#linksDirty = true;
          break;
        }
        case "endpoint-remove": {
          const old = this.#state.endpoints.get(msg.id);
          if (old) this.#unindex(old.id, old.interfaceName);
          break;
        }
        case "route-update": {
          const old = this.#state.routes.get(msg.route.dst);
          if (old) this.#unindexRoute(old.endpointId, old.dst);
          this.#indexRoute(msg.route.endpointId, msg.route.dst);
          this.#routes.setRoute(msg.route.dst, msg.route.interfaceName);
          break;
        }
        case "route-remove": {
          const old = this.#state.routes.get(msg.dst);
          if (old) this.#unindexRoute(old.endpointId, old.dst);
          this.#routes.removeRoute(msg.dst);
          break;
        }
        default:
          break;
      }
      applyMessage(this.#state, msg);
      this.#touch(msg);
      this.#renderDirty = true;
    }
  }

  /** Notes what a message changed for the renderer. */
  #touch(msg: DataplaneMessage): void {
    noteChangedIds(this.#touched, msg);
    if (msg.type === "endpoint-update") {
      this.#renderEndpoints.set(msg.endpoint.id, this.#forRender(msg.endpoint));
    } else if (msg.type === "endpoint-remove") {
      this.#renderEndpoints.delete(msg.id);
    }
  }

  /** An interface appeared, changed or went away (the link monitor). No I/O. */
  onLinkChange(name: string, _link: Link | undefined): void {
    if (!this.#byInterface.has(name)) return;
    // Gone, down, or re-created under the same name (the kernel's defaults
    // again): check its sysctls anew when it is up.
    this.#sysctls.forget(name);
    this.#sysctlsPending.add(name);
    this.#routes.onLinkChange(name);
    this.#linksDirty = true;
  }

  configure(settings: DataplaneSettings): void {
    const spoofing = settings.allowSourceSpoofing !== this.#settings.allowSourceSpoofing;
    this.#settings = settings;
    if (spoofing) {
      for (const [id, ep] of this.#state.endpoints)
        this.#renderEndpoints.set(id, this.#forRender(ep));
      this.#renderAll = true;
    }
    this.#routes.configure({ protocol: settings.routeProtocol, ipv6: settings.ipv6 });
    this.#sysctls.configure(sysctlOptions(settings));
    for (const name of this.#byInterface.keys()) this.#sysctlsPending.add(name);
    this.#renderDirty = true;
    this.#linksDirty = true;
  }

  requestNftResync(): void {
    this.#nft.requestResync();
  }

  requestRouteResync(): void {
    this.#routes.requestResync();
  }

  get inSync(): boolean {
    return this.#state.inSync;
  }

  /** Something to write (or to check) at the next apply. */
  get dirty(): boolean {
    return this.#renderDirty || this.#linksDirty || this.#nft.dirty || this.#routes.dirty;
  }

  /** The desired state (read-only use: explain, tests). */
  get desired(): DesiredDataplane {
    return this.#state;
  }

  /** Per-endpoint status after the last apply. */
  get endpointStatus(): ReadonlyMap<string, EndpointProgramming> {
    return this.#lastStatus;
  }

  stats(): { routes: number; pendingRoutes: number; programmedEndpoints: number } {
    const r = this.#routes.stats();
    let programmed = 0;
    for (const s of this.#lastStatus.values()) if (s.state === "programmed") programmed++;
    return { routes: r.routes, pendingRoutes: r.pending, programmedEndpoints: programmed };
  }

  async apply(signal?: AbortSignal): Promise<ApplyResult> {
    if (!this.#state.inSync) {
      throw new TwillError(
        "Internal",
        "dataplane apply before the calc's in-sync: nothing may be written yet",
      );
    }
    if (this.#renderDirty || !this.#rendered) {
      // A render that throws leaves the flag set: every apply fails the same
      // way (and the agent eventually exits) rather than keep an old ruleset
      // and call the new endpoints programmed.
      // Only what the messages touched (the renderer starts afresh by itself
      // when the render config is new).
      const t = this.#touched;
      this.#rendered = this.#renderer.render(
        { ...this.#state, endpoints: this.#renderEndpoints },
        this.#settings.render,
        this.#renderAll ? {} : { changed: t },
      );
      this.#renderAll = false;
      for (const ids of Object.values(t)) ids.clear();
      this.#renderDirty = false;
      this.#nft.setDesired(this.#rendered, this.#renderer.takeChanges());
    }
    const rendered = this.#rendered;
    // The table in place (see the header): links go along with nft.
    const concurrent = this.#nft.tableInPlace;
    const nftDone = this.#nft.apply(signal);
    if (!concurrent) await nftDone;
    const links = this.#applyLinks(signal);
    const [nftResult, linkResult] = await Promise.allSettled([nftDone, links]);
    if (nftResult.status === "rejected") throw nftResult.reason;
    if (linkResult.status === "rejected") throw linkResult.reason;
    const nft = nftResult.value;
    const { routes, sysctlWrites, sysctlErrors } = linkResult.value;
    const routeErrors = new Map(routes.failed.map((f) => [f.dst, f.error]));

    // Every local workload's status; an unchanged one keeps its object (no
    // garbage for 2,000 endpoints at every apply).
    const endpoints = new Map<string, EndpointProgramming>();
    const fromWl = rendered.maps.get("from-wl")?.elements;
    for (const ep of this.#state.endpoints.values()) {
      if (ep.kind !== "workload") continue;
      const [state, message] = this.#endpointState(ep, fromWl, sysctlErrors, routeErrors);
      const namespace = ep.namespace ?? "default";
      const old = this.#lastStatus.get(ep.id);
      const same =
        old !== undefined &&
        old.state === state &&
        old.message === message &&
        old.name === ep.name &&
        old.namespace === namespace;
      endpoints.set(
        ep.id,
        same
          ? old
          : message === undefined
            ? { id: ep.id, namespace, name: ep.name, state }
            : { id: ep.id, namespace, name: ep.name, state, message },
      );
    }
    this.#lastStatus = endpoints;
    return { nft, routes, sysctlWrites, endpoints };
  }

  #endpointState(
    ep: LocalEndpoint,
    fromWl: ReadonlyMap<string, string> | undefined,
    sysctlErrors: ReadonlyMap<string, string>,
    routeErrors: ReadonlyMap<string, string>,
  ): [EndpointState, string | undefined] {
    const iface = ep.interfaceName;
    if (iface === "") return ["error", "the endpoint has no interfaceName"];
    if (fromWl?.get(iface) !== this.#dispatchVerdict(ep)) {
      const owner = [...(this.#byInterface.get(iface) ?? [])].find((id) => id !== ep.id);
      return [
        "error",
        owner === undefined
          ? `interface "${iface}" cannot carry policy`
          : `interface "${iface}" is already used by endpoint ${owner}`,
      ];
    }
    const dsts = this.#routesOf.get(ep.id);
    const sysctlError = sysctlErrors.get(iface);
    if (sysctlError !== undefined) return ["error", sysctlError];
    if (dsts && routeErrors.size > 0) {
      for (const d of dsts) {
        const e = routeErrors.get(d);
        if (e) return ["error", e];
      }
    }
    if (!this.#deps.isUp(iface)) return ["pending", `interface "${iface}" is not up`];
    if (dsts && !this.#settings.routeSyncDisabled) {
      for (const d of dsts) {
        if (this.#routes.state(d) === "programmed") continue;
        if (this.#settings.ipv6 || !d.includes(":"))
          return ["pending", "routes not programmed yet"];
      }
    }
    return ["programmed", undefined];
  }

  /** Sysctls, then routes, for the workload interfaces that are up. */
  async #applyLinks(signal?: AbortSignal): Promise<{
    routes: RouteApplyResult;
    sysctlWrites: number;
    sysctlErrors: Map<string, string>;
  }> {
    const { isUp } = this.#deps;
    // Sysctls before routes: a workload's first ARP must find proxy_arp on.
    this.#linksDirty = false;
    let sysctlWrites = await this.#sysctls.ensureGlobal();
    const sysctlErrors = new Map<string, string>();
    let done = 0;
    for (const name of [...this.#sysctlsPending]) {
      if (!isUp(name)) continue;
      if (this.#sysctls.isConfigured(name)) {
        this.#sysctlsPending.delete(name);
        continue;
      }
      // The real sysctls are synchronous (fast): let others run now and then.
      if (++done % SYSCTL_INTERFACES_PER_TURN === 0) await yieldToEventLoop();
      try {
        sysctlWrites += await this.#sysctls.configureInterface(name);
        if (this.#sysctls.isConfigured(name)) this.#sysctlsPending.delete(name);
      } catch (err) {
        // Gone between the link event and now: pending, the monitor will say.
        if (!isErrorCode(err, "NotFound")) {
          sysctlErrors.set(name, (err as Error).message);
          this.#linksDirty = true;
        }
      }
    }
    const routes: RouteApplyResult = this.#settings.routeSyncDisabled
      ? { changed: 0, failed: [], pending: [] }
      : await this.#routes.apply(isUp, signal);
    return { routes, sysctlWrites, sysctlErrors };
  }

  /** What the from-wl map holds for a workload whose policy is programmed (kept per endpoint object). */
  readonly #verdicts = new WeakMap<LocalEndpoint, string>();

  #dispatchVerdict(ep: LocalEndpoint): string {
    let v = this.#verdicts.get(ep);
    if (v === undefined)
      this.#verdicts.set(ep, (v = `goto ${nftNames.workloadChain(ep.id, "from")}`));
    return v;
  }

  /** One stripped copy per endpoint object (see #forRender). */
  readonly #stripped = new WeakMap<LocalEndpoint, LocalEndpoint>();

  /** An endpoint as the renderer should see it: spoofing prefixes only when allowed. */
  #forRender(ep: LocalEndpoint): LocalEndpoint {
    if (this.#settings.allowSourceSpoofing || ep.allowSpoofedSourcePrefixes.length === 0) return ep;
    // The same copy until the endpoint itself changes: the renderer sees no change.
    let stripped = this.#stripped.get(ep);
    if (!stripped) this.#stripped.set(ep, (stripped = { ...ep, allowSpoofedSourcePrefixes: [] }));
    return stripped;
  }

  #indexRoute(endpointId: string, dst: string): void {
    let s = this.#routesOf.get(endpointId);
    if (!s) this.#routesOf.set(endpointId, (s = new Set()));
    s.add(dst);
  }

  #unindexRoute(endpointId: string, dst: string): void {
    const s = this.#routesOf.get(endpointId);
    if (!s) return;
    s.delete(dst);
    if (s.size === 0) this.#routesOf.delete(endpointId);
  }

  #index(id: string, iface: string): void {
    if (iface === "") return;
    let s = this.#byInterface.get(iface);
    if (!s) {
      this.#byInterface.set(iface, (s = new Set()));
      this.#sysctlsPending.add(iface);
    }
    s.add(id);
  }

  #unindex(id: string, iface: string): void {
    const s = this.#byInterface.get(iface);
    if (!s) return;
    s.delete(id);
    if (s.size === 0) {
      this.#byInterface.delete(iface);
      this.#sysctlsPending.delete(iface);
    }
  }
}

/** Interfaces configured between two turns of the event loop. */
const SYSCTL_INTERFACES_PER_TURN = 100;

function sysctlOptions(s: DataplaneSettings) {
  return { ipv6: s.ipv6, forwarding: s.forwarding, strictRpFilter: !s.allowSourceSpoofing };
}
