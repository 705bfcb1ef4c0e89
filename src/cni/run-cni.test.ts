// The CNI core driven as a runtime drives the plugin (environment + stdin in,
// stdout + exit code out), over a memory datastore, twill's real IPAM and the
// fake kernel. The real kernel and etcd: cni-netns.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Resource } from "../api/resource.js";
import { validateResource } from "../api/validate.js";
import { MemoryBackend } from "../datastore/memory-backend.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { endpointStatusKey, formatEndpointStatus } from "../datastore/endpoint-status.js";
import { reportIsClean } from "../ipam/ipam-audit.js";
import { Ipam } from "../ipam/ipam.js";
import { TwillError } from "../util/errors.js";
import type { CniDeps, PluginRun } from "./cni-deps.js";
import { WORKLOAD_ENDPOINT } from "./endpoint-resource.js";
import { hostInterfaceName } from "./endpoint-identity.js";
import { runCni } from "./run-cni.js";
import type { RunCniOptions } from "./run-cni.js";
import { FakeNetlink } from "./testing/fake-netlink.js";

const API = "projectcalico.org/v3";
const NETNS = "/var/run/netns/w1";

function pool(name: string, cidr: string, spec: Record<string, unknown> = {}): Resource {
  return { apiVersion: API, kind: "IPPool", metadata: { name }, spec: { cidr, ...spec } };
}

interface Harness {
  store: ResourceStore;
  ipam: Ipam;
  netlink: FakeNetlink;
  logs: Record<string, unknown>[];
  delegateCalls: { type: string; command: string | undefined }[];
  deps: CniDeps;
  run(
    command: string,
    config?: Record<string, unknown>,
    env?: Record<string, string | undefined>,
    options?: RunCniOptions,
  ): Promise<{ exitCode: number; stdout: string; json: Record<string, unknown> | undefined }>;
}

const BASE_CONFIG = {
  cniVersion: "1.1.0",
  name: "net1",
  type: "twill",
  nodename: "node-1",
  policy: { waitForProgrammed: false },
};

async function harness(
  resources: Resource[] = [pool("pool4", "10.65.0.0/16"), pool("pool6", "fd00:65::/48")],
  options: { delegate?: (command: string | undefined, stdin: string) => PluginRun } = {},
): Promise<Harness> {
  const backend = new MemoryBackend();
  const store = new ResourceStore(backend);
  // The agent registers its Node; IPAM's check counts blocks of unknown hosts.
  for (const name of ["node-1", "node-2"]) {
    await store.create({ apiVersion: API, kind: "Node", metadata: { name }, spec: {} });
  }
  for (const r of resources) await store.create(r);
  const ipam = new Ipam(store);
  const netlink = new FakeNetlink();
  netlink.addNetns(NETNS);
  const logs: Record<string, unknown>[] = [];
  const delegateCalls: Harness["delegateCalls"] = [];
  const deps: CniDeps = {
    netlink,
    openDatastore: async () => ({ store, ipam, close: async () => undefined }),
    execPlugin: async (type, _dirs, env, stdin) => {
      delegateCalls.push({ type, command: env["CNI_COMMAND"] });
      if (!options.delegate) throw new TwillError("NotFound", `plugin "${type}" not found`);
      return options.delegate(env["CNI_COMMAND"], stdin);
    },
    hostname: () => "Host-A",
    now: () => 0,
    log: (entry) => logs.push(entry),
  };
  return {
    store,
    ipam,
    netlink,
    logs,
    delegateCalls,
    deps,
    async run(command, config = BASE_CONFIG, env = {}, runOptions = {}) {
      const full = {
        CNI_COMMAND: command,
        CNI_CONTAINERID: "c1",
        CNI_NETNS: NETNS,
        CNI_IFNAME: "eth0",
        CNI_PATH: "/opt/cni/bin",
        ...env,
      };
      const outcome = await runCni(full, JSON.stringify(config), deps, runOptions);
      const json =
        outcome.stdout.trim() === ""
          ? undefined
          : (JSON.parse(outcome.stdout) as Record<string, unknown>);
      return { ...outcome, json };
    },
  };
}

async function weps(store: ResourceStore): Promise<Resource[]> {
  return (await store.list(WORKLOAD_ENDPOINT)).items;
}

async function allocations(ipam: Ipam): Promise<string[]> {
  const out: string[] = [];
  for (const { block } of await ipam.listBlocks()) {
    for (const [, a] of Object.entries(block.allocations)) out.push(a.handle);
  }
  return out.sort();
}

