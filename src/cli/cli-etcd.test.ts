// The built `twill` binary against a real etcd: apply, get, the YAML round
// trip, and a fast, clear failure when etcd is unreachable. Runs
// `node dist/src/bin/twill.js` as a child process, as a user would.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { startEtcd } from "../datastore/etcd-server.js";
import { EXIT } from "./cli-errors.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const BIN = fileURLToPath(new URL("../bin/twill.js", import.meta.url));
const TESTDATA = fileURLToPath(new URL("../../../src/cli/testdata/", import.meta.url));
const EXAMPLES = fileURLToPath(new URL("../../../examples/", import.meta.url));

interface Result {
  code: number | null;
  out: string;
  err: string;
  ms: number;
}

function twill(
  args: string[],
  options: { endpoint?: string; stdin?: string; cwd?: string } = {},
): Promise<Result> {
  const started = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("TWILL_ETCD_")) delete env[k];
  if (options.endpoint) env.TWILL_ETCD_ENDPOINTS = options.endpoint;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd: options.cwd ?? TESTDATA, env });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, out, err, ms: Date.now() - started }));
    child.stdin.end(options.stdin ?? "");
  });
}

describe("twill binary against a real etcd", () => {
  let etcd: Awaited<ReturnType<typeof startEtcd>>;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });

  test("apply, apply again (unchanged), get -o yaml, re-apply that output (unchanged)", async () => {
    const endpoint = etcd.endpoint;
    const first = await twill(["apply", "-f", "resources"], { endpoint });
    assert.equal(first.code, EXIT.ok, first.err);
    assert.equal(first.out.match(/ created$/gm)?.length, 7, first.out);

    const again = await twill(["apply", "-f", "resources"], { endpoint });
    assert.equal(again.code, EXIT.ok, again.err);
    assert.equal(again.out.match(/ unchanged$/gm)?.length, 7, again.out);

    const yaml = await twill(["get", "gnp", "-o", "yaml"], { endpoint });
    assert.equal(yaml.code, EXIT.ok, yaml.err);
    assert.match(yaml.out, /^kind: GlobalNetworkPolicyList$/m);
    assert.match(yaml.out, /resourceVersion: /);

    const back = await twill(["apply", "-f", "-"], { endpoint, stdin: yaml.out });
    assert.equal(back.code, EXIT.ok, back.err);
    assert.equal(
      back.out,
      "globalnetworkpolicy.projectcalico.org/allow-dns unchanged\nglobalnetworkpolicy.projectcalico.org/security.block-bad unchanged\n",
    );

    const table = await twill(["get", "gnp"], { endpoint });
    assert.match(
      table.out,
      /^NAME +ORDER +TIER +SELECTOR\nallow-dns +50 +default +all\(\)\nsecurity\.block-bad +10 +security +all\(\)\n$/,
    );
  });

  test("already exists and conflict exit with their own codes; patch and delete write through", async () => {
    const endpoint = etcd.endpoint;
    assert.equal((await twill(["create", "-f", "node.yaml"], { endpoint })).code, EXIT.ok);
    const dup = await twill(["create", "-f", "node.yaml"], { endpoint });
    assert.equal(dup.code, EXIT.alreadyExists);
    assert.match(dup.err, /Error from server \(AlreadyExists\): node "host-1" already exists/);
    const stale = await twill(["get", "node", "host-1", "-o", "yaml"], { endpoint });
    assert.equal((await twill(["label", "node", "host-1", "zone=a"], { endpoint })).code, EXIT.ok);
    const conflict = await twill(["replace", "-f", "-"], { endpoint, stdin: stale.out });
    assert.equal(conflict.code, EXIT.conflict, conflict.err);
    const patched = await twill(
      ["patch", "node", "host-1", "-p", '{"metadata":{"labels":{"zone":null}}}'],
      { endpoint },
    );
    assert.equal(patched.out, "node.projectcalico.org/host-1 patched\n", patched.err);
    const deleted = await twill(["delete", "node", "host-1"], { endpoint });
    assert.equal(deleted.out, "node.projectcalico.org/host-1 deleted\n", deleted.err);
  });

  test(
    "examples/ applies and its policies round-trip",
    { skip: !existsSync(EXAMPLES) && "no examples/ yet" },
    async () => {
      const endpoint = etcd.endpoint;
      const applied = await twill(["apply", "-f", "examples/"], { endpoint, cwd: ROOT });
      assert.equal(applied.code, EXIT.ok, applied.err);
      const yaml = await twill(["get", "gnp", "-o", "yaml"], { endpoint });
      const back = await twill(["apply", "-f", "-"], { endpoint, stdin: yaml.out });
      assert.equal(back.code, EXIT.ok, back.err);
      assert.doesNotMatch(back.out, /created|configured/);
    },
  );
});

describe("twill binary without a datastore", () => {
  test("an unreachable endpoint fails with exit 6 in under 5 s, naming the endpoint", async () => {
    const r = await twill(["get", "gnp", "--etcd-endpoints", "http://127.0.0.1:1"]);
    assert.equal(r.code, EXIT.unavailable, r.err);
    assert.ok(r.ms < 5000, `took ${r.ms} ms`);
    assert.match(r.err, /^error: cannot reach the datastore: .*http:\/\/127\.0\.0\.1:1/);
  });

  test("validate needs no datastore and names all three wrong fields", async () => {
    const r = await twill([
      "validate",
      "-f",
      "three-wrong.yaml",
      "--etcd-endpoints",
      "http://127.0.0.1:1",
    ]);
    assert.equal(r.code, EXIT.failed);
    assert.equal(r.out.match(/^GlobalNetworkPolicy "three-wrong"/gm)?.length, 3, r.out);
  });

  test("version prints package.json's version; usage errors exit 2", async () => {
    const pkg = JSON.parse(
      readFileSync(new URL("../../../package.json", import.meta.url), "utf8"),
    ) as { version: string };
    const v = await twill(["version"]);
    assert.equal(v.out, `twill version ${pkg.version}\nnode version ${process.version}\n`);
    assert.equal((await twill(["get", "nonsense"])).code, EXIT.usage);
  });
});
