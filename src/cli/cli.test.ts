// The whole CLI through runCli: a store over the memory backend, captured
// output, fixtures from src/cli/testdata. Checks what a user sees and the
// exit code of every outcome.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFile, readdir, stat } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { MemoryBackend } from "../datastore/memory-backend.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { TwillError } from "../util/errors.js";
import type { CliStore } from "./cli-store.js";
import { EXIT } from "./cli-errors.js";
import { runCli } from "./main.js";
import { captureOutput } from "./output.js";

// dist/src/cli/cli.test.js → src/cli/testdata
const TESTDATA = fileURLToPath(new URL("../../../src/cli/testdata/", import.meta.url));

interface Run {
  code: number;
  out: string;
  err: string;
}

function storeOf(rs: ResourceStore): CliStore {
  return {
    get: (k, n, o) => rs.get(k, n, o),
    list: (k, o) => rs.list(k, o),
    create: (r) => rs.create(r),
    update: (r) => rs.update(r),
    apply: (r) => rs.apply(r),
    delete: (k, n, o) => rs.delete(k, n, o),
    close: () => Promise.resolve(), // the store outlives one command
  };
}

/** A fresh memory datastore and a `twill` that runs against it. */
function harness(
  options: { store?: (base: CliStore) => CliStore; openStore?: () => Promise<CliStore> } = {},
) {
  const rs = new ResourceStore(new MemoryBackend());
  const base = storeOf(rs);
  const store = options.store ? options.store(base) : base;
  let opened = 0;
  const run = async (args: string[], stdin = ""): Promise<Run> => {
    const output = captureOutput();
    const code = await runCli(args, {
      output,
      env: {},
      readFile: (p) => readFile(path.resolve(TESTDATA, p), "utf8"),
      readDir: async (p) => {
        const full = path.resolve(TESTDATA, p);
        return (await stat(full)).isDirectory() ? readdir(full) : undefined;
      },
      readStdin: () => Promise.resolve(stdin),
      openStore: () => {
        opened++;
        return options.openStore ? options.openStore() : Promise.resolve(store);
      },
      versions: () => Promise.resolve({ twill: "0.1.0", node: "v20.0.0" }),
    });
    return { code, out: output.stdout, err: output.stderr };
  };
  return { run, store: base, opened: () => opened };
}

const ALL_CREATED = [
  "ippool.projectcalico.org/pool-v4 created",
  "ippool.projectcalico.org/pool-v6 created",
  "tier.projectcalico.org/security created",
  "globalnetworkpolicy.projectcalico.org/security.block-bad created",
  "globalnetworkpolicy.projectcalico.org/allow-dns created",
  "networkpolicy.projectcalico.org/allow-web created",
  "networkset.projectcalico.org/partners created",
];

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l !== "");
}

