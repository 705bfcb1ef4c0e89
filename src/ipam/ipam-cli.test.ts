// `twill ipam ...` through runCli: what a user sees and the exit codes,
// against a memory datastore.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { EXIT } from "../cli/cli-errors.js";
import type { CliStore } from "../cli/cli-store.js";
import { formatDuration, parseDuration } from "../cli/commands/ipam.js";
import { runCli } from "../cli/main.js";
import { captureOutput } from "../cli/output.js";
import { MemoryBackend } from "../datastore/memory-backend.js";
import { ResourceStore } from "../datastore/resource-store.js";
import type { IpamReport } from "./ipam-audit.js";
import { node, pool, reservation, workloadEndpoint } from "./ipam-testkit.js";
import { Ipam } from "./ipam.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "twill-ipam-cli-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function cliStore(rs: ResourceStore, withBackend = true): CliStore & { backend?: unknown } {
  const store: CliStore & { backend?: unknown } = {
    get: (k, n, o) => rs.get(k, n, o),
    list: (k, o) => rs.list(k, o),
    create: (r) => rs.create(r),
    update: (r) => rs.update(r),
    apply: (r) => rs.apply(r),
    delete: (k, n, o) => rs.delete(k, n, o),
    close: () => Promise.resolve(),
  };
  if (withBackend) store.backend = rs.backend;
  return store;
}

async function harness(options: { withBackend?: boolean } = {}) {
  const rs = new ResourceStore(new MemoryBackend());
  for (const r of [
    pool("pool-v4", "10.65.0.0/24", { blockSize: 28 }),
    pool("pool-v6", "fd00:65::/120", { blockSize: 124 }),
    reservation("gw", ["10.65.0.1"]),
    node("host-1"),
    node("host-2"),
  ]) {
    await rs.create(r);
  }
  const ipam = new Ipam(rs);
  const run = async (args: string[], stdin = "") => {
    const output = captureOutput();
    const code = await runCli(["ipam", ...args], {
      output,
      env: {},
      readFile: (p) => readFile(p, "utf8"),
      readDir: async () => undefined,
      readStdin: () => Promise.resolve(stdin),
      openStore: () => Promise.resolve(cliStore(rs, options.withBackend !== false)),
      versions: () => Promise.resolve({ twill: "0.1.0", node: "v20.0.0" }),
    });
    return { code, out: output.stdout, err: output.stderr };
  };
  /** A workload as the CNI plugin makes it, with or without its endpoint. */
  const workload = async (name: string, host: string, withEndpoint = true) => {
    const r = await ipam.autoAssign({
      host,
      handle: `k8s-pod-network.${name}`,
      attributes: { namespace: "default", pod: name, workloadEndpoint: name },
    });
    const ip = r.ipv4[0] as string;
    if (withEndpoint) await rs.create(workloadEndpoint({ name, node: host, ips: [ip] }));
    return ip;
  };
  return { run, ipam, rs, workload };
}

