// The CNI plugin run exactly as a runtime runs it (the built executable,
// environment + stdin, stdout + exit code) inside real network namespaces,
// against a real etcd. Needs root; skipped otherwise. Everything it creates
// is in namespaces named twt-<random>-..., removed in `after` even when a
// test fails; the machine's own namespace is never touched.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import type { Resource } from "../api/resource.js";
import { validateResource } from "../api/validate.js";
import { TWILL_ROUTE_PROTOCOL } from "../api/schemas/felix-configuration.js";
import { endpointStatusKey, formatEndpointStatus } from "../datastore/endpoint-status.js";
import { startEtcd } from "../datastore/etcd-server.js";
import type { EtcdServer } from "../datastore/etcd-server.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { reportIsClean } from "../ipam/ipam-audit.js";
import { Ipam } from "../ipam/ipam.js";
import { WORKLOAD_ENDPOINT } from "./endpoint-resource.js";
import { EtcdHttpBackend } from "./etcd-http-backend.js";
import { IPV6_GATEWAY } from "./netlink.js";
import {
  UPLINK_V4,
  UPLINK_V6,
  mapLimit,
  netnsUnavailableReason,
  startNetnsLab,
} from "./testing/netns-lab.js";
import type { NetnsLab, PluginCall } from "./testing/netns-lab.js";

const skip = netnsUnavailableReason();
const API = "projectcalico.org/v3";

let etcd: EtcdServer;
let lab: NetnsLab;
let backend: EtcdHttpBackend;
const run = randomBytes(3).toString("hex");

/** A datastore of its own per scenario: pools, nodes, and an Ipam to audit it. */
async function scenario(
  name: string,
  pools: [string, string, Record<string, unknown>?][],
  nodes: string[] = ["host-a", "host-b", "host-c", "host-d"],
): Promise<{ prefix: string; store: ResourceStore; ipam: Ipam }> {
  const prefix = `/twt-${run}/${name}`;
  const store = new ResourceStore(backend, { prefix });
  for (const [pool, cidr, spec] of pools) {
    await store.create({
      apiVersion: API,
      kind: "IPPool",
      metadata: { name: pool },
      spec: { cidr, ...spec },
    });
  }
  for (const node of nodes) {
    await store.create({ apiVersion: API, kind: "Node", metadata: { name: node }, spec: {} });
  }
  return { prefix, store, ipam: new Ipam(store) };
}

function config(prefix: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    cniVersion: "1.1.0",
    name: "twnet",
    type: "twill",
    nodename: "host-a",
    etcd_endpoints: lab.etcdEndpoint,
    datastorePrefix: prefix,
    policy: { waitForProgrammed: false },
    ...extra,
  };
}

function cniEnv(command: string, containerId: string, netns: string): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netns,
    CNI_IFNAME: "eth0",
    CNI_PATH: "/opt/cni/bin",
  };
}

function ok(call: PluginCall): Record<string, unknown> {
  assert.equal(call.exitCode, 0, `plugin failed: ${call.stdout} ${call.stderr}`);
  return call.json ?? {};
}

function ipsOf(result: Record<string, unknown>): string[] {
  return ((result["ips"] as { address: string }[] | undefined) ?? []).map((i) => i.address);
}

async function hostInterfaces(host: string): Promise<string[]> {
  const links = JSON.parse(await lab.ip(host, ["-j", "link", "show"])) as { ifname: string }[];
  return links.map((l) => l.ifname).filter((n) => n.startsWith("tw"));
}

async function handles(ipam: Ipam): Promise<string[]> {
  const out: string[] = [];
  for (const { block } of await ipam.listBlocks()) {
    for (const a of Object.values(block.allocations)) out.push(a.handle);
  }
  return out.sort();
}

