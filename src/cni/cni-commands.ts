// Runs one parsed CNI command in a Session: the main plugin's ADD, DEL,
// CHECK, GC and STATUS, or the IPAM-only plugin's. Loaded on demand by
// run-cni.ts, so VERSION never loads the datastore, IPAM or schema code.
import type { NetConf } from "./cni-config.js";
import type { CniDeps } from "./cni-deps.js";
import type { CniEnv } from "./cni-env.js";
import { cmdAdd } from "./cni-add.js";
import { cmdCheck } from "./cni-check.js";
import { cmdDel } from "./cni-del.js";
import { cmdGc, cmdStatus } from "./cni-gc-status.js";
import { forVersion } from "./cni-result.js";
import type { CniResult } from "./cni-result.js";
import { Session } from "./cni-session.js";
import { runIpamCommand } from "./ipam-plugin.js";

export type PluginMode = "main" | "ipam";

/** Runs the command; returns what goes to stdout ("" for commands with no output). */
export async function runCommand(
  mode: PluginMode,
  conf: NetConf,
  env: CniEnv,
  rawEnv: Record<string, string | undefined>,
  deps: CniDeps,
): Promise<string> {
  const session = new Session(conf, env, rawEnv, deps);
  try {
    let result: CniResult | undefined;
    if (mode === "ipam") {
      result = await runIpamCommand(session);
    } else {
      switch (env.command) {
        case "ADD":
          result = await cmdAdd(session);
          break;
        case "DEL":
          await cmdDel(session);
          break;
        case "CHECK":
          await cmdCheck(session);
          break;
        case "GC":
          await cmdGc(session);
          break;
        case "STATUS":
          await cmdStatus(session);
          break;
        case "VERSION":
          break;
      }
    }
    return result ? `${JSON.stringify(forVersion(result))}\n` : "";
  } finally {
    await session.close();
  }
}