describe("twill apply", () => {
  test("applies a directory in file order, then reports everything unchanged", async () => {
    const { run } = harness();
    const first = await run(["apply", "-f", "resources"]);
    assert.equal(first.err, "");
    assert.equal(first.code, EXIT.ok);
    assert.deepEqual(lines(first.out), ALL_CREATED);
    const again = await run(["apply", "-f", "resources"]);
    assert.equal(again.code, EXIT.ok, again.err);
    assert.deepEqual(
      lines(again.out),
      ALL_CREATED.map((l) => l.replace(/created$/, "unchanged")),
    );
  });

  test("a changed file is configured", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources/01-pools.yaml"]);
    const changed =
      "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-v4}\nspec: {cidr: 10.70.0.0/16, natOutgoing: false}\n";
    const r = await run(["apply", "-f", "-"], changed);
    assert.equal(r.code, EXIT.ok, r.err);
    assert.equal(r.out, "ippool.projectcalico.org/pool-v4 configured\n");
  });

  test("get -o yaml re-applied is unchanged (round trip)", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    for (const args of [
      ["get", "gnp", "-o", "yaml"],
      ["get", "netpol", "-A", "-o", "yaml"],
      ["get", "pool", "pool-v4", "-o", "json"],
    ]) {
      const got = await run(args);
      assert.equal(got.code, EXIT.ok, got.err);
      const back = await run(["apply", "-f", "-"], got.out);
      assert.equal(back.code, EXIT.ok, back.err);
      assert.match(back.out, /unchanged\n$/);
      assert.doesNotMatch(back.out, /created|configured/);
    }
  });

  test("one invalid document means nothing is written, and every error is printed", async () => {
    const { run } = harness();
    const r = await run(["apply", "-f", "three-wrong.yaml"]);
    assert.equal(r.code, EXIT.failed);
    assert.equal(r.out, "");
    const errs = lines(r.err);
    for (const p of [
      "spec.ingress[0].action",
      "spec.ingress[0].destination.ports[0]",
      "spec.egress[0].destination.nets[0]",
    ]) {
      assert.ok(
        errs.some((l) =>
          l.startsWith(`GlobalNetworkPolicy "three-wrong" (three-wrong.yaml#1): ${p}: `),
        ),
        `no error for ${p} in:\n${r.err}`,
      );
    }
    assert.match(r.err, /error: 1 of 2 resources invalid; nothing was applied/);
    const pool = await run(["get", "ippool", "fine"]);
    assert.equal(pool.code, EXIT.notFound, "the valid pool in the same file must not be written");
  });

  test("a missing file and a syntax error are reported, exit 1", async () => {
    const { run } = harness();
    const r = await run(["apply", "-f", "nope.yaml", "-f", "-"], "kind: [unclosed\n");
    assert.equal(r.code, EXIT.failed);
    assert.match(r.err, /^nope\.yaml: cannot read: no such file or directory$/m);
    assert.match(r.err, /^<stdin>: /m);
    assert.match(r.err, /nothing was applied/);
  });

  test("-f is required and no documents is an error", async () => {
    const { run } = harness();
    assert.equal((await run(["apply"])).code, EXIT.usage);
    const empty = await run(["apply", "-f", "-"], "# nothing\n");
    assert.equal(empty.code, EXIT.failed);
    assert.match(empty.err, /no resources found in -/);
  });

  test("-n places namespaced documents and refuses a different namespace", async () => {
    const { run } = harness();
    const doc =
      "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: s}\nspec: {nets: [10.1.0.0/16]}\n";
    assert.equal((await run(["apply", "-n", "dev", "-f", "-"], doc)).code, EXIT.ok);
    const got = await run(["get", "netset", "-n", "dev"]);
    assert.match(got.out, /^s +10\.1\.0\.0\/16$/m);
    const clash = await run(["apply", "-n", "prod", "-f", "resources/03-namespaced.json"]);
    assert.equal(clash.code, EXIT.failed);
    assert.match(clash.err, /metadata\.namespace: "shop" does not match --namespace "prod"/);
  });
});

describe("twill create and replace", () => {
  test("create fails with exit 4 for an existing resource but creates the rest", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources/01-pools.yaml"]);
    const r = await run(["create", "-f", "resources/01-pools.yaml", "-f", "node.yaml"]);
    assert.equal(r.code, EXIT.alreadyExists);
    assert.match(r.err, /^Error from server \(AlreadyExists\): ippool "pool-v4" already exists$/m);
    assert.equal(r.out, "node.projectcalico.org/host-1 created\n");
  });

  test("replace fails with exit 3 for a missing resource, replaces an existing one", async () => {
    const { run } = harness();
    const missing = await run(["replace", "-f", "node.yaml"]);
    assert.equal(missing.code, EXIT.notFound);
    assert.match(missing.err, /Error from server \(NotFound\): node "host-1" not found/);
    await run(["create", "-f", "node.yaml"]);
    const r = await run(["replace", "-f", "node.yaml"]);
    assert.equal(r.code, EXIT.ok, r.err);
    assert.equal(r.out, "node.projectcalico.org/host-1 replaced\n");
  });

  test("replace with a stale resourceVersion is a conflict, exit 5", async () => {
    const { run } = harness();
    await run(["create", "-f", "node.yaml"]);
    const stale = (await run(["get", "node", "host-1", "-o", "yaml"])).out;
    assert.equal((await run(["label", "node", "host-1", "zone=a"])).code, EXIT.ok);
    const r = await run(["replace", "-f", "-"], stale);
    assert.equal(r.code, EXIT.conflict);
    assert.match(
      r.err,
      /^Error from server \(Conflict\): Operation cannot be fulfilled on node "host-1"/m,
    );
  });
});

