// Test helpers for real BIRD processes in network namespaces: a wrapper
// executable that runs BIRD inside a given namespace (so the supervisor,
// which spawns "bird" where it runs, can be tested from the test process),
// and clean-up by pid file. Nothing here touches the machine's namespace.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { netnsUnavailable } from "../../dataplane/netns-testkit.js";

/** Why real-BIRD tests cannot run here, or undefined when they can. */
export function birdUnavailable(): string | undefined {
  const why = netnsUnavailable();
  if (why !== undefined) return why;
  try {
    execFileSync("bird", ["--version"], { stdio: "ignore" });
  } catch {
    return "needs BIRD 2 (Debian package bird2)";
  }
  return undefined;
}

/** A temporary directory (removed by `remove`). */
export function tempDir(label: string): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), `twt-${label}-`));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * An executable that runs `bird` with its arguments inside namespace `ns`.
 * `ip netns exec` execs BIRD in place, so the pid the caller sees is BIRD's.
 */
export function birdInNetns(dir: string, ns: string): string {
  const path = join(dir, `bird-in-${ns}`);
  writeFileSync(path, `#!/bin/sh\nexec ip netns exec ${ns} bird "$@"\n`);
  chmodSync(path, 0o755);
  return path;
}

/** The pid in a BIRD pid file, or undefined. */
export function birdPid(pidFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(pidFile, "utf8").trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` runs and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** SIGKILL the BIRD of a pid file (and any pids given); never throws. */
export function killBird(pidFile: string | undefined, ...pids: (number | undefined)[]): void {
  const all = [pidFile === undefined ? undefined : birdPid(pidFile), ...pids];
  for (const pid of all) {
    if (pid === undefined) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

export async function until(
  what: string,
  pred: () => boolean | Promise<boolean>,
  ms = 10_000,
  detail?: () => string | Promise<string>,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}${detail ? `\n${await detail()}` : ""}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