describe("CNI plugin in real network namespaces", { skip, concurrency: false }, () => {
  let host: string;

  before(async () => {
    etcd = await startEtcd();
    backend = new EtcdHttpBackend({ endpoints: [etcd.endpoint] });
    lab = await startNetnsLab(etcd);
    host = await lab.addHost();
  });

  after(async () => {
    await lab?.close();
    await backend?.close();
    await etcd?.stop();
    if (lab) assert.deepEqual(await lab.namespaces(), [], "every namespace of the lab is gone");
  });

  it("ADD → CHECK → DEL, dual stack: kernel state, reachability, endpoint, IPAM", async () => {
    const { prefix, store, ipam } = await scenario("roundtrip", [
      ["v4", "10.70.0.0/16"],
      ["v6", "fd00:70::/48"],
    ]);
    const netns = await lab.addWorkload();
    const conf = config(prefix, { ipam: { type: "twill-ipam", assign_ipv6: "true" } });
    const result = ok(await lab.plugin(host, cniEnv("ADD", "rt1", netns), conf));
    const [ip4, ip6] = ipsOf(result);
    assert.match(ip4 ?? "", /^10\.70\.\d+\.\d+\/32$/);
    assert.match(ip6 ?? "", /^fd00:70:.*\/128$/);
    const interfaces = result["interfaces"] as { name: string; mac: string; sandbox?: string }[];
    const veth = interfaces[0]?.name as string;
    assert.match(veth, /^tw[0-9a-f]{11}$/);

    // Host side: MAC, routes with twill's protocol, sysctls.
    const link = JSON.parse(await lab.ip(host, ["-j", "link", "show", "dev", veth]))[0];
    assert.equal(link.address, "ee:ee:ee:ee:ee:ee");
    const routes4 = JSON.parse(await lab.ip(host, ["-j", "route", "show", "dev", veth]));
    assert.deepEqual(routes4, [
      {
        dst: ip4?.replace("/32", ""),
        protocol: String(TWILL_ROUTE_PROTOCOL),
        scope: "link",
        flags: [],
      },
    ]);
    const routes6 = JSON.parse(await lab.ip(host, ["-j", "-6", "route", "show", "dev", veth])) as {
      dst: string;
      protocol: string;
    }[];
    assert.ok(
      routes6.some(
        (r) => r.dst === ip6?.replace("/128", "") && r.protocol === String(TWILL_ROUTE_PROTOCOL),
      ),
      JSON.stringify(routes6),
    );
    for (const [path, want] of [
      [`ipv4/conf/${veth}/proxy_arp`, "1"],
      [`ipv4/neigh/${veth}/proxy_delay`, "0"],
      [`ipv4/conf/${veth}/forwarding`, "1"],
      [`ipv6/conf/${veth}/accept_ra`, "0"],
    ] as const) {
      const got = await lab.run(host, "cat", [`/proc/sys/net/${path}`]);
      assert.equal(got.stdout.trim(), want, path);
    }

    // Workload side: addresses and the gateway routes.
    const wl = JSON.parse(await lab.ip(netns, ["-j", "addr", "show", "dev", "eth0"]))[0];
    const addrs = (wl.addr_info as { local: string; prefixlen: number; scope: string }[])
      .filter((a) => a.scope !== "link")
      .map((a) => `${a.local}/${a.prefixlen}`);
    assert.deepEqual(addrs, [ip4, ip6]);
    assert.equal(wl.address, interfaces[1]?.mac);
    const wlRoutes = JSON.parse(await lab.ip(netns, ["-j", "route", "show"]));
    assert.deepEqual(wlRoutes, [
      { dst: "default", gateway: "169.254.1.1", dev: "eth0", flags: [] },
      { dst: "169.254.1.1", dev: "eth0", scope: "link", flags: [] },
    ]);
    const wlRoutes6 = JSON.parse(await lab.ip(netns, ["-j", "-6", "route", "show", "default"]));
    assert.equal(wlRoutes6[0]?.gateway, IPV6_GATEWAY);

    // The workload reaches its host over both families.
    assert.equal(await lab.reach(host, netns, UPLINK_V4), "pong");
    assert.equal(await lab.reach(host, netns, UPLINK_V6), "pong");

    // The endpoint and the allocation.
    const [wep] = (await store.list(WORKLOAD_ENDPOINT)).items as Resource[];
    assert.equal(wep?.metadata.name, "host--a-cni-rt1-eth0");
    assert.ok(validateResource(wep).ok);
    assert.deepEqual((wep?.spec as Record<string, unknown>)["ipNetworks"], [ip4, ip6]);
    assert.deepEqual(await handles(ipam), ["twnet.rt1", "twnet.rt1"]);

    // CHECK passes, then notices a missing route.
    const check = await lab.plugin(host, cniEnv("CHECK", "rt1", netns), {
      ...conf,
      prevResult: result,
    });
    assert.equal(check.exitCode, 0, check.stdout);
    assert.equal(check.stdout, "");
    await lab.ip(host, ["route", "del", ip4 as string, "dev", veth]);
    const broken = await lab.plugin(host, cniEnv("CHECK", "rt1", netns), {
      ...conf,
      prevResult: result,
    });
    assert.equal(broken.exitCode, 1);
    assert.equal(broken.json?.["code"], 102);
    assert.match(String(broken.json?.["details"]), /no host route 10\.70\./);

    // DEL removes everything; DEL again succeeds.
    ok(await lab.plugin(host, cniEnv("DEL", "rt1", netns), { ...conf, prevResult: result }));
    assert.deepEqual(await hostInterfaces(host), []);
    assert.equal((await lab.run(netns, "ip", ["link", "show", "eth0"])).code, 1);
    assert.deepEqual((await store.list(WORKLOAD_ENDPOINT)).items, []);
    assert.deepEqual(await handles(ipam), []);
    assert.ok(reportIsClean(await ipam.check()));
    ok(await lab.plugin(host, cniEnv("DEL", "rt1", netns), { ...conf, prevResult: result }));
    await lab.deleteNamespace(netns);
  });

  it("answers VERSION and the spec's error codes", async () => {
    const { prefix } = await scenario("errors", [["v4", "10.71.0.0/16"]]);
    const netns = await lab.addWorkload();
    const version = await lab.plugin(host, { CNI_COMMAND: "VERSION" }, { cniVersion: "1.0.0" });
    assert.deepEqual(version.json, { cniVersion: "1.0.0", supportedVersions: ["1.0.0", "1.1.0"] });
    const cases: [string, Record<string, string>, unknown, number][] = [
      ["missing variables", { CNI_COMMAND: "ADD" }, config(prefix), 4],
      [
        "unknown command",
        { ...cniEnv("ADD", "e1", netns), CNI_COMMAND: "NOPE" },
        config(prefix),
        4,
      ],
      ["unparsable config", cniEnv("ADD", "e1", netns), "{not json", 6],
      ["missing network name", cniEnv("ADD", "e1", netns), { ...config(prefix), name: "" }, 7],
      [
        "unsupported version",
        cniEnv("ADD", "e1", netns),
        { ...config(prefix), cniVersion: "0.3.1" },
        1,
      ],
    ];
    for (const [what, env, conf, code] of cases) {
      const call = await lab.plugin(host, env, conf);
      assert.equal(call.exitCode, 1, what);
      assert.equal(call.json?.["code"], code, `${what}: ${call.stdout}`);
    }
    assert.deepEqual(await hostInterfaces(host), []);
    await lab.deleteNamespace(netns);
  });

  it("DEL succeeds when the workload's namespace is already gone, or was never added", async () => {
    const { prefix, ipam, store } = await scenario("gone", [["v4", "10.72.0.0/16"]]);
    const netns = await lab.addWorkload();
    ok(await lab.plugin(host, cniEnv("ADD", "g1", netns), config(prefix)));
    await lab.deleteNamespace(netns);
    ok(await lab.plugin(host, cniEnv("DEL", "g1", netns), config(prefix)));
    ok(await lab.plugin(host, { ...cniEnv("DEL", "g1", ""), CNI_NETNS: "" }, config(prefix)));
    ok(await lab.plugin(host, cniEnv("DEL", "never", "/var/run/netns/none"), config(prefix)));
    assert.deepEqual(await hostInterfaces(host), []);
    assert.deepEqual(await handles(ipam), []);
    assert.deepEqual((await store.list(WORKLOAD_ENDPOINT)).items, []);
  });

  it("rolls back a failed ADD: exhausted pool, interface taken, policy wait timed out", async () => {
    const { prefix, ipam, store } = await scenario("rollback", [
      ["tiny", "10.73.0.0/30", { blockSize: 30 }],
    ]);
    const netnses = await Promise.all([0, 1, 2, 3, 4].map(() => lab.addWorkload()));
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      got.push(
        ...ipsOf(
          ok(await lab.plugin(host, cniEnv("ADD", `r${i}`, netnses[i] as string), config(prefix))),
        ),
      );
    }
    assert.equal(new Set(got).size, 4);
    const fifth = await lab.plugin(host, cniEnv("ADD", "r4", netnses[4] as string), config(prefix));
    assert.equal(fifth.json?.["code"], 100, fifth.stdout);
    assert.equal((await hostInterfaces(host)).length, 4);
    assert.equal((await lab.run(netnses[4] as string, "ip", ["link", "show", "eth0"])).code, 1);

    // Free one address; then an ADD into a namespace that already has eth0.
    ok(await lab.plugin(host, cniEnv("DEL", "r3", netnses[3] as string), config(prefix)));
    await lab.ip(netnses[4] as string, [
      "link",
      "add",
      "eth0",
      "type",
      "veth",
      "peer",
      "name",
      "eth1",
    ]);
    const taken = await lab.plugin(host, cniEnv("ADD", "r4", netnses[4] as string), config(prefix));
    assert.equal(taken.json?.["code"], 101, taken.stdout);
    assert.equal((await hostInterfaces(host)).length, 3);
    assert.deepEqual(await handles(ipam), ["twnet.r0", "twnet.r1", "twnet.r2"]);

    // With the policy wait on and no agent: code 11, and nothing left behind.
    const waiting = config(prefix, { policy: { waitForProgrammed: true, timeoutSeconds: 0.5 } });
    const timedOut = await lab.plugin(host, cniEnv("ADD", "r3", netnses[3] as string), waiting);
    assert.equal(timedOut.json?.["code"], 11, timedOut.stdout);
    assert.equal((await hostInterfaces(host)).length, 3);
    assert.equal((await lab.run(netnses[3] as string, "ip", ["link", "show", "eth0"])).code, 1);
    assert.equal((await store.list(WORKLOAD_ENDPOINT)).items.length, 3);
    assert.deepEqual(await handles(ipam), ["twnet.r0", "twnet.r1", "twnet.r2"]);

    for (let i = 0; i < 3; i++)
      ok(await lab.plugin(host, cniEnv("DEL", `r${i}`, netnses[i] as string), config(prefix)));
    assert.ok(reportIsClean(await ipam.check()));
    for (const n of netnses) await lab.deleteNamespace(n);
  });

  it("waits for the agent's report before returning from ADD", async () => {
    const { prefix, store } = await scenario("wait", [["v4", "10.74.0.0/16"]]);
    const netns = await lab.addWorkload();
    const ac = new AbortController();
    // A stand-in for twill-agent: reports each endpoint programmed at its revision.
    const agent = (async () => {
      const from = await store.backend.revision();
      try {
        for await (const ev of store.watch({
          kind: WORKLOAD_ENDPOINT,
          fromRevision: from,
          signal: ac.signal,
        })) {
          if (ev.type !== "put") continue;
          const r = ev.resource;
          const key = endpointStatusKey(prefix, {
            node: (r.spec as { node: string }).node,
            namespace: r.metadata.namespace ?? "default",
            name: r.metadata.name,
          });
          const value = formatEndpointStatus({
            state: "programmed",
            resourceVersion: r.metadata.resourceVersion ?? "0",
          });
          await store.backend.txn({ compare: [], success: [{ type: "put", key, value }] });
        }
      } catch {
        // Aborted at the end of the test.
      }
    })();
    const conf = config(prefix, { policy: { waitForProgrammed: true, timeoutSeconds: 10 } });
    const add = await lab.plugin(host, cniEnv("ADD", "w1", netns), conf);
    ac.abort();
    await agent;
    ok(add);
    ok(await lab.plugin(host, cniEnv("DEL", "w1", netns), conf));
    await lab.deleteNamespace(netns);
  });

  it("works as the IPAM plugin twill-ipam under another plugin", async () => {
    const { prefix, ipam } = await scenario("ipam", [["v4", "10.75.0.0/16"]]);
    const conf = {
      cniVersion: "1.0.0",
      name: "br",
      type: "bridge",
      nodename: "host-a",
      etcd_endpoints: lab.etcdEndpoint,
      datastorePrefix: prefix,
      ipam: { type: "twill-ipam" },
    };
    const env = cniEnv("ADD", "i1", "/var/run/netns/unused");
    const result = ok(await lab.plugin(host, env, conf, { as: "twill-ipam" }));
    assert.equal(result["interfaces"], undefined);
    assert.match(ipsOf(result)[0] ?? "", /^10\.75\./);
    assert.deepEqual(await hostInterfaces(host), []);
    ok(await lab.plugin(host, { ...env, CNI_COMMAND: "DEL" }, conf, { as: "twill-ipam" }));
    assert.deepEqual(await handles(ipam), []);
  });

  it("50 parallel ADDs on one host, then 200 across 4 hosts: no address twice, IPAM clean after DEL", async () => {
    const { prefix, ipam } = await scenario("burst", [
      ["v4", "10.76.0.0/16"],
      ["v6", "fd00:76::/48"],
    ]);
    const hosts = [host, await lab.addHost(), await lab.addHost(), await lab.addHost()];
    const nodes = ["host-a", "host-b", "host-c", "host-d"];
    const conf = (i: number) =>
      config(prefix, { nodename: nodes[i % 4], ipam: { type: "twill-ipam", assign_ipv6: "true" } });
    const netnses = await mapLimit(
      Array.from({ length: 200 }, (_, i) => i),
      16,
      () => lab.addWorkload(),
    );
    // Workloads 0-49 on host 0, all at once; then 50-199 round-robin over the 4 hosts
    // (host 0 fills its first block and claims another while the others race for theirs).
    const hostOf = (i: number): number => (i < 50 ? 0 : (i - 50) % 4);
    const add = (i: number): Promise<PluginCall> =>
      lab.plugin(
        hosts[hostOf(i)] as string,
        cniEnv("ADD", `b${i}`, netnses[i] as string),
        conf(hostOf(i)),
      );
    const started = performance.now();
    const first = await Promise.all(Array.from({ length: 50 }, (_, i) => add(i)));
    const firstSeconds = (performance.now() - started) / 1000;
    first.forEach((c) => ok(c));
    const restStarted = performance.now();
    const others = await mapLimit(
      Array.from({ length: 150 }, (_, k) => 50 + k),
      50,
      add,
    );
    const restSeconds = (performance.now() - restStarted) / 1000;
    others.forEach((c) => ok(c));
    const all = [...first, ...others].flatMap((c) => ipsOf(c.json ?? {}));
    assert.equal(all.length, 400, "one IPv4 and one IPv6 address per workload");
    assert.equal(new Set(all).size, 400, "no address handed out twice");
    for (let h = 0; h < 4; h++) {
      const expected = Array.from({ length: 200 }, (_, i) => i).filter(
        (i) => hostOf(i) === h,
      ).length;
      assert.equal((await hostInterfaces(hosts[h] as string)).length, expected, `host ${h}`);
    }
    const delStarted = performance.now();
    const dels = await mapLimit(
      Array.from({ length: 200 }, (_, i) => i),
      50,
      (i) =>
        lab.plugin(
          hosts[hostOf(i)] as string,
          cniEnv("DEL", `b${i}`, netnses[i] as string),
          conf(hostOf(i)),
        ),
    );
    const delSeconds = (performance.now() - delStarted) / 1000;
    dels.forEach((c) => ok(c));
    for (const h of hosts) assert.deepEqual(await hostInterfaces(h), []);
    assert.deepEqual(await handles(ipam), []);
    const report = await ipam.check();
    assert.ok(reportIsClean(report), JSON.stringify(report));
    process.stderr.write(
      `cni burst: 50 parallel ADDs on one host ${firstSeconds.toFixed(1)} s, 150 more across 4 hosts ${restSeconds.toFixed(1)} s, 200 DELs ${delSeconds.toFixed(1)} s\n`,
    );
    await mapLimit(netnses, 16, (n) => lab.deleteNamespace(n));
  });
});
