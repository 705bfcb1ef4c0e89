// `twill agent`: runs the per-host agent until SIGTERM. Its flags come from
// the agent's config table (agent/config.ts), so flags, environment
// variables, the config file and the docs cannot disagree; the datastore
// flags are the global --etcd-* ones every command shares.
import { Option } from "commander";
import type { Command } from "commander";
import { CONFIG_PARAMS } from "../../agent/config.js";
import type { ConfigName } from "../../agent/config.js";
import { EXIT } from "../cli-errors.js";
import type { CommandContext } from "../context.js";

/** Runs the agent with flag values by setting name; resolves to its exit code. */
export type AgentRunner = (
  flags: Partial<Record<ConfigName, string>>,
  env: Readonly<Record<string, string | undefined>>,
) => Promise<number>;

const defaultRunner: AgentRunner = async (flags, env) => {
  // Loaded on demand: the agent pulls in etcd and the dataplane.
  const { runAgentProcess } = await import("../../agent/run-agent.js");
  return runAgentProcess(flags, env);
};

export function registerAgent(
  program: Command,
  ctx: CommandContext,
  env: Readonly<Record<string, string | undefined>>,
  run: AgentRunner = defaultRunner,
): void {
  const cmd = program
    .command("agent")
    .description(
      "Run the per-host agent: program this host's routes and nftables policy from the datastore",
    );
  const attributes = new Map<string, ConfigName>();
  for (const p of CONFIG_PARAMS) {
    if (p.flag === undefined) continue;
    if (p.globalFlag) {
      attributes.set(new Option(`${p.flag} <value>`).attributeName(), p.name);
      continue;
    }
    const dflt = p.defaultText === "" ? "" : `; default ${p.defaultText}`;
    const option = new Option(`${p.flag} <value>`, `${p.description} (env ${p.env}${dflt})`);
    attributes.set(option.attributeName(), p.name);
    cmd.addOption(option);
  }
  cmd
    .addHelpText(
      "after",
      `
Precedence: flag > environment > config file (--config) > FelixConfiguration
"node.<node name>" > FelixConfiguration "default" > built-in default.
The reference of every setting is docs/agent-config.md.

HTTP (--health-host, --health-port): /livez, /readyz, /metrics.
SIGTERM stops the agent and leaves the kernel as it is.

Examples:
  twill agent --node-name host-1 --node-ipv4 10.0.0.1/24 --as-number 64512
  twill --etcd-endpoints http://10.0.0.10:2379 agent --config /etc/twill/agent.yaml`,
    )
    .action(async (_opts: unknown, command: Command) => {
      const given = command.optsWithGlobals<Record<string, unknown>>();
      const flags: Partial<Record<ConfigName, string>> = {};
      for (const [attr, value] of Object.entries(given)) {
        const name = attributes.get(attr);
        if (name !== undefined && typeof value === "string") flags[name] = value;
      }
      const code = await run(flags, env);
      if (code !== 0) ctx.fail(EXIT.failed);
    });
}