describe("twill get", () => {
  test("tables per kind, with NAMESPACE under -A", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    const gnp = await run(["get", "GNP"]);
    assert.equal(
      gnp.out,
      [
        "NAME                 ORDER   TIER       SELECTOR",
        "allow-dns            50      default    all()",
        "security.block-bad   10      security   all()",
        "",
      ].join("\n"),
    );
    const pools = await run(["get", "pools"]);
    assert.match(pools.out, /^NAME +CIDR +BLOCKSIZE +NAT +DISABLED$/m);
    assert.match(pools.out, /^pool-v4 +10\.70\.0\.0\/16 +26 +true +false$/m);
    assert.match(pools.out, /^pool-v6 +fd00:70::\/48 +122 +false +false$/m);
    const all = await run(["get", "networkpolicies", "-A"]);
    assert.match(all.out, /^NAMESPACE +NAME +ORDER +TIER +SELECTOR$/m);
    assert.match(all.out, /^shop +allow-web +100 +default +app == 'db'$/m);
    const wide = await run(["get", "gnp", "security.block-bad", "-o", "wide"]);
    assert.match(wide.out, /^security\.block-bad +10 +security +all\(\) +Ingress +2 +0/m);
  });

  test("empty listings say so on stderr and exit 0", async () => {
    const { run } = harness();
    const gnp = await run(["get", "gnp"]);
    assert.deepEqual([gnp.code, gnp.out, gnp.err], [EXIT.ok, "", "No resources found.\n"]);
    const np = await run(["get", "netpol"]);
    assert.equal(np.err, 'No resources found in namespace "default".\n');
    const yaml = await run(["get", "gnp", "-o", "yaml"]);
    assert.deepEqual((parse(yaml.out) as { items: unknown[] }).items, []);
  });

  test("yaml: one name is a single document; a listing is a List; both keep apiVersion, kind, metadata, spec", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    const one = parse((await run(["get", "gnp", "allow-dns", "-o", "yaml"])).out) as Record<
      string,
      unknown
    >;
    assert.deepEqual(Object.keys(one).sort(), ["apiVersion", "kind", "metadata", "spec"]);
    assert.equal(one.kind, "GlobalNetworkPolicy");
    assert.deepEqual((one.spec as { types: string[] }).types, ["Egress"], "defaults are stored");
    const list = parse((await run(["get", "gnp", "-o", "yaml"])).out) as {
      kind: string;
      items: { metadata: { name: string } }[];
    };
    assert.equal(list.kind, "GlobalNetworkPolicyList");
    assert.deepEqual(
      list.items.map((i) => i.metadata.name),
      ["allow-dns", "security.block-bad"],
    );
    const json = JSON.parse((await run(["get", "ipp", "pool-v4", "-o", "json"])).out) as {
      spec: { blockSize: number };
    };
    assert.equal(json.spec.blockSize, 26);
    assert.equal(
      (await run(["get", "tiers", "-o", "name"])).out,
      "tier.projectcalico.org/default\ntier.projectcalico.org/security\n",
      "the implicit default tier is listed though never stored",
    );
    assert.match((await run(["get", "tier", "default"])).out, /^default\s+1000000\s/m);
  });

  test("a missing name is exit 3 with kubectl's message; the found ones are still printed", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    const r = await run(["get", "gnp", "allow-dns", "nope", "-o", "name"]);
    assert.equal(r.code, EXIT.notFound);
    assert.equal(r.out, "globalnetworkpolicy.projectcalico.org/allow-dns\n");
    assert.equal(r.err, 'Error from server (NotFound): globalnetworkpolicy "nope" not found\n');
    const ns = await run(["get", "netpol", "allow-web"]);
    assert.equal(
      ns.err,
      'Error from server (NotFound): networkpolicy "allow-web" in namespace "default" not found\n',
    );
  });

  test("usage errors are exit 2: unknown kind, bad -o, -A with a name, missing kind", async () => {
    const { run, opened } = harness();
    const cases: [string[], RegExp][] = [
      [["get", "frobs"], /unknown resource type "frobs"/],
      [["get", "gnp", "-o", "xml"], /argument 'xml' is invalid/],
      [["get", "netpol", "x", "-A"], /across all namespaces/],
      [["get"], /missing required argument 'kind'/],
      [["gett", "gnp"], /unknown command 'gett'/],
      [["get", "gnp", "--bogus"], /unknown option '--bogus'/],
    ];
    for (const [args, re] of cases) {
      const r = await run(args);
      assert.equal(r.code, EXIT.usage, args.join(" "));
      assert.match(r.err, re, args.join(" "));
    }
    assert.equal(opened(), 0, "usage errors never open the datastore");
  });
});

