// `twill agent` in a real process: the real kernel drivers (nft, ip,
// /proc/sys, ip monitor), etcd, the process environment, and SIGTERM/SIGINT
// for a clean stop. A second signal while stopping exits at once.
import { readFile } from "node:fs/promises";
import { datastoreOptionsFrom, openDatastore } from "../datastore/connect.js";
import { ipLinkSource } from "../dataplane/link-monitor.js";
import { nftCommandKernel } from "../dataplane/nft-driver.js";
import { ipRouteTable } from "../dataplane/route-driver.js";
import { runCommand } from "../dataplane/run-command.js";
import { procSysctls } from "../dataplane/sysctl-driver.js";
import { runAgent } from "./agent.js";
import type { ConfigName } from "./config.js";

export async function runAgentProcess(
  flags: Partial<Record<ConfigName, string>>,
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const stop = new AbortController();
  const onSignal = () => {
    if (stop.signal.aborted) process.exit(1);
    stop.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    return await runAgent(
      { flags, signal: stop.signal },
      {
        env,
        readFile: (path) => readFile(path, "utf8"),
        // Already resolved by the agent's config (flags > env > file): no second env lookup.
        openStore: (datastore) => openDatastore(datastoreOptionsFrom(datastore, {})),
        kernel: {
          nft: nftCommandKernel(runCommand),
          routes: ipRouteTable(runCommand),
          sysctls: procSysctls(),
          links: ipLinkSource(runCommand),
        },
      },
    );
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