describe("runCni: VERSION", () => {
  it("lists the supported versions and echoes a supported input version", async () => {
    const h = await harness();
    const cases: [string, string][] = [
      ['{"cniVersion":"1.0.0"}', "1.0.0"],
      ['{"cniVersion":"0.4.0"}', "1.1.0"],
      ["not json", "1.1.0"],
      ["", "1.1.0"],
    ];
    for (const [stdin, version] of cases) {
      const out = await runCni({ CNI_COMMAND: "VERSION" }, stdin, h.deps);
      assert.equal(out.exitCode, 0, stdin);
      assert.deepEqual(JSON.parse(out.stdout), {
        cniVersion: version,
        supportedVersions: ["1.0.0", "1.1.0"],
      });
      assert.ok(out.stdout.endsWith("\n"));
    }
  });
});

describe("runCni: error codes", () => {
  const cases: {
    name: string;
    command?: string;
    env?: Record<string, string | undefined>;
    config?: unknown;
    code: number;
    msg: RegExp;
  }[] = [
    { name: "missing CNI_COMMAND", command: "", code: 4, msg: /\[CNI_COMMAND\] missing/ },
    { name: "unknown command", command: "FROB", code: 4, msg: /unknown CNI_COMMAND: FROB/ },
    {
      name: "missing variables, all named",
      env: { CNI_CONTAINERID: undefined, CNI_NETNS: "", CNI_IFNAME: undefined },
      code: 4,
      msg: /\[CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME\] missing/,
    },
    {
      name: "DEL without CNI_IFNAME",
      command: "DEL",
      env: { CNI_IFNAME: undefined },
      code: 4,
      msg: /\[CNI_IFNAME\] missing/,
    },
    {
      name: "container ID with bad characters",
      env: { CNI_CONTAINERID: "-x/y" },
      code: 4,
      msg: /invalid characters in containerID/,
    },
    { name: "ifname too long", env: { CNI_IFNAME: "a".repeat(16) }, code: 4, msg: /CNI_IFNAME/ },
    { name: "ifname with a slash", env: { CNI_IFNAME: "e/0" }, code: 4, msg: /CNI_IFNAME/ },
    {
      name: "CNI_ARGS pair without '='",
      env: { CNI_ARGS: "K8S_POD_NAME" },
      code: 4,
      msg: /CNI_ARGS/,
    },
    {
      name: "K8S_POD_NAME without its namespace",
      env: { CNI_ARGS: "K8S_POD_NAME=p" },
      code: 4,
      msg: /CNI_ARGS/,
    },
    { name: "config not JSON", config: "{", code: 6, msg: /error unmarshall network config/ },
    { name: "config not an object", config: [1], code: 6, msg: /unmarshall/ },
    {
      name: "missing name",
      config: { ...BASE_CONFIG, name: undefined },
      code: 7,
      msg: /missing network name/,
    },
    {
      name: "bad name",
      config: { ...BASE_CONFIG, name: "-bad name" },
      code: 7,
      msg: /invalid characters found in network name/,
    },
    {
      name: "no cniVersion (0.1.0)",
      config: { ...BASE_CONFIG, cniVersion: undefined },
      code: 1,
      msg: /incompatible CNI versions/,
    },
    {
      name: "unsupported cniVersion",
      config: { ...BASE_CONFIG, cniVersion: "0.4.0" },
      code: 1,
      msg: /incompatible/,
    },
    {
      name: "GC on a 1.0.0 config",
      command: "GC",
      config: { ...BASE_CONFIG, cniVersion: "1.0.0" },
      code: 1,
      msg: /config version does not allow GC/,
    },
    {
      name: "STATUS on a 1.0.0 config",
      command: "STATUS",
      config: { ...BASE_CONFIG, cniVersion: "1.0.0" },
      code: 1,
      msg: /does not allow STATUS/,
    },
    {
      name: "an unsupported datastore",
      config: { ...BASE_CONFIG, datastore_type: "kubernetes" },
      code: 2,
      msg: /unsupported field/,
    },
    {
      name: "bad mtu",
      config: { ...BASE_CONFIG, mtu: 20 },
      code: 7,
      msg: /invalid network config/,
    },
    {
      name: "bad policy timeout",
      config: { ...BASE_CONFIG, policy: { timeoutSeconds: -1 } },
      code: 7,
      msg: /invalid network config/,
    },
    {
      name: "nothing to assign",
      config: { ...BASE_CONFIG, ipam: { type: "twill-ipam", assign_ipv4: "false" } },
      code: 7,
      msg: /invalid network config/,
    },
    {
      name: "the plugin's own netns",
      env: { CNI_NETNS: "/proc/self/ns/net" },
      code: 8,
      msg: /CNI_NETNS/,
    },
    {
      name: "a netns that does not exist",
      env: { CNI_NETNS: "/var/run/netns/nope" },
      code: 4,
      msg: /invalid CNI_NETNS/,
    },
    {
      name: "an IPAM plugin not in CNI_PATH",
      config: { ...BASE_CONFIG, ipam: { type: "host-local" } },
      code: 7,
      msg: /cannot run IPAM plugin "host-local"/,
    },
  ];
  for (const c of cases) {
    it(`${c.name}: code ${c.code}`, async () => {
      const h = await harness();
      const config = c.config === undefined ? BASE_CONFIG : c.config;
      const stdin = typeof config === "string" ? config : JSON.stringify(config);
      const env = {
        CNI_COMMAND: c.command ?? "ADD",
        CNI_CONTAINERID: "c1",
        CNI_NETNS: NETNS,
        CNI_IFNAME: "eth0",
        ...c.env,
      };
      const out = await runCni(env, stdin, h.deps);
      assert.equal(out.exitCode, 1);
      const err = JSON.parse(out.stdout) as Record<string, unknown>;
      assert.equal(err["code"], c.code, out.stdout);
      assert.match(String(err["msg"]), c.msg, out.stdout);
      assert.equal(typeof err["cniVersion"], "string");
      assert.deepEqual(h.netlink.dump().host, {}, "nothing was created");
    });
  }
});

