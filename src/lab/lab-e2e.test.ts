// The lab end to end, as issue 7 asks: a flat lab (3 hosts) and a
// leaf-spine lab (2 racks × 2 hosts), every workload pair probed (TCP and
// ping) against what policy says, before and after a policy change, and
// `lab down` leaving no namespace, interface or process behind.
//
// What policy says comes from the calc's reference evaluator (lab check);
// these tests also state the expected matrix by hand, so a mistake shared by
// the evaluator and the dataplane would still show. Needs root, etcd, bird2
// and frr; skipped otherwise. Each lab has a name of its own (e<random>) and
// its state under a temporary root, and is removed in `finally`.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { Command } from "commander";
import { parseDocuments } from "../api/parse-documents.js";
import type { Resource } from "../api/resource.js";
import { validateResource } from "../api/validate.js";
import { registerLab } from "../cli/commands/lab.js";
import type { CommandContext } from "../cli/context.js";
import { captureOutput } from "../cli/output.js";
import { labDown, labUp, openLabStore } from "./lab.js";
import type { LabInfo } from "./lab.js";
import { labCheck } from "./lab-check.js";
import type { LabCheckReport } from "./lab-check.js";
import { listNetns, pidsMentioning, run, runOk } from "./lab-os.js";
import { labTraceroute } from "./lab-trace.js";
import { renderCheck } from "./render-check.js";

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const bin of [
    "/usr/bin/etcd",
    "/usr/sbin/bird",
    "/usr/lib/frr/zebra",
    "/usr/lib/frr/bgpd",
  ]) {
    if (!existsSync(bin)) return `needs ${bin}`;
  }
  return undefined;
}

const skip = unavailable();
const root = mkdtempSync(join(tmpdir(), "twl-e2e-"));
after(() => rmSync(root, { recursive: true, force: true }));
const settings = { stateRoot: root };
const newName = (): string => `e${randomBytes(3).toString("hex")}`;
/** Policy takes a moment to reach every host: re-probe mismatches for up to ~10 s. */
const CHECK = { ...settings, attempts: 20, retryDelayMs: 250 };

/** Interface names the lab uses; none may ever appear in the machine's own namespace. */
const LAB_LINK = /^(h\d+|fab\d+|mgmt\d+|tor\d+|spine\d+|plain\d+|site\d+|br0|tw[0-9a-f]{6,})$/;

async function rootLinks(): Promise<Set<string>> {
  const links = JSON.parse(await runOk("ip", ["-j", "link", "show"])) as { ifname: string }[];
  return new Set(links.map((l) => l.ifname));
}

async function assertGone(name: string, linksBefore: Set<string>): Promise<void> {
  assert.deepEqual(
    (await listNetns()).filter((n) => n.startsWith(`twl-${name}-`)),
    [],
    "no namespace left",
  );
  assert.deepEqual(await pidsMentioning(join(root, name)), [], "no process left");
  assert.equal(existsSync(join(root, name)), false, "no state dir left");
  const added = [...(await rootLinks())].filter((l) => !linksBefore.has(l) && LAB_LINK.test(l));
  assert.deepEqual(added, [], "no lab interface in the machine's own namespace");
}

function valid(doc: unknown): Resource {
  const r = validateResource(doc);
  if (!r.ok) throw new Error(`invalid resource: ${JSON.stringify(r.errors)}`);
  return r.resource;
}

async function apply(info: LabInfo, resources: readonly Resource[]): Promise<void> {
  const { store, close } = openLabStore(info);
  try {
    for (const r of resources) await store.apply(r);
  } finally {
    await close();
  }
}

/** Every probe matched, and policy said what `want` says for each. */
function assertMatrix(
  report: LabCheckReport,
  want: (from: string, to: string, proto: "tcp" | "icmp") => boolean,
): void {
  assert.equal(report.mismatches, 0, renderCheck(report));
  const n = report.workloads.length;
  assert.equal(report.results.length, n * (n - 1) * 2);
  const wrong = report.results
    .filter((r) => r.allowed !== want(r.from, r.to, r.proto))
    .map((r) => `${r.from}→${r.to} ${r.proto}: policy says ${r.allowed ? "allow" : "deny"}`);
  assert.deepEqual(wrong, [], "the expected matrix, by hand");
}