describe("twill ipam show", () => {
  test("usage per pool, and per block with its host", async () => {
    const { run, workload } = await harness();
    await workload("a", "host-1");
    await workload("b", "host-1");
    await workload("c", "host-2");
    const plain = await run(["show"]);
    assert.equal(plain.code, EXIT.ok, plain.err);
    assert.equal(
      plain.out,
      [
        "GROUPING   CIDR            HOST   IPS TOTAL   IPS IN USE   IPS FREE",
        "IP Pool    10.65.0.0/24           256         3 (1%)       253 (99%)",
        "IP Pool    fd00:65::/120          256         0 (0%)       256 (100%)",
        "",
      ].join("\n"),
    );
    const blocks = await run(["show", "--show-blocks"]);
    const rows = blocks.out.split("\n").filter((l) => l.startsWith("Block"));
    assert.equal(rows.length, 2);
    assert.match(rows.find((r) => r.includes("host-1")) ?? "", /16 +2 \(13%\) +14 \(88%\)$/);
    assert.match(rows.find((r) => r.includes("host-2")) ?? "", /16 +1 \(6%\) +15 \(94%\)$/);
  });

  test("--ip tells who holds an address, or that nobody does", async () => {
    const { run, workload } = await harness();
    const ip = await workload("web", "host-1");
    const held = await run(["show", "--ip", ip]);
    assert.equal(held.code, EXIT.ok);
    assert.match(held.out, new RegExp(`^${ip.replace(/\./g, "\\.")} is allocated\n`));
    assert.match(held.out, /handle: +k8s-pod-network\.web\n/);
    assert.match(
      held.out,
      /attributes: +namespace=default node=host-1 pod=web workloadEndpoint=web\n/,
    );
    const gw = await run(["show", "--ip", "10.65.0.1"]);
    assert.equal(
      gw.out,
      '10.65.0.1 is not allocated (pool "pool-v4"); it is reserved by an IPReservation\n',
    );
    const outside = await run(["show", "--ip", "192.168.1.1"]);
    assert.equal(outside.out, "192.168.1.1 is not allocated (it is in no IP pool)\n");
    const bad = await run(["show", "--ip", "10.65.0"]);
    assert.equal(bad.code, EXIT.usage);
    assert.match(bad.err, /--ip: "10\.65\.0" is not an IP address/);
  });

  test("a store that cannot run IPAM's transactions is an error, not a crash", async () => {
    const { run } = await harness({ withBackend: false });
    const r = await run(["show"]);
    assert.equal(r.code, EXIT.failed);
    assert.match(r.err, /does not expose its key-value backend/);
  });
});

describe("twill ipam check and release", () => {
  test("a clean datastore checks clean (exit 0)", async () => {
    const { run, workload } = await harness();
    await workload("a", "host-1");
    const r = await run(["check"]);
    assert.equal(r.code, EXIT.ok, r.out);
    assert.match(r.out, /^Checked 2 pool\(s\), 1 block\(s\), 1 allocation\(s\)/);
    assert.match(r.out, /Allocations with no endpoint: 0\n/);
    assert.match(r.out, /Inconsistent records: 0\n$/);
  });

  test("check -o writes a report that release --from-report acts on", async () => {
    const { run, workload, ipam } = await harness();
    await workload("kept", "host-1");
    const leaked = await workload("gone", "host-1", false);
    const file = path.join(dir, "report.json");
    const checked = await run(["check", "-o", file]);
    assert.equal(checked.code, EXIT.failed, "problems found: exit 1");
    assert.match(checked.out, /Allocations with no endpoint: 1\n/);
    assert.match(
      checked.out,
      new RegExp(`${leaked.replace(/\./g, "\\.")} +k8s-pod-network\\.gone +default/gone +host-1`),
    );
    assert.match(checked.out, new RegExp(`Report written to ${file}\n$`));
    const report = JSON.parse(await readFile(file, "utf8")) as IpamReport;
    assert.equal(report.leakedAllocations[0]?.ip, leaked);

    const released = await run(["release", "--from-report", file]);
    assert.equal(released.code, EXIT.ok, released.err);
    assert.equal(released.out, `released ${leaked} (handle "k8s-pod-network.gone")\n`);
    assert.equal(await ipam.getAllocation(leaked), undefined);
    const again = await run(["release", "--from-report", file]);
    assert.equal(again.code, EXIT.ok);
    assert.equal(again.err, `${leaked} was not allocated: nothing to release\n`);
    assert.equal((await run(["check"])).code, EXIT.ok);
  });

  test("a report's address given to someone else since is left alone (exit 5)", async () => {
    const { run, workload, ipam } = await harness();
    const leaked = await workload("gone", "host-1", false);
    const report = (await run(["check", "-o", "-"])).out;
    await ipam.releaseIPs([leaked]);
    await ipam.assignIP({ ip: leaked, host: "host-1", handle: "k8s-pod-network.new" });
    const r = await run(["release", "--from-report", "-"], report);
    assert.equal(r.code, EXIT.conflict);
    assert.equal(
      r.err,
      `${leaked} left alone: held by handle "k8s-pod-network.new", not "k8s-pod-network.gone"\n`,
    );
    assert.equal((await ipam.getAllocation(leaked))?.handle, "k8s-pod-network.new");
  });

  test("release by address and by handle; twice is harmless", async () => {
    const { run, workload } = await harness();
    const a = await workload("a", "host-1");
    const b = await workload("b", "host-1");
    const wrong = await run(["release", "--ip", a, "--handle", "k8s-pod-network.b"]);
    assert.equal(wrong.code, EXIT.conflict);
    const byIp = await run(["release", "--ip", a]);
    assert.equal(byIp.out, `released ${a} (handle "k8s-pod-network.a")\n`);
    assert.equal((await run(["release", "--ip", a])).code, EXIT.ok);
    const byHandle = await run(["release", "--handle", "k8s-pod-network.b"]);
    assert.equal(byHandle.out, `released ${b} (handle "k8s-pod-network.b")\n`);
    const twice = await run(["release", "--handle", "k8s-pod-network.b"]);
    assert.equal(twice.code, EXIT.ok);
    assert.equal(twice.err, `handle "k8s-pod-network.b" holds no addresses: nothing to release\n`);
  });

  const usage: { args: string[]; message: RegExp }[] = [
    { args: ["release"], message: /give --ip ADDR, --handle H or --from-report FILE/ },
    { args: ["release", "--from-report", "x", "--ip", "10.65.0.2"], message: /cannot be combined/ },
    { args: ["release", "--ip", "nope"], message: /"nope" is not an IP address/ },
    { args: ["gc", "--grace", "10 minutes"], message: /"10 minutes" is not a duration/ },
  ];
  for (const c of usage) {
    test(`usage error: ipam ${c.args.join(" ")}`, async () => {
      const { run } = await harness();
      const r = await run(c.args);
      assert.equal(r.code, EXIT.usage);
      assert.match(r.err, c.message);
    });
  }

  test("a file that is not a report is refused", async () => {
    const { run } = await harness();
    const file = path.join(dir, "not-a-report.json");
    await writeFile(file, JSON.stringify({ hello: 1 }));
    const r = await run(["release", "--from-report", file]);
    assert.equal(r.code, EXIT.failed);
    assert.match(r.err, /not a 'twill ipam check' report/);
  });
});