describe("runCni: ADD, CHECK, DEL", () => {
  it("ADD wires the workload, writes a valid endpoint, and reports the CNI result", async () => {
    const h = await harness();
    const add = await h.run("ADD", {
      ...BASE_CONFIG,
      labels: { app: "web" },
      dns: { nameservers: ["10.96.0.10"] },
    });
    assert.equal(add.exitCode, 0, add.stdout);
    const result = add.json as {
      cniVersion: string;
      interfaces: { name: string; mac: string; sandbox?: string }[];
      ips: { address: string; gateway: string; interface: number }[];
      routes: { dst: string; gw: string }[];
      dns: unknown;
    };
    const host = hostInterfaceName("tw", {
      namespace: "default",
      wepName: "node--1-cni-c1-eth0",
      containerId: "c1",
    });
    assert.match(host, /^tw[0-9a-f]{11}$/);
    assert.equal(result.cniVersion, "1.1.0");
    assert.deepEqual(result.interfaces[0], { name: host, mac: "ee:ee:ee:ee:ee:ee" });
    assert.equal(result.interfaces[1]?.name, "eth0");
    assert.equal(result.interfaces[1]?.sandbox, NETNS);
    assert.equal(result.ips.length, 1);
    assert.match(result.ips[0]?.address ?? "", /^10\.65\.\d+\.\d+\/32$/);
    assert.equal(result.ips[0]?.gateway, "169.254.1.1");
    assert.equal(result.ips[0]?.interface, 1);
    assert.deepEqual(result.routes, [{ dst: "0.0.0.0/0", gw: "169.254.1.1" }]);
    assert.deepEqual(result.dns, { nameservers: ["10.96.0.10"] });

    const ip = (result.ips[0]?.address ?? "").split("/")[0] as string;
    const kernel = h.netlink.dump();
    assert.equal(kernel.host[host]?.up, true);
    assert.deepEqual(kernel.host[host]?.routes, [
      { dst: `${ip}/32`, scope: "link", protocol: "116" },
    ]);
    assert.equal(kernel.host[host]?.sysctls[`ipv4/conf/${host}/proxy_arp`], "1");
    assert.equal(kernel.host[host]?.sysctls[`ipv4/neigh/${host}/proxy_delay`], "0");
    assert.deepEqual(kernel.namespaces[NETNS]?.["eth0"]?.addresses, [`${ip}/32`]);

    const [wep, ...more] = await weps(h.store);
    assert.equal(more.length, 0);
    assert.ok(wep);
    const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, ...meta } = wep.metadata;
    assert.deepEqual(meta, {
      name: "node--1-cni-c1-eth0",
      namespace: "default",
      labels: {
        app: "web",
        "projectcalico.org/namespace": "default",
        "projectcalico.org/orchestrator": "cni",
      },
    });
    assert.deepEqual(wep.spec, {
      orchestrator: "cni",
      node: "node-1",
      endpoint: "eth0",
      interfaceName: host,
      ipNetworks: [`${ip}/32`],
      profiles: ["kns.default"],
      containerID: "c1",
      mac: result.interfaces[1]?.mac,
    });
    const validated = validateResource(wep);
    assert.ok(validated.ok, JSON.stringify(validated));

    const allocation = await h.ipam.getAllocation(ip);
    assert.equal(allocation?.handle, "net1.c1");
    assert.deepEqual(allocation?.attributes, {
      node: "node-1",
      namespace: "default",
      containerID: "c1",
      workloadEndpoint: "node--1-cni-c1-eth0",
    });

    const check = await h.run("CHECK", { ...BASE_CONFIG, prevResult: result });
    assert.equal(check.exitCode, 0, check.stdout);
    assert.equal(check.stdout, "", "a passing CHECK prints nothing");

    const del = await h.run("DEL", { ...BASE_CONFIG, prevResult: result });
    assert.equal(del.exitCode, 0, del.stdout);
    assert.equal(del.stdout, "");
    assert.deepEqual(h.netlink.dump().host, {});
    assert.deepEqual(h.netlink.dump().namespaces[NETNS], {});
    assert.deepEqual(await weps(h.store), []);
    assert.deepEqual(await allocations(h.ipam), []);
    {
      const report = await h.ipam.check();
      assert.ok(reportIsClean(report), JSON.stringify(report));
    }

    const again = await h.run("DEL", { ...BASE_CONFIG, prevResult: result });
    assert.equal(again.exitCode, 0, "a repeated DEL succeeds");
  });

  it("a Kubernetes pod: orchestrator k8s, named by pod, namespace profile", async () => {
    const h = await harness();
    const env = {
      CNI_ARGS:
        "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=c1",
    };
    const add = await h.run("ADD", BASE_CONFIG, env);
    assert.equal(add.exitCode, 0, add.stdout);
    const [wep] = await weps(h.store);
    assert.equal(wep?.metadata.name, "node--1-k8s-web--1-eth0");
    assert.equal(wep?.metadata.namespace, "shop");
    assert.equal(wep?.metadata.labels?.["projectcalico.org/orchestrator"], "k8s");
    const spec = wep?.spec as Record<string, unknown>;
    assert.equal(spec["pod"], "web-1");
    assert.deepEqual(spec["profiles"], ["kns.shop"]);
    assert.ok(validateResource(wep).ok);
  });

  it("dual stack: one address per family, IPv6 via the host side's link-local address", async () => {
    const h = await harness();
    const config = {
      ...BASE_CONFIG,
      ipam: { type: "twill-ipam", assign_ipv4: "true", assign_ipv6: "true" },
    };
    const add = await h.run("ADD", config);
    assert.equal(add.exitCode, 0, add.stdout);
    const result = add.json as { ips: { address: string; gateway: string }[]; routes: unknown[] };
    assert.equal(result.ips.length, 2);
    assert.match(result.ips[1]?.address ?? "", /^fd00:65:.*\/128$/);
    assert.equal(result.ips[1]?.gateway, "fe80::ecee:eeff:feee:eeee");
    assert.deepEqual(result.routes, [
      { dst: "0.0.0.0/0", gw: "169.254.1.1" },
      { dst: "::/0", gw: "fe80::ecee:eeff:feee:eeee" },
    ]);
    const check = await h.run("CHECK", { ...config, prevResult: add.json });
    assert.equal(check.exitCode, 0, check.stdout);
    assert.equal((await h.run("DEL", config)).exitCode, 0);
    assert.deepEqual(await allocations(h.ipam), []);
  });

  it("an IPv6-only network", async () => {
    const h = await harness();
    const config = {
      ...BASE_CONFIG,
      ipam: { type: "twill-ipam", assign_ipv4: false, assign_ipv6: true },
    };
    const add = await h.run("ADD", config);
    assert.equal(add.exitCode, 0, add.stdout);
    const result = add.json as { ips: { address: string }[] };
    assert.equal(result.ips.length, 1);
    assert.match(result.ips[0]?.address ?? "", /:.*\/128$/);
  });

  it("requested addresses: runtimeConfig.ips, args.cni.ips, CNI_ARGS IP", async () => {
    const cases: [Record<string, unknown>, Record<string, string>, string][] = [
      [{ runtimeConfig: { ips: ["10.65.3.3/24"] } }, {}, "10.65.3.3/32"],
      [{ args: { cni: { ips: ["10.65.4.4"] } } }, {}, "10.65.4.4/32"],
      [{}, { CNI_ARGS: "IP=10.65.5.5" }, "10.65.5.5/32"],
    ];
    for (const [extra, env, want] of cases) {
      const h = await harness();
      const add = await h.run("ADD", { ...BASE_CONFIG, ...extra }, env);
      assert.equal(add.exitCode, 0, add.stdout);
      const result = add.json as { ips: { address: string }[] };
      assert.equal(result.ips[0]?.address, want);
    }
  });

  it("args.cni.labels become endpoint labels, and runtimeConfig.mac the workload's MAC", async () => {
    const h = await harness();
    const add = await h.run("ADD", {
      ...BASE_CONFIG,
      args: { cni: { labels: [{ key: "tier", value: "db" }] } },
      runtimeConfig: { mac: "c2:11:22:33:44:55" },
    });
    assert.equal(add.exitCode, 0, add.stdout);
    const [wep] = await weps(h.store);
    assert.equal(wep?.metadata.labels?.["tier"], "db");
    assert.equal((wep?.spec as Record<string, unknown>)["mac"], "c2:11:22:33:44:55");
  });

  it("ADD after another plugin keeps its result and appends ours", async () => {
    const h = await harness();
    const prevResult = {
      cniVersion: "1.1.0",
      interfaces: [{ name: "lo", sandbox: NETNS }],
      ips: [{ address: "127.0.0.1/8", interface: 0 }],
      routes: [],
      dns: {},
    };
    const add = await h.run("ADD", { ...BASE_CONFIG, prevResult });
    assert.equal(add.exitCode, 0, add.stdout);
    const result = add.json as { interfaces: { name: string }[]; ips: { interface: number }[] };
    assert.deepEqual(result.interfaces.map((i) => i.name).slice(0, 1), ["lo"]);
    assert.equal(result.interfaces.length, 3);
    assert.deepEqual(
      result.ips.map((i) => i.interface),
      [0, 2],
    );
  });

  it("interfaces[].mtu only in 1.1.0 results", async () => {
    for (const [version, hasMtu] of [
      ["1.1.0", true],
      ["1.0.0", false],
    ] as const) {
      const h = await harness();
      const add = await h.run("ADD", { ...BASE_CONFIG, cniVersion: version, mtu: 1400 });
      assert.equal(add.exitCode, 0, add.stdout);
      const result = add.json as { cniVersion: string; interfaces: { mtu?: number }[] };
      assert.equal(result.cniVersion, version);
      assert.equal(result.interfaces[1]?.mtu === 1400, hasMtu);
    }
  });

  it("CHECK reports every difference from prevResult", async () => {
    const h = await harness();
    const add = await h.run("ADD");
    const result = add.json as { interfaces: { name: string }[]; ips: { address: string }[] };
    const host = result.interfaces[0]?.name as string;
    const ip = result.ips[0]?.address as string;
    h.netlink.dropHostRoute(host, ip);
    const [wep] = await weps(h.store);
    await h.store.delete(WORKLOAD_ENDPOINT, wep?.metadata.name as string, { namespace: "default" });
    const check = await h.run("CHECK", { ...BASE_CONFIG, prevResult: result });
    assert.equal(check.exitCode, 1);
    assert.equal(check.json?.["code"], 102);
    const details = String(check.json?.["details"]);
    assert.match(details, new RegExp(`no host route ${ip.replace(/[./]/g, "\\$&")}`));
    assert.match(details, /workload endpoint "node--1-cni-c1-eth0" .* does not exist/);

    const noPrev = await h.run("CHECK");
    assert.equal(noPrev.json?.["code"], 7);
  });

  it("DEL succeeds when nothing is there: never added, netns gone, repeated", async () => {
    const h = await harness();
    assert.equal((await h.run("DEL")).exitCode, 0);
    assert.equal((await h.run("DEL", BASE_CONFIG, { CNI_NETNS: undefined })).exitCode, 0);
    const add = await h.run("ADD");
    assert.equal(add.exitCode, 0);
    h.netlink.removeNetns(NETNS);
    const del = await h.run("DEL", BASE_CONFIG, { CNI_NETNS: "/var/run/netns/gone" });
    assert.equal(del.exitCode, 0, del.stdout);
    assert.deepEqual(h.netlink.dump().host, {});
    assert.deepEqual(await allocations(h.ipam), []);
    assert.deepEqual(await weps(h.store), []);
    assert.equal((await h.run("DEL")).exitCode, 0);
  });

  it("DEL of an old sandbox keeps the endpoint a new sandbox of the same pod wrote", async () => {
    const h = await harness();
    h.netlink.addNetns("/var/run/netns/w2");
    const args = "K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1";
    assert.equal((await h.run("ADD", BASE_CONFIG, { CNI_ARGS: args })).exitCode, 0);
    const second = await h.run("ADD", BASE_CONFIG, {
      CNI_ARGS: args,
      CNI_CONTAINERID: "c2",
      CNI_NETNS: "/var/run/netns/w2",
    });
    assert.equal(second.exitCode, 0, second.stdout);
    assert.equal((await h.run("DEL", BASE_CONFIG, { CNI_ARGS: args })).exitCode, 0);
    const [wep, ...more] = await weps(h.store);
    assert.equal(more.length, 0);
    assert.equal((wep?.spec as Record<string, unknown>)["containerID"], "c2");
    assert.deepEqual(await allocations(h.ipam), ["net1.c2"]);
    assert.equal(Object.keys(h.netlink.dump().host).length, 1);
  });
});

