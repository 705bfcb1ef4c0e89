#!/usr/bin/env node
// The `twill` executable: wires the real file system, stdin, environment and
// etcd into runCli, then exits with its code once output is flushed.
import { readFile, readdir, stat } from "node:fs/promises";
import { runCli } from "../cli/main.js";
import type { CliStore, DatastoreFlags } from "../cli/cli-store.js";
import { processOutput, terminalWidth } from "../cli/output.js";

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

async function readDir(path: string): Promise<string[] | undefined> {
  if (!(await stat(path)).isDirectory()) return undefined;
  return readdir(path);
}

async function openStore(
  flags: DatastoreFlags,
  env: Record<string, string | undefined>,
): Promise<CliStore> {
  // Loaded on demand: the etcd client is most of start-up time, and
  // validate, version and --help never need it.
  const { datastoreOptionsFrom, openDatastore } = await import("../datastore/connect.js");
  const store = await openDatastore(datastoreOptionsFrom(flags, env));
  return {
    get: (kind, name, options) => store.get(kind, name, options),
    list: (kind, options) => store.list(kind, options),
    create: (resource) => store.create(resource),
    update: (resource) => store.update(resource),
    apply: (resource) => store.apply(resource),
    delete: (kind, name, options) => store.delete(kind, name, options),
    close: () => store.backend.close(),
    backend: store.backend,
  };
}

async function versions(): Promise<{ twill: string; node: string }> {
  // dist/src/bin/twill.js → the package root holds package.json.
  const text = await readFile(new URL("../../../package.json", import.meta.url), "utf8");
  const pkg = JSON.parse(text) as { version?: unknown };
  return {
    twill: typeof pkg.version === "string" ? pkg.version : "unknown",
    node: process.version,
  };
}

const output = processOutput();
const code = await runCli(process.argv.slice(2), {
  output,
  env: process.env,
  readFile: (path) => readFile(path, "utf8"),
  readDir,
  readStdin,
  openStore,
  versions,
  helpWidth: Math.min(terminalWidth() ?? 100, 120),
});
await output.flush();
process.exit(code);