describe("twill ipam gc", () => {
  test("a dry run reports and releases nothing; --yes releases", async () => {
    const { run, workload, ipam } = await harness();
    const leaked = await workload("gone", "host-1", false);
    const dry = await run(["gc", "--grace", "0"]);
    assert.equal(dry.code, EXIT.ok, dry.err);
    assert.match(dry.out, /Allocations with no endpoint: 1 \(grace period 0s\)\n/);
    assert.match(dry.out, /would release/);
    assert.match(
      dry.out,
      /Dry run: nothing was released\. Run with --yes to release 1 address\(es\) and 0 block\(s\)\.\n$/,
    );
    assert.ok(await ipam.getAllocation(leaked));
    const real = await run(["gc", "--grace", "0", "--yes"]);
    assert.equal(real.code, EXIT.ok, real.err);
    assert.match(
      real.out,
      new RegExp(
        `released ${leaked.replace(/\./g, "\\.")} \\(handle "k8s-pod-network\\.gone"\\)\n`,
      ),
    );
    assert.match(real.out, /Released 1 address\(es\) and 0 block\(s\)\.\n$/);
    assert.equal(await ipam.getAllocation(leaked), undefined);
  });

  test("with the default grace, a fresh leak waits", async () => {
    const { run, workload } = await harness();
    await workload("gone", "host-1", false);
    const r = await run(["gc", "--yes"]);
    assert.match(r.out, /grace period 15m/);
    assert.match(r.out, /wait 15m/);
    assert.match(r.out, /Released 0 address\(es\)/);
  });
});

describe("durations", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["500ms", 500],
    ["45s", 45_000],
    ["10m", 600_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
  ];
  for (const [text, ms] of cases) {
    test(`"${text}" is ${ms} ms`, () => assert.equal(parseDuration(text), ms));
  }
  test("durations print compactly", () => {
    assert.deepEqual(
      [0, 59_000, 61_000, 3_600_000, 5_400_000, 50 * 3_600_000].map(formatDuration),
      ["0s", "59s", "1m1s", "1h", "1h30m", "2d2h"],
    );
  });
});