describe("runCni: ADD failures leave nothing behind", () => {
  const steps = [
    "createVeth",
    "configureHostSysctls",
    "configureHostSide",
    "configureWorkloadSide",
  ] as const;
  for (const step of steps) {
    it(`a failure in ${step} is rolled back`, async () => {
      const h = await harness();
      h.netlink.failNext(step);
      const add = await h.run("ADD");
      assert.equal(add.exitCode, 1);
      assert.equal(add.json?.["code"], 999);
      assert.match(String(add.json?.["details"]), new RegExp(`injected ${step} failure`));
      assert.deepEqual(h.netlink.dump().host, {});
      assert.deepEqual(h.netlink.dump().namespaces[NETNS], {});
      assert.deepEqual(await allocations(h.ipam), []);
      assert.deepEqual(await weps(h.store), []);
      {
        const report = await h.ipam.check();
        assert.ok(reportIsClean(report), JSON.stringify(report));
      }
    });
  }

  it("sets the host side's sysctls before the workload side comes up, the host side up from the start", async () => {
    const h = await harness();
    const add = await h.run("ADD");
    assert.equal(add.exitCode, 0, add.stdout);
    const order = h.netlink.calls.map((c) => c.split(" ")[0]);
    assert.ok(order.indexOf("configureHostSysctls") >= 0, order.join(", "));
    assert.ok(
      order.indexOf("configureHostSysctls") < order.indexOf("configureWorkloadSide"),
      order.join(", "),
    );
    const [host] = Object.values(h.netlink.dump().host);
    assert.equal(host?.up, true);
  });

  it("an endpoint its schema refuses fails with code 7, and what was begun is undone", async () => {
    const h = await harness();
    const add = await h.run("ADD", { ...BASE_CONFIG, labels: { "not a label key!": "x" } });
    assert.equal(add.exitCode, 1);
    assert.equal(add.json?.["code"], 7, add.stdout);
    assert.match(String(add.json?.["details"]), /metadata\.labels/);
    assert.deepEqual(h.netlink.dump().host, {});
    assert.deepEqual(h.netlink.dump().namespaces[NETNS], {});
    assert.deepEqual(await allocations(h.ipam), []);
    assert.deepEqual(await weps(h.store), []);
  });

  it("an exhausted pool fails with code 100 and takes nothing", async () => {
    const h = await harness([pool("tiny", "10.99.0.0/30", { blockSize: 30 })]);
    const ips: string[] = [];
    for (let i = 0; i < 4; i++) {
      h.netlink.addNetns(`/var/run/netns/x${i}`);
      const add = await h.run("ADD", BASE_CONFIG, {
        CNI_CONTAINERID: `c${i}`,
        CNI_NETNS: `/var/run/netns/x${i}`,
      });
      assert.equal(add.exitCode, 0, add.stdout);
      ips.push(((add.json as { ips: { address: string }[] }).ips[0]?.address ?? "") as string);
    }
    assert.equal(new Set(ips).size, 4);
    const fifth = await h.run("ADD", BASE_CONFIG, { CNI_CONTAINERID: "c9" });
    assert.equal(fifth.exitCode, 1);
    assert.equal(fifth.json?.["code"], 100, fifth.stdout);
    assert.equal(h.netlink.dump().namespaces[NETNS]?.["eth0"], undefined);
    assert.equal((await weps(h.store)).length, 4);
  });

  it("ADD twice for one attachment fails (code 101) and leaves the first intact", async () => {
    const h = await harness();
    const first = await h.run("ADD");
    assert.equal(first.exitCode, 0);
    const before = h.netlink.dump();
    const second = await h.run("ADD");
    assert.equal(second.exitCode, 1);
    assert.equal(second.json?.["code"], 101, second.stdout);
    assert.deepEqual(h.netlink.dump(), before);
    assert.deepEqual(await allocations(h.ipam), ["net1.c1"]);
    assert.equal((await weps(h.store)).length, 1);
  });

  it("an unreachable datastore is code 11 (try again later)", async () => {
    const h = await harness();
    h.deps.openDatastore = async () => {
      throw new TwillError("Unavailable", "cannot reach etcd at http://127.0.0.1:1");
    };
    const add = await h.run("ADD");
    assert.equal(add.json?.["code"], 11);
    const del = await h.run("DEL");
    assert.equal(del.json?.["code"], 11, "DEL must be retried, or addresses leak");
  });
});

