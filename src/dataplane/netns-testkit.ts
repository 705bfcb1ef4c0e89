// Test helpers for real network namespaces: uniquely named (`twt-<random>-…`),
// always deleted by the test's `after`, never touching the machine's own
// namespace (every command runs in a namespace we created). Tests skip when
// not root or when `ip netns` is unavailable.
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { runCommand } from "./run-command.js";
import type { CommandResult, RunCommand, RunOptions } from "./run-command.js";

/** Why real-namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root";
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
    execFileSync("nft", ["--version"], { stdio: "ignore" });
  } catch {
    return "needs iproute2 (ip netns) and nft";
  }
  return undefined;
}

/** A RunCommand that runs everything inside namespace `ns`. */
export function inNetns(ns: string, run: RunCommand = runCommand): RunCommand {
  return (file, args, options) => run("ip", ["netns", "exec", ns, file, ...args], options);
}

export interface Netns {
  readonly name: string;
  /** Run a command inside; throws with stderr when it fails. */
  sh(file: string, ...args: string[]): Promise<string>;
  /** Run a command inside; resolves with the result whatever the exit code. */
  try(file: string, args: readonly string[], options?: RunOptions): Promise<CommandResult>;
  /** Start a long-running command inside (killed by `cleanup`). */
  spawn(file: string, args: readonly string[]): ChildProcess;
  readonly run: RunCommand;
}

/** Creates namespaces for one test file and deletes them all in cleanup(). */
export class NetnsPool {
  readonly prefix = `twt-${randomBytes(3).toString("hex")}`;
  readonly #created: string[] = [];
  readonly #children: ChildProcess[] = [];

  async create(label: string): Promise<Netns> {
    const name = `${this.prefix}-${label}`;
    await check(runCommand("ip", ["netns", "add", name]), `ip netns add ${name}`);
    this.#created.push(name);
    const run = inNetns(name);
    const ns: Netns = {
      name,
      run,
      sh: async (file, ...args) => check(run(file, args), `${file} ${args.join(" ")} (in ${name})`),
      try: (file, args, options) => run(file, args, options),
      spawn: (file, args) => {
        const child = spawn("ip", ["netns", "exec", name, file, ...args], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        this.#children.push(child);
        return child;
      },
    };
    await ns.sh("ip", "link", "set", "lo", "up");
    return ns;
  }

  /** A veth pair; each end is moved to its namespace (undefined = stays in `a`). */
  async veth(a: Netns, nameA: string, b: Netns | undefined, nameB: string): Promise<void> {
    await a.sh("ip", "link", "add", nameA, "type", "veth", "peer", "name", nameB);
    if (b && b !== a) await a.sh("ip", "link", "set", nameB, "netns", b.name);
  }

  /** Kill what we started, delete every namespace; never throws. */
  async cleanup(): Promise<void> {
    for (const c of this.#children) {
      if (c.exitCode === null && c.signalCode === null) {
        c.kill("SIGKILL");
        await new Promise((resolve) => c.once("close", resolve));
      }
    }
    for (const name of this.#created.splice(0).reverse()) {
      await runCommand("ip", ["netns", "del", name]).catch(() => undefined);
    }
  }
}

async function check(p: Promise<CommandResult>, what: string): Promise<string> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed (exit ${r.code}): ${r.stderr.trim()}`);
  return r.stdout;
}
