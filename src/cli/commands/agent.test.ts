import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Command } from "commander";
import type { ConfigName } from "../../agent/config.js";
import { EXIT } from "../cli-errors.js";
import type { ExitCode } from "../cli-errors.js";
import type { CommandContext } from "../context.js";
import { captureOutput } from "../output.js";
import { registerAgent } from "./agent.js";

/** A program with the root's global --etcd-* flags and `agent` over a recording runner. */
function program(code = 0) {
  const calls: {
    flags: Partial<Record<ConfigName, string>>;
    env: Readonly<Record<string, string | undefined>>;
  }[] = [];
  let failed: ExitCode | undefined;
  const output = captureOutput();
  const ctx: CommandContext = {
    output,
    files: { readFile: async () => "", readDir: async () => undefined, readStdin: async () => "" },
    store: () => Promise.reject(new Error("the agent opens its own store")),
    fail: (c) => {
      failed ??= c;
    },
    versions: async () => ({ twill: "0", node: "0" }),
  };
  const p = new Command("twill")
    .exitOverride()
    .option("--etcd-endpoints <urls>")
    .option("--etcd-ca-cert-file <path>");
  p.configureOutput({ writeOut: (s) => output.out(s), writeErr: (s) => output.err(s) });
  registerAgent(p, ctx, { TWILL_NODE_NAME: "from-env" }, async (flags, env) => {
    calls.push({ flags, env });
    return code;
  });
  return { p, calls, failed: () => failed, output };
}

describe("twill agent (command line)", () => {
  const cases: { args: string[]; flags: Partial<Record<ConfigName, string>> }[] = [
    { args: ["agent"], flags: {} },
    {
      args: [
        "agent",
        "--node-name",
        "host-1",
        "--node-ipv4",
        "10.0.0.1/24",
        "--health-port",
        "9100",
        "--config",
        "/etc/a.yaml",
      ],
      flags: {
        nodeName: "host-1",
        nodeIPv4: "10.0.0.1/24",
        healthPort: "9100",
        configFile: "/etc/a.yaml",
      },
    },
    {
      args: ["--etcd-endpoints", "http://10.0.0.10:2379", "agent", "--ipv6-support", "false"],
      flags: { etcdEndpoints: "http://10.0.0.10:2379", ipv6Support: "false" },
    },
    {
      args: ["agent", "--etcd-ca-cert-file", "/ca.pem", "--failsafe-inbound-host-ports", "tcp:22"],
      flags: { etcdCaCertFile: "/ca.pem", failsafeInboundHostPorts: "tcp:22" },
    },
  ];
  for (const c of cases) {
    it(`passes ${c.args.join(" ")} to the agent by setting name`, async () => {
      const t = program();
      await t.p.parseAsync(c.args, { from: "user" });
      assert.deepEqual(t.calls, [{ flags: c.flags, env: { TWILL_NODE_NAME: "from-env" } }]);
      assert.equal(t.failed(), undefined);
    });
  }

  it("turns a failed agent into exit code 1", async () => {
    const t = program(1);
    await t.p.parseAsync(["agent"], { from: "user" });
    assert.equal(t.failed(), EXIT.failed);
  });

  it("documents every flag with its environment variable", async () => {
    const t = program();
    await assert.rejects(t.p.parseAsync(["agent", "--help"], { from: "user" }));
    assert.match(t.output.stdout, /--max-apply-failures <value>/);
    assert.match(t.output.stdout, /env TWILL_MAX_APPLY_FAILURES; default 5/);
    assert.match(t.output.stdout, /docs\/agent-config.md/);
  });

  it("refuses an unknown flag", async () => {
    const t = program();
    await assert.rejects(
      t.p.parseAsync(["agent", "--helth-port", "1"], { from: "user" }),
      /unknown option/,
    );
    assert.equal(t.calls.length, 0);
  });
});