describe("runCni: the policy wait", () => {
  const waiting = { ...BASE_CONFIG, policy: { waitForProgrammed: true, timeoutSeconds: 0.3 } };

  it("times out with code 11 and rolls back when no agent reports", async () => {
    const h = await harness();
    const add = await h.run("ADD", waiting);
    assert.equal(add.exitCode, 1);
    assert.equal(add.json?.["code"], 11);
    assert.match(String(add.json?.["details"]), /not programmed by the agent within 0.3 s/);
    assert.deepEqual(h.netlink.dump().host, {});
    assert.deepEqual(await allocations(h.ipam), []);
    assert.deepEqual(await weps(h.store), []);
  });

  it("returns once the agent reports the endpoint programmed at its revision", async () => {
    const h = await harness();
    const config = { ...waiting, policy: { waitForProgrammed: true, timeoutSeconds: 5 } };
    const key = endpointStatusKey(h.store.prefix, {
      node: "node-1",
      namespace: "default",
      name: "node--1-cni-c1-eth0",
    });
    // A fake agent: a stale status first (an older revision), then the real one.
    const agent = (async () => {
      const ac = new AbortController();
      for await (const ev of h.store.watch({
        kind: WORKLOAD_ENDPOINT,
        fromRevision: await h.store.backend.revision(),
        signal: ac.signal,
      })) {
        if (ev.type !== "put") continue;
        const rv = ev.resource.metadata.resourceVersion as string;
        const put = (status: string) =>
          h.store.backend.txn({ compare: [], success: [{ type: "put", key, value: status }] });
        await put(
          formatEndpointStatus({ state: "programmed", resourceVersion: String(Number(rv) - 1) }),
        );
        await put(
          formatEndpointStatus({ state: "error", resourceVersion: rv, message: "nft failed" }),
        );
        await put(formatEndpointStatus({ state: "programmed", resourceVersion: rv }));
        ac.abort();
      }
    })();
    const add = await h.run("ADD", config);
    await agent;
    assert.equal(add.exitCode, 0, add.stdout);
    assert.ok(await h.store.backend.get(key));
    assert.equal((await h.run("DEL", config)).exitCode, 0);
    assert.equal(await h.store.backend.get(key), undefined, "DEL removes the status");
  });
});