describe("lab end to end (real namespaces, agents, BIRD, FRR)", { skip, timeout: 300_000 }, () => {
  it("flat, 3 hosts: every pair as policy says before and after a Kubernetes NetworkPolicy; a broken pair is reported; down leaves nothing", async () => {
    const name = newName();
    const linksBefore = await rootLinks();
    try {
      const info = await labUp(
        { name, topology: "flat", hosts: 3, workloadsPerHost: 2 },
        { ...settings, timeoutMs: 60_000 },
      );
      const tenant = new Map(info.workloads.map((w) => [w.name, w.labels["tenant"]]));

      assertMatrix(await labCheck(name, CHECK), () => true);

      // Tenant b's pods accept TCP/80 from tenant b only; ping into b is denied.
      await apply(info, [
        valid({
          apiVersion: "networking.k8s.io/v1",
          kind: "NetworkPolicy",
          metadata: { name: "b-only", namespace: "default" },
          spec: {
            podSelector: { matchLabels: { tenant: "b" } },
            ingress: [
              {
                from: [{ podSelector: { matchLabels: { tenant: "b" } } }],
                ports: [{ protocol: "TCP", port: 80 }],
              },
            ],
          },
        }),
      ]);
      const after = await labCheck(name, CHECK);
      assert.deepEqual(after.policies, ["NetworkPolicy (networking.k8s.io) default/b-only"]);
      assertMatrix(
        after,
        (from, to, proto) =>
          tenant.get(to) === "a" || (proto === "tcp" && tenant.get(from) === "b"),
      );

      // A workload whose own firewall drops its pings: lab check says so,
      // and the CLI exits 1.
      const h1w1 = info.workloads.find((w) => w.name === "h1w1");
      assert.ok(h1w1);
      await runOk("ip", ["netns", "exec", h1w1.ns, "nft", "-f", "-"], {
        input:
          "table inet t {\n chain o {\n  type filter hook output priority 0;\n  icmp type echo-request drop\n }\n}\n",
      });
      const output = captureOutput();
      let code = 0;
      const program = new Command().exitOverride();
      const ctx = { output, fail: (c: number) => (code ||= c) } as unknown as CommandContext;
      registerLab(program, ctx, {
        execInherit: () => Promise.resolve(0),
        isTTY: () => false,
        stateRoot: root,
      });
      await program.parseAsync(["lab", "check", "--name", name, "--attempts", "2"], {
        from: "user",
      });
      assert.equal(code, 1, output.stdout);
      const pingsToA = info.workloads.filter((w) => w !== h1w1 && tenant.get(w.name) === "a");
      assert.match(output.stdout, new RegExp(`✗ ${pingsToA.length} of 60 probes are not as`));
      for (const w of pingsToA) {
        assert.match(output.stdout, new RegExp(`h1w1 → ${w.name}  ping .*policy says allow`));
      }

      const down = await labDown(name, settings);
      assert.ok(down.namespaces > 0 && down.processes > 0);
      await assertGone(name, linksBefore);
    } finally {
      await labDown(name, settings);
    }
  });

  it("leaf-spine, 2 racks × 2 hosts: across racks through hosts and routers only; tenant isolation; a plain machine reaches a workload; down leaves nothing", async () => {
    const name = newName();
    const linksBefore = await rootLinks();
    try {
      const info = await labUp(
        { name, topology: "leaf-spine", racks: 2, hosts: 4, workloadsPerHost: 2 },
        { ...settings, timeoutMs: 60_000 },
      );
      const tenant = new Map(info.workloads.map((w) => [w.name, w.labels["tenant"]]));

      // h1 is in rack 1, h4 in rack 2: the path is hosts and routers, no tunnel.
      const trace = await labTraceroute(name, "h1w1", "h4w2", settings);
      assert.ok(trace.reached, trace.annotated.join("\n"));
      assert.equal(trace.path, "h1w1 → h1 → tor1 → spine1 → tor2 → h4 → h4w2");
      assert.deepEqual(
        trace.hops.map((h) => h.owner?.role),
        ["host", "tor", "spine", "tor", "host", "workload"],
      );

      assertMatrix(await labCheck(name, CHECK), () => true);

      const file = new URL("../../../examples/lab/tenant-isolation.yaml", import.meta.url);
      const parsed = parseDocuments(readFileSync(file, "utf8"), "tenant-isolation.yaml");
      await apply(
        info,
        parsed.documents.map((d) => valid(d.value)),
      );
      const isolated = await labCheck(name, CHECK);
      assert.deepEqual(isolated.policies, ["GlobalNetworkPolicy tenant-isolation"]);
      assertMatrix(isolated, (from, to) => tenant.get(from) === tenant.get(to));

      // The plain machine, no twill on it, reaches a workload in the other
      // rack by routing alone, and the workload sees its real address.
      const plain = info.plan.plains[0];
      const target = info.workloads.find((w) => w.name === "h1w1");
      assert.ok(plain && target?.ipv4);
      const r = await run("ip", [
        "netns",
        "exec",
        plain.ns,
        "bash",
        "-c",
        `exec 3<>/dev/tcp/${target.ipv4}/80 && timeout 5 cat <&3`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout) as { from?: string }).from, plain.ipv4.split("/")[0]);

      await labDown(name, settings);
      await assertGone(name, linksBefore);
    } finally {
      await labDown(name, settings);
    }
  });
});