describe("twill delete", () => {
  test("by kind and name, then exit 3 when gone, unless --ignore-not-found", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    const r = await run(["delete", "gnp", "allow-dns"]);
    assert.deepEqual(
      [r.code, r.out],
      [EXIT.ok, "globalnetworkpolicy.projectcalico.org/allow-dns deleted\n"],
    );
    const again = await run(["delete", "gnp", "allow-dns"]);
    assert.equal(again.code, EXIT.notFound);
    assert.match(
      again.err,
      /Error from server \(NotFound\): globalnetworkpolicy "allow-dns" not found/,
    );
    assert.equal((await run(["delete", "gnp", "allow-dns", "--ignore-not-found"])).code, EXIT.ok);
    const ns = await run(["delete", "netpol", "allow-web", "-n", "shop"]);
    assert.equal(ns.out, "networkpolicy.projectcalico.org/allow-web deleted\n");
  });

  test("-f deletes what the files describe and reports the missing ones", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    await run(["delete", "tier", "security"]);
    const r = await run(["delete", "-f", "resources"]);
    assert.equal(r.code, EXIT.notFound);
    assert.equal(lines(r.out).length, ALL_CREATED.length - 1);
    assert.match(r.err, /tier "security" not found/);
    assert.equal((await run(["get", "gnp"])).err, "No resources found.\n");
  });

  test("usage: -f and a kind together, or nothing", async () => {
    const { run } = harness();
    assert.equal((await run(["delete", "gnp", "x", "-f", "node.yaml"])).code, EXIT.usage);
    assert.equal((await run(["delete"])).code, EXIT.usage);
    assert.equal((await run(["delete", "gnp"])).code, EXIT.usage);
  });
});

describe("twill patch", () => {
  test("merges, validates, writes; the same patch again is no change", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    const r = await run([
      "patch",
      "gnp",
      "allow-dns",
      "-p",
      '{"spec":{"order":20,"selector":"app == \'x\'"}}',
    ]);
    assert.deepEqual(
      [r.code, r.out, r.err],
      [EXIT.ok, "globalnetworkpolicy.projectcalico.org/allow-dns patched\n", ""],
    );
    assert.match(
      (await run(["get", "gnp", "allow-dns"])).out,
      /^allow-dns +20 +default +app == 'x'$/m,
    );
    const same = await run(["patch", "gnp", "allow-dns", "-p", '{"spec":{"order":20}}']);
    assert.equal(same.out, "globalnetworkpolicy.projectcalico.org/allow-dns patched (no change)\n");
    const removed = await run([
      "patch",
      "pool",
      "pool-v4",
      "-p",
      '{"spec":{"natOutgoing":null,"disabled":true}}',
    ]);
    assert.equal(removed.code, EXIT.ok, removed.err);
    assert.match(
      (await run(["get", "pool", "pool-v4"])).out,
      /^pool-v4 +10\.70\.0\.0\/16 +26 +false +true$/m,
    );
  });

  test("an invalid result is exit 1 with the field's path, nothing written", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    const r = await run([
      "patch",
      "gnp",
      "allow-dns",
      "-p",
      '{"spec":{"egress":[{"action":"allow"}]}}',
    ]);
    assert.equal(r.code, EXIT.failed);
    assert.match(
      r.err,
      /^GlobalNetworkPolicy "allow-dns" \(patch\): spec\.egress\[0\]\.action: "allow" is not one of/m,
    );
    assert.match((await run(["get", "gnp", "allow-dns", "-o", "json"])).out, /"action": "Allow"/);
  });

  test("errors: missing resource 3, bad JSON 2, renaming 1, concurrent change 5", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    const missing = await run(["patch", "gnp", "nope", "-p", "{}"]);
    assert.equal(missing.code, EXIT.notFound);
    assert.match(missing.err, /globalnetworkpolicy "nope" not found/);
    assert.equal((await run(["patch", "gnp", "allow-dns", "-p", "{order"])).code, EXIT.usage);
    assert.equal((await run(["patch", "gnp", "allow-dns", "-p", "[1]"])).code, EXIT.usage);
    assert.equal((await run(["patch", "gnp", "allow-dns"])).code, EXIT.usage);
    const rename = await run(["patch", "gnp", "allow-dns", "-p", '{"metadata":{"name":"other"}}']);
    assert.equal(rename.code, EXIT.failed);
    assert.match(rename.err, /metadata\.name cannot be changed \(from "allow-dns" to "other"\)/);
  });

  test("a write racing another writer is a conflict, exit 5", async () => {
    // Every read is followed by another writer's change before ours lands.
    const { run } = harness({
      store: (base) => ({
        ...base,
        get: async (k, n, o) => {
          const current = await base.get(k, n, o);
          const labels = { ...current.metadata.labels, racer: String(Math.random()).slice(2, 8) };
          await base.update({ ...current, metadata: { ...current.metadata, labels } });
          return current;
        },
      }),
    });
    await run(["apply", "-f", "resources"]);
    const r = await run(["patch", "gnp", "allow-dns", "-p", '{"spec":{"order":1}}']);
    assert.equal(r.code, EXIT.conflict);
    assert.match(
      r.err,
      /^Error from server \(Conflict\): Operation cannot be fulfilled on globalnetworkpolicy "allow-dns"/,
    );
  });
});