describe("runCni: GC and STATUS", () => {
  it("GC collects what no valid attachment holds, on this node only", async () => {
    const h = await harness();
    h.netlink.addNetns("/var/run/netns/w2");
    assert.equal((await h.run("ADD")).exitCode, 0);
    assert.equal(
      (await h.run("ADD", BASE_CONFIG, { CNI_CONTAINERID: "c2", CNI_NETNS: "/var/run/netns/w2" }))
        .exitCode,
      0,
    );
    // Another node's allocation of the same network.
    await h.ipam.autoAssign({ host: "node-2", handle: "net1.c3" });
    const gc = await h.run(
      "GC",
      { ...BASE_CONFIG, "cni.dev/valid-attachments": [{ containerID: "c1", ifname: "eth0" }] },
      { CNI_CONTAINERID: undefined, CNI_NETNS: undefined, CNI_IFNAME: undefined },
    );
    assert.equal(gc.exitCode, 0, gc.stdout);
    assert.deepEqual(await allocations(h.ipam), ["net1.c1", "net1.c3"]);
    assert.deepEqual(
      (await weps(h.store)).map((w) => w.metadata.name),
      ["node--1-cni-c1-eth0"],
    );
    assert.equal(Object.keys(h.netlink.dump().host).length, 1);
    const none = await h.run("GC", BASE_CONFIG);
    assert.equal(none.json?.["code"], 7, "no list, no collection");
  });

  it("STATUS: 0 with a pool, 50 without one or without the datastore", async () => {
    const ok = await harness();
    assert.equal((await ok.run("STATUS")).exitCode, 0);
    const dual = { ...BASE_CONFIG, ipam: { type: "twill-ipam", assign_ipv6: true } };
    assert.equal((await ok.run("STATUS", dual)).exitCode, 0);
    const v4only = await harness([pool("p", "10.1.0.0/16")]);
    const noV6 = await v4only.run("STATUS", dual);
    assert.equal(noV6.json?.["code"], 50);
    assert.match(String(noV6.json?.["details"]), /no enabled IPv6 pool/);
    const none = await harness([]);
    assert.equal((await none.run("STATUS")).json?.["code"], 50);
    const down = await harness();
    down.deps.openDatastore = async () => {
      throw new TwillError("Unavailable", "cannot reach etcd");
    };
    assert.equal((await down.run("STATUS")).json?.["code"], 50);
  });
});

