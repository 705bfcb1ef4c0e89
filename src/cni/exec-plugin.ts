// Running another CNI plugin (a delegated IPAM) as a runtime would: found
// by its type in the CNI_PATH directories, given the environment and the
// whole config on stdin; its stderr goes straight to ours.
import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import { join } from "node:path";
import { TwillError } from "../util/errors.js";
import type { PluginRun } from "./cni-deps.js";

/** Longest a delegated plugin may run. */
const DELEGATE_TIMEOUT_MS = 60_000;

export async function findPlugin(type: string, dirs: readonly string[]): Promise<string> {
  if (type === "" || /[/\\]/.test(type)) {
    throw new TwillError("Invalid", `plugin type "${type}" must be a file name`);
  }
  for (const dir of dirs) {
    const path = join(dir, type);
    try {
      await access(path, constants.X_OK);
      return path;
    } catch {
      // Not in this directory.
    }
  }
  throw new TwillError(
    "NotFound",
    `plugin "${type}" not found in CNI_PATH (${dirs.length > 0 ? dirs.join(":") : "empty"})`,
  );
}

export async function execPlugin(
  type: string,
  dirs: readonly string[],
  env: Record<string, string | undefined>,
  stdin: string,
): Promise<PluginRun> {
  const path = await findPlugin(type, dirs);
  return new Promise((resolve, reject) => {
    const child = spawn(path, [], {
      env,
      stdio: ["pipe", "pipe", "inherit"],
      timeout: DELEGATE_TIMEOUT_MS,
    });
    const out: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.on("error", (err) =>
      reject(
        new TwillError("Internal", `cannot run plugin ${path}: ${err.message}`, { cause: err }),
      ),
    );
    child.on("close", (code, signal) =>
      resolve({
        stdout: Buffer.concat(out).toString("utf8"),
        exitCode: code ?? (signal ? 128 : 1),
      }),
    );
    child.stdin.on("error", () => undefined);
    child.stdin.end(stdin);
  });
}