describe("twill label", () => {
  test("sets, refuses to change without --overwrite, changes with it, removes", async () => {
    const { run } = harness();
    await run(["apply", "-f", "node.yaml"]);
    const labelsOf = async () =>
      (
        parse((await run(["get", "node", "host-1", "-o", "yaml"])).out) as {
          metadata: { labels?: Record<string, string> };
        }
      ).metadata.labels;

    const add = await run(["label", "node", "host-1", "zone=a"]);
    assert.deepEqual([add.code, add.out], [EXIT.ok, "node.projectcalico.org/host-1 labeled\n"]);
    assert.deepEqual(await labelsOf(), { rack: "rack-1", zone: "a" });

    const refused = await run(["label", "node", "host-1", "rack=rack-2"]);
    assert.equal(refused.code, EXIT.failed);
    assert.match(refused.err, /label "rack" already has the value "rack-1"; use --overwrite/);
    assert.deepEqual(await labelsOf(), { rack: "rack-1", zone: "a" });

    assert.equal(
      (await run(["label", "node", "host-1", "rack=rack-2", "--overwrite"])).code,
      EXIT.ok,
    );
    assert.equal(
      (await run(["label", "no", "host-1", "zone-", "rack-"])).out,
      "node.projectcalico.org/host-1 labeled\n",
    );
    assert.equal(await labelsOf(), undefined);

    const noop = await run(["label", "node", "host-1", "gone-"]);
    assert.deepEqual(
      [noop.code, noop.out, noop.err],
      [EXIT.ok, "node.projectcalico.org/host-1 not labeled\n", 'warning: label "gone" not found\n'],
    );
  });

  test("an invalid label key is exit 1 with its path; bad arguments are exit 2; missing resource 3", async () => {
    const { run } = harness();
    await run(["apply", "-f", "resources"]);
    const bad = await run(["label", "netset", "partners", "bad key!=x"]);
    assert.equal(bad.code, EXIT.failed);
    assert.match(bad.err, /^NetworkSet "partners" \(labels\): metadata\.labels/m);
    assert.equal(
      (await run(["label", "netset", "partners", "-n", "shop", "justakey"])).code,
      EXIT.usage,
    );
    assert.equal((await run(["label", "netset", "partners"])).code, EXIT.usage);
    assert.equal(
      (await run(["label", "netset", "partners", "-n", "shop", "x=y"])).code,
      EXIT.notFound,
    );
    const ok = await run(["label", "netsets", "partners", "tier=gold"]);
    assert.equal(ok.out, "networkset.projectcalico.org/partners labeled\n");
  });
});

describe("twill validate", () => {
  test("names all three wrong fields of a policy, exit 1, without a datastore", async () => {
    const { run, opened } = harness();
    const r = await run(["validate", "-f", "three-wrong.yaml"]);
    assert.equal(r.code, EXIT.failed);
    const out = lines(r.out);
    const prefix = 'GlobalNetworkPolicy "three-wrong" (three-wrong.yaml#1): ';
    for (const p of [
      "spec.ingress[0].action",
      "spec.ingress[0].destination.ports[0]",
      "spec.egress[0].destination.nets[0]",
    ]) {
      assert.ok(
        out.some((l) => l.startsWith(`${prefix}${p}: `)),
        `no error for ${p} in:\n${r.out}`,
      );
    }
    assert.equal(out.filter((l) => l.startsWith(prefix)).length, 3);
    assert.equal(out.at(-1), "2 resources checked: 1 valid, 1 invalid");
    assert.equal(opened(), 0);
  });

  test("exit 0 when everything is valid", async () => {
    const { run, opened } = harness();
    const r = await run(["validate", "-f", "resources", "-f", "node.yaml"]);
    assert.deepEqual([r.code, r.out], [EXIT.ok, "8 resources checked: 8 valid, 0 invalid\n"]);
    assert.equal(opened(), 0);
  });

  test("exit 1 for unreadable input or no resources", async () => {
    const { run } = harness();
    const r = await run(["validate", "-f", "missing.yaml"]);
    assert.equal(r.code, EXIT.failed);
    assert.match(r.out, /^missing\.yaml: cannot read/m);
    assert.equal((await run(["validate", "-f", "-"], "")).code, EXIT.failed);
  });
});