describe("runCni: twill-ipam as an IPAM plugin", () => {
  const bridge = {
    cniVersion: "1.0.0",
    name: "br-net",
    type: "bridge",
    nodename: "node-1",
    ipam: { type: "twill-ipam", assign_ipv6: "true" },
  };

  it("ADD answers the abbreviated result; CHECK and DEL follow the handle", async () => {
    const h = await harness();
    const add = await h.run("ADD", bridge, {}, { mode: "ipam" });
    assert.equal(add.exitCode, 0, add.stdout);
    const result = add.json as {
      cniVersion: string;
      ips: { address: string }[];
      interfaces?: unknown;
    };
    assert.equal(result.cniVersion, "1.0.0");
    assert.equal(result.interfaces, undefined);
    assert.equal(result.ips.length, 2);
    assert.deepEqual(h.netlink.calls, [], "the IPAM plugin touches no interface");
    assert.deepEqual(await allocations(h.ipam), ["br-net.c1", "br-net.c1"]);
    const check = await h.run("CHECK", { ...bridge, prevResult: result }, {}, { mode: "ipam" });
    assert.equal(check.exitCode, 0, check.stdout);
    assert.equal((await h.run("DEL", bridge, {}, { mode: "ipam" })).exitCode, 0);
    assert.deepEqual(await allocations(h.ipam), []);
    const recheck = await h.run("CHECK", { ...bridge, prevResult: result }, {}, { mode: "ipam" });
    assert.equal(recheck.json?.["code"], 102);
  });

  it("a config whose type is twill-ipam runs in IPAM mode", async () => {
    const h = await harness();
    const add = await h.run("ADD", { ...bridge, type: "twill-ipam" });
    assert.equal(add.exitCode, 0, add.stdout);
    assert.equal((add.json as { interfaces?: unknown }).interfaces, undefined);
  });
});

