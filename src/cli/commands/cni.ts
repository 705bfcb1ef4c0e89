// `twill cni install`: install the CNI plugin and its network config list
// (src/cni/install.ts; docs/cni.md shows the result for each runtime).
import type { Command } from "commander";
import { fileURLToPath } from "node:url";
import {
  DEFAULT_BIN_DIR,
  DEFAULT_CONF_DIR,
  DEFAULT_NETWORK_NAME,
  installCni,
} from "../../cni/install.js";
import { UsageError } from "../cli-errors.js";
import type { CommandContext } from "../context.js";

interface InstallFlags {
  binDir: string;
  confDir: string;
  name: string;
  cniVersion: string;
  nodename?: string;
  mtu?: string;
  policyWait: boolean;
  policyTimeout: string;
  etcdEndpoints?: string;
  etcdCaCertFile?: string;
  etcdCertFile?: string;
  etcdKeyFile?: string;
}

function positive(flag: string, text: string | undefined, integer: boolean): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag}: "${text}" is not a positive ${integer ? "whole " : ""}number`, {
      command: "cni install",
    });
  }
  return n;
}

export function registerCni(program: Command, ctx: CommandContext): void {
  const cni = program.command("cni").description("The CNI plugin for container runtimes");
  cni
    .command("install")
    .description("Install the twill CNI plugin and write a network config list for it")
    .option("--bin-dir <dir>", "where runtimes look for CNI plugins", DEFAULT_BIN_DIR)
    .option("--conf-dir <dir>", "where runtimes look for network configs", DEFAULT_CONF_DIR)
    .option("--name <name>", "the network's name", DEFAULT_NETWORK_NAME)
    .option("--cni-version <version>", "cniVersion of the config list (1.0.0 or 1.1.0)", "1.0.0")
    .option("--nodename <name>", "this host's Node name (default: its host name)")
    .option("--mtu <bytes>", "MTU of workload interfaces (default: the kernel's, 1500)")
    .option("--no-policy-wait", "let ADD return before the agent has programmed the policy")
    .option("--policy-timeout <seconds>", "how long ADD waits for the agent", "10")
    .addHelpText(
      "after",
      `
The etcd endpoints and TLS files written into the config are the global
--etcd-* flags, when given (else the plugin uses its environment's
TWILL_ETCD_* variables, or http://127.0.0.1:2379).

Examples:
  twill cni install --etcd-endpoints http://10.0.0.1:2379
  twill cni install --bin-dir /usr/libexec/cni --cni-version 1.1.0

Writes <bin-dir>/twill, <bin-dir>/twill-ipam and <conf-dir>/10-twill.conflist.`,
    )
    .action(async (_options: unknown, command: Command) => {
      const flags = command.optsWithGlobals<InstallFlags>();
      const mtu = positive("--mtu", flags.mtu, true);
      const result = await installCni({
        binDir: flags.binDir,
        confDir: flags.confDir,
        name: flags.name,
        cniVersion: flags.cniVersion,
        ...optional("etcdEndpoints", flags.etcdEndpoints),
        ...optional("etcdCaCertFile", flags.etcdCaCertFile),
        ...optional("etcdCertFile", flags.etcdCertFile),
        ...optional("etcdKeyFile", flags.etcdKeyFile),
        ...optional("nodename", flags.nodename),
        ...optional("mtu", mtu),
        policyWait: flags.policyWait,
        policyTimeoutSeconds: positive("--policy-timeout", flags.policyTimeout, false) ?? 10,
        node: process.execPath,
        plugin: fileURLToPath(new URL("../../cni/main.cjs", import.meta.url)),
      });
      for (const file of result.files) ctx.output.out(`wrote ${file}\n`);
    });
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [key]: value } as Record<K, V>);
}