describe("twill: datastore, help and version", () => {
  test("an unavailable datastore is exit 6 with the reason", async () => {
    const { run } = harness({
      openStore: () =>
        Promise.reject(
          new TwillError("Unavailable", "etcd at http://127.0.0.1:1 is unreachable", {
            cause: new Error("connect ECONNREFUSED 127.0.0.1:1"),
          }),
        ),
    });
    const r = await run(["get", "gnp", "--etcd-endpoints", "http://127.0.0.1:1"]);
    assert.equal(r.code, EXIT.unavailable);
    assert.equal(
      r.err,
      "error: cannot reach the datastore: etcd at http://127.0.0.1:1 is unreachable (connect ECONNREFUSED 127.0.0.1:1)\n",
    );
  });

  test("global flags reach the opener, before or after the command; env is passed along", async () => {
    let seen: unknown;
    const output = captureOutput();
    const code = await runCli(
      ["get", "gnp", "--etcd-endpoints", "http://a:1,http://b:2", "--etcd-ca-cert-file", "/ca.pem"],
      {
        output,
        env: { TWILL_ETCD_USERNAME: "u" },
        readFile: () => Promise.reject(new Error("unused")),
        readDir: () => Promise.reject(new Error("unused")),
        readStdin: () => Promise.resolve(""),
        openStore: (flags, env) => {
          seen = { flags, env };
          return Promise.reject(new TwillError("Unavailable", "no"));
        },
        versions: () => Promise.resolve({ twill: "x", node: "y" }),
      },
    );
    assert.equal(code, EXIT.unavailable);
    assert.deepEqual(seen, {
      flags: { etcdEndpoints: "http://a:1,http://b:2", etcdCaFile: "/ca.pem" },
      env: { TWILL_ETCD_USERNAME: "u" },
    });
  });

  test("--help on the root documents exit codes and environment; no command is exit 2", async () => {
    const { run } = harness();
    const help = await run(["--help"]);
    assert.equal(help.code, EXIT.ok);
    for (const s of [
      "Exit codes:",
      "6  datastore unavailable",
      "TWILL_ETCD_ENDPOINTS",
      "apply",
      "validate",
    ]) {
      assert.ok(help.out.includes(s), `root help lacks ${s}`);
    }
    const none = await run([]);
    assert.equal(none.code, EXIT.usage);
    assert.match(none.err, /Usage: twill/);
    const flagsOnly = await run(["--etcd-endpoints", "http://x:1"]);
    assert.equal(flagsOnly.code, EXIT.usage);
    assert.match(flagsOnly.err, /Usage: twill/);
    const helpCmd = await run(["help"]);
    assert.equal(helpCmd.code, EXIT.ok);
    assert.match(helpCmd.out, /Exit codes:/);
  });

  test("every command has --help with examples", async () => {
    const { run } = harness();
    for (const cmd of [
      "apply",
      "create",
      "replace",
      "delete",
      "get",
      "patch",
      "label",
      "validate",
      "version",
    ]) {
      const r = await run([cmd, "--help"]);
      assert.equal(r.code, EXIT.ok, cmd);
      assert.match(r.out, new RegExp(`Usage: twill ${cmd}`), cmd);
      assert.match(r.out, /Examples?:/, cmd);
    }
    assert.match((await run(["get", "--help"])).out, /GlobalNetworkPolicy +gnp, gnps, cgnp +no/);
    const viaHelp = await run(["help", "get"]);
    assert.equal(viaHelp.code, EXIT.ok, viaHelp.err);
  });

  test("version prints twill's and node's versions", async () => {
    const { run } = harness();
    assert.deepEqual(await run(["version"]), {
      code: EXIT.ok,
      out: "twill version 0.1.0\nnode version v20.0.0\n",
      err: "",
    });
  });
});