describe("runCni: a delegated IPAM plugin", () => {
  const config = { ...BASE_CONFIG, ipam: { type: "host-local", subnet: "10.200.0.0/24" } };

  it("takes its addresses, and runs its DEL when a later step fails", async () => {
    const h = await harness([], {
      delegate: (command) =>
        command === "ADD"
          ? {
              exitCode: 0,
              stdout: JSON.stringify({
                cniVersion: "1.1.0",
                ips: [{ address: "10.200.0.7/24", gateway: "10.200.0.1" }],
                dns: { nameservers: ["10.200.0.1"] },
              }),
            }
          : { exitCode: 0, stdout: "" },
    });
    const add = await h.run("ADD", config);
    assert.equal(add.exitCode, 0, add.stdout);
    const result = add.json as { ips: { address: string }[]; dns: unknown };
    assert.equal(result.ips[0]?.address, "10.200.0.7/32");
    assert.deepEqual(result.dns, { nameservers: ["10.200.0.1"] });
    assert.equal((await h.run("DEL", config)).exitCode, 0);
    h.netlink.failNext("configureWorkloadSide");
    assert.equal((await h.run("ADD", config)).exitCode, 1);
    assert.deepEqual(
      h.delegateCalls.map((c) => c.command),
      ["ADD", "DEL", "ADD", "DEL"],
    );
  });

  it("passes on the delegate's error object", async () => {
    const h = await harness([], {
      delegate: () => ({
        exitCode: 1,
        stdout: JSON.stringify({
          cniVersion: "1.1.0",
          code: 11,
          msg: "no lease",
          details: "pool busy",
        }),
      }),
    });
    const add = await h.run("ADD", config);
    assert.equal(add.json?.["code"], 11);
    assert.match(String(add.json?.["msg"]), /IPAM plugin "host-local": no lease/);
    assert.equal(add.json?.["details"], "pool busy");
  });
});
