// `twill lab check`: probe every workload pair of a lab (a TCP connection
// to a port, and a ping) and compare what got through with what the policy
// in the lab's datastore says (lab-check-plan.ts, by the calc's brute-force
// reference src/calc/explain.ts).
//
//   datastore ──listAll──► planCheck (explain: source egress AND destination ingress)
//                                  │ expected verdict per probe
//   responders (one per workload,  ▼
//   started on first use, kept) ◄── checkMatrix (src/netcheck): one prober per
//                                   source workload, mismatches re-probed
//
// Responders: the first check starts one in every workload (a detached
// process, lab-responder-main.ts, recorded in the state file as
// "responder <workload> tcp/<port>"), and later checks reuse them. Starting
// eight Node processes costs a second or more on a small machine, the check
// is run again after every policy change, and a workload that answers on
// port 80 is also what a person pokes at by hand (`cat </dev/tcp/<ip>/80`
// from the plain machine). `lab down` ends them with everything else.
import { writeFileSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { kindOf } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { checkMatrix } from "../netcheck/netcheck.js";
import type { MatrixCase } from "../netcheck/netcheck.js";
import { TwillError } from "../util/errors.js";
import { labInfo, openLabStore } from "./lab.js";
import type { LabSettings } from "./lab.js";
import {
  delay,
  mapLimit,
  neighbourTableHint,
  pidAlive,
  processCmdline,
  spawnInNetns,
} from "./lab-os.js";
import { DEFAULT_CHECK_PORT, planCheck } from "./lab-check-plan.js";
import type { CheckResult, LabCheckReport } from "./lab-check-plan.js";
import { DEFAULT_STATE_ROOT, labPaths, readState, writeState } from "./lab-state.js";
import type { LabPaths, WorkloadRecord } from "./lab-state.js";

export type { CheckResult, LabCheckReport } from "./lab-check-plan.js";

const RESPONDER_MAIN = fileURLToPath(new URL("./lab-responder-main.js", import.meta.url));

export interface LabCheckSettings extends LabSettings {
  /** The TCP port probed (default 80). */
  port?: number;
  /** Address families (default: IPv4, and IPv6 in a dual-stack lab). */
  families?: (4 | 6)[];
  /** How many times a probe that does not match is tried (default 6). */
  attempts?: number;
  /** Pause before probing the mismatches again (default 500 ms). */
  retryDelayMs?: number;
  /** How long one probe may take (default 1000 ms). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const POLICY_KINDS = new Set([
  "GlobalNetworkPolicy",
  "NetworkPolicy",
  "NetworkPolicy.networking.k8s.io",
]);

/** "GlobalNetworkPolicy tenant-isolation", "NetworkPolicy default/web", "NetworkPolicy (k8s) default/x". */
function policyNames(resources: readonly Resource[]): string[] {
  const out: string[] = [];
  for (const r of resources) {
    const kind = kindOf(r.apiVersion, r.kind);
    if (kind === undefined || !POLICY_KINDS.has(kind.id)) continue;
    const ns = r.metadata.namespace === undefined ? "" : `${r.metadata.namespace}/`;
    const k8s = kind.id === "NetworkPolicy.networking.k8s.io" ? " (networking.k8s.io)" : "";
    out.push(`${r.kind}${k8s} ${ns}${r.metadata.name}`);
  }
  return out;
}

const responderRecord = (w: string, port: number): string => `responder ${w} tcp/${port}`;

function responderAlive(pid: number | undefined): boolean {
  return pid !== undefined && pidAlive(pid) && processCmdline(pid).includes(RESPONDER_MAIN);
}

/**
 * A responder on `port` in every workload that has none running yet;
 * resolves once each listens. A port already taken by something else in a
 * workload is left to it (the probe then reaches whatever listens there).
 */
export async function ensureResponders(
  paths: LabPaths,
  workloads: readonly WorkloadRecord[],
  port: number,
  signal?: AbortSignal,
): Promise<{ started: number }> {
  const before = readState(paths);
  if (!before) throw new TwillError("NotFound", `no lab state in ${paths.dir}`);
  const pidOf = (w: WorkloadRecord): number | undefined =>
    before.processes.find((p) => p.name === responderRecord(w.name, port))?.pid;
  const missing = workloads.filter((w) => !responderAlive(pidOf(w)));
  const started = await mapLimit(missing, 8, async (w) => {
    const log = paths.log(`responder-${w.name}-${port}`);
    writeFileSync(log, "");
    const pid = spawnInNetns(
      w.ns,
      process.execPath,
      [RESPONDER_MAIN, "--lab-dir", paths.dir, "--tcp", String(port)],
      { logFile: log },
    );
    const deadline = performance.now() + 20_000;
    for (;;) {
      const text = readFileSync(log, "utf8");
      if (text.includes("ready")) return { name: w.name, ns: w.ns, pid };
      if (text.includes("EADDRINUSE")) return undefined;
      if (!pidAlive(pid) || performance.now() > deadline) {
        throw new TwillError(
          "Unavailable",
          `responder in ${w.name} did not start: ${text.trim() || (pidAlive(pid) ? "not listening after 20 s" : "it exited")}`,
        );
      }
      await delay(30, signal);
    }
  });
  const records = started.filter((r) => r !== undefined);
  if (records.length > 0) {
    // Read again: add-workload may have written meanwhile.
    const state = readState(paths) ?? before;
    state.processes = state.processes.filter(
      (p) => !records.some((r) => p.name === responderRecord(r.name, port)),
    );
    for (const r of records) {
      state.processes.push({ name: responderRecord(r.name, port), ns: r.ns, pid: r.pid });
    }
    writeState(paths, state);
  }
  return { started: records.length };
}

/** Probes every workload pair of lab `name` and compares with the policy in its datastore. */
export async function labCheck(
  name: string,
  settings: LabCheckSettings = {},
): Promise<LabCheckReport> {
  const info = labInfo(name, settings);
  const paths = labPaths(settings.stateRoot ?? DEFAULT_STATE_ROOT, name);
  const port = settings.port ?? DEFAULT_CHECK_PORT;
  const families = settings.families ?? (info.options.ipv6 ? [4, 6] : [4]);
  const workloads = info.workloads;

  const { store, close } = openLabStore(info);
  let resources: Resource[];
  let revision: number;
  try {
    ({ items: resources, revision } = await store.listAll());
  } finally {
    await close();
  }
  const planned = planCheck(resources, workloads, { port, families });

  await ensureResponders(paths, workloads, port, settings.signal);
  const nsOf = new Map(workloads.map((w) => [w.name, w.ns]));
  const cases: MatrixCase[] = planned.map((p) => ({
    from: nsOf.get(p.from) ?? "",
    target:
      p.proto === "tcp" ? { proto: "tcp", addr: p.addr, port } : { proto: "icmp", addr: p.addr },
    allowed: p.allowed,
  }));
  const report = await checkMatrix(cases, {
    attempts: settings.attempts ?? 6,
    retryDelayMs: settings.retryDelayMs ?? 500,
    timeoutMs: settings.timeoutMs ?? 1000,
    ...(settings.signal ? { signal: settings.signal } : {}),
  });
  const results: CheckResult[] = planned.map((p, i) => {
    const r = report.results[i];
    if (r === undefined) throw new TwillError("Internal", "connectivity check lost a result");
    return {
      ...p,
      observed: r.outcome.ok,
      matched: r.matched,
      detail: r.outcome.detail,
      attempts: r.attempts,
    };
  });
  const mismatches = results.filter((r) => !r.matched).length;
  const hint = mismatches > 0 ? neighbourTableHint() : "";
  return {
    ...(hint !== "" ? { note: hint.slice(2, -1) } : {}),
    lab: name,
    port,
    families,
    revision,
    policies: policyNames(resources),
    workloads: workloads.map((w) => ({
      name: w.name,
      host: w.host,
      labels: w.labels,
      ...(w.ipv4 !== undefined ? { ipv4: w.ipv4 } : {}),
      ...(w.ipv6 !== undefined ? { ipv6: w.ipv6 } : {}),
    })),
    results,
    mismatches,
  };
}
