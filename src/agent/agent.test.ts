// The agent over a memory datastore and the fake kernel drivers: its life
// cycle, what it writes and when, its HTTP endpoints, status keys, and how it
// ends. The same agent against real namespaces and etcd is agent-netns.test.ts.
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { afterEach, describe, it } from "node:test";
import { kindById } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { globalPolicy, namespaceProfile, workload } from "../calc/testing/resources.js";
import { endpointStatusKey, parseEndpointStatus } from "../datastore/endpoint-status.js";
import { MemoryBackend } from "../datastore/memory-backend.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { fakeLinkSource } from "../dataplane/link-monitor.js";
import { fakeNftKernel } from "../dataplane/nft-driver.js";
import { fakeRouteTable } from "../dataplane/route-driver.js";
import { fakeSysctls } from "../dataplane/sysctl-driver.js";
import { TwillError, isErrorCode } from "../util/errors.js";
import type { BirdRuntime } from "../bgp/bgp-runtime.js";
import { ipamKeys } from "../ipam/ipam-keys.js";
import { runAgent } from "./agent.js";
import type { ConfigName } from "./config.js";

const NODE = kindById("Node");

function ifaceOf(r: Resource): string {
  return (r.spec as { interfaceName: string }).interfaceName;
}

/** A BIRD supervisor that keeps what it is given (BGP runs against the real BIRD in src/bgp). */
function fakeBird() {
  const configs: string[] = [];
  const stops: { stopBird?: boolean }[] = [];
  const bird: BirdRuntime & { configs: string[]; stops: typeof stops; dir?: string } = {
    configs,
    stops,
    start: async () => "clean",
    setConfig: async (text) => {
      const changed = configs.at(-1) !== text;
      configs.push(text);
      return changed ? "reloaded" : "unchanged";
    },
    stop: async (o = {}) => {
      stops.push(o);
    },
    stats: () => ({ state: "running", up: true, pid: 42, restarts: 0, reloads: 0, adopted: false }),
    query: async () => {
      throw new TwillError("Unavailable", "fake BIRD has no socket");
    },
  };
  return bird;
}

/** Every harness's stop, aborted after each test so a failed assertion does not leave an agent running. */
const running = new Set<AbortController>();

/** Everything an agent run needs, with the fakes exposed. */
function harness(flags: Partial<Record<ConfigName, string>> = {}) {
  const store = new ResourceStore(new MemoryBackend());
  const nft = fakeNftKernel();
  const routes = fakeRouteTable();
  const sysctls = fakeSysctls();
  const links = fakeLinkSource({ lo: true });
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n"))
        if (l.trim() !== "") lines.push(JSON.parse(l));
      cb();
    },
  });
  const stop = new AbortController();
  running.add(stop);
  const bird = fakeBird();
  let started!: (info: { healthPort: number }) => void;
  const startedP = new Promise<{ healthPort: number }>((r) => (started = r));
  const run = () =>
    runAgent(
      {
        flags: {
          nodeName: "host-1",
          healthPort: "0",
          minApplyInterval: "5ms",
          bgpEnabled: "false",
          ...flags,
        },
        signal: stop.signal,
        onStarted: (info) => started(info),
      },
      {
        env: {},
        hostname: () => "ignored",
        readFile: async (p) => {
          throw new Error(`no file ${p}`);
        },
        // The agent closes the store's backend when it stops; the test keeps reading it.
        openStore: async () => new ResourceStore(store.backend, { prefix: store.prefix }),
        kernel: { nft, routes, sysctls, links },
        logDestination: destination as never,
        bird: (paths) => {
          bird.dir = paths.dir;
          return bird;
        },
      },
    );
  /** Bring a workload's veth into being (the CNI plugin's job). */
  const link = (name: string) => {
    routes.setLink(name, true);
    sysctls.addInterface(name);
    links.set(name, true);
  };
  const get = async (path: string, port: number) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  };
  const until = async (what: string, pred: () => boolean | Promise<boolean>, ms = 3000) => {
    const end = Date.now() + ms;
    while (!(await pred())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  return {
    store,
    nft,
    routes,
    sysctls,
    links,
    lines,
    stop,
    run,
    started: startedP,
    bird,
    link,
    get,
    until,
  };
}

const A = workload({
  namespace: "ns",
  pod: "a",
  node: "host-1",
  ips: ["10.65.0.1"],
  labels: { app: "a" },
});
const REMOTE = workload({ namespace: "ns", pod: "r", node: "host-2", ips: ["10.65.1.1"] });

describe("twill agent (fake kernel, memory datastore)", () => {
  afterEach(() => {
    for (const s of running) s.abort();
    running.clear();
  });

  it("registers its Node, programs nothing before the snapshot, then everything once in sync", async () => {
    const h = harness({ nodeIPv4: "192.0.2.1/24", asNumber: "64512" });
    await h.store.create(namespaceProfile("ns"));
    const a = await h.store.create(A);
    await h.store.create(REMOTE);
    h.link(ifaceOf(A));
    const done = h.run();
    const { healthPort } = await h.started;
    // The node resource carries the flags.
    const node = await h.store.get(NODE, "host-1");
    assert.deepEqual((node.spec as { bgp: unknown }).bgp, {
      ipv4Address: "192.0.2.1/24",
      asNumber: 64512,
    });

    await h.until("ready", async () => (await h.get("/readyz", healthPort)).status === 200);
    // The table created: sets and leaf chains, then every hook (nft-driver.ts).
    assert.equal(h.nft.scripts.length, 2, "two transactions: the full table");
    assert.deepEqual(h.routes.dump(), [`10.65.0.1/32 dev ${ifaceOf(A)} proto 116`]);
    assert.equal(h.sysctls.values.get(`net/ipv4/conf/${ifaceOf(A)}/proxy_arp`), "1");

    // The CNI plugin's wait: programmed at the endpoint's revision.
    const key = endpointStatusKey(h.store.prefix, {
      node: "host-1",
      namespace: "ns",
      name: a.metadata.name,
    });
    await h.until("status key", async () => (await h.store.backend.get(key)) !== undefined);
    const status = parseEndpointStatus((await h.store.backend.get(key))!.value);
    assert.deepEqual(status, { state: "programmed", resourceVersion: a.metadata.resourceVersion });

    const live = await h.get("/livez", healthPort);
    assert.equal(live.status, 200);
    const metrics = (await h.get("/metrics", healthPort)).body;
    assert.match(metrics, /twill_sync_state\{state="in-sync"\} 1/);
    assert.match(metrics, /twill_dataplane_applies_total\{result="ok"\} [1-9]/);
    assert.match(metrics, /twill_local_endpoints 1/);
    assert.match(metrics, /twill_dataplane_apply_duration_seconds_bucket/);

    // A label change reaches the kernel as a delta, and the status follows the new revision.
    const relabelled = await h.store.update({
      ...a,
      metadata: { ...a.metadata, labels: { app: "z" } },
    });
    await h.store.create(
      globalPolicy("only-z", {
        selector: "app == 'z'",
        types: ["Ingress"],
        ingress: [{ action: "Allow" }],
      }),
    );
    await h.until("new status", async () => {
      const e = await h.store.backend.get(key);
      return (
        e !== undefined &&
        BigInt(parseEndpointStatus(e.value).resourceVersion) >=
          BigInt(relabelled.metadata.resourceVersion!)
      );
    });
    assert.ok(h.nft.scripts.length >= 3);
    assert.ok(h.nft.scripts.slice(2).every((s) => !s.includes("delete table")));

    // The endpoint goes: its route and its status key go too.
    await h.store.delete(kindById("WorkloadEndpoint"), a.metadata.name, { namespace: "ns" });
    await h.until("status key removed", async () => (await h.store.backend.get(key)) === undefined);
    await h.until("route removed", () => h.routes.dump().length === 0);

    h.stop.abort();
    assert.equal(await done, 0);
    const messages = h.lines.map((l) => l["msg"]);
    assert.ok(messages.includes("dataplane programmed (first apply)"));
    assert.ok(messages.includes("agent stopped; kernel state left in place"));
    // Per component, structured.
    assert.ok(
      h.lines.some((l) => l["component"] === "dataplane" && typeof l["nftBytes"] === "number"),
    );
  });

  it("a workload whose veth appears after its endpoint becomes programmed when it does", async () => {
    const h = harness();
    await h.store.create(namespaceProfile("ns"));
    const a = await h.store.create(A);
    const done = h.run();
    const { healthPort } = await h.started;
    await h.until("ready", async () => (await h.get("/readyz", healthPort)).status === 200);
    assert.deepEqual(h.routes.dump(), []);
    const key = endpointStatusKey(h.store.prefix, {
      node: "host-1",
      namespace: "ns",
      name: a.metadata.name,
    });
    assert.equal(
      await h.store.backend.get(key),
      undefined,
      "no status while the interface is missing",
    );
    h.link(ifaceOf(A));
    await h.until("route", () => h.routes.dump().length === 1);
    await h.until("status", async () => (await h.store.backend.get(key)) !== undefined);
    h.stop.abort();
    assert.equal(await done, 0);
  });

  it("is not ready before the first apply, and never writes to the kernel before the snapshot", async () => {
    const h = harness();
    // A datastore that does not finish its first list (until it is closed).
    h.store.backend.list = () =>
      new Promise((_, reject) =>
        h.stop.signal.addEventListener("abort", () =>
          reject(new TwillError("Unavailable", "closed")),
        ),
      );
    h.store.backend.get = async () => undefined;
    const done = h.run();
    const { healthPort } = await h.started;
    h.link("twx");
    await new Promise((r) => setTimeout(r, 100));
    const ready = await h.get("/readyz", healthPort);
    assert.equal(ready.status, 503);
    assert.match(ready.body, /"firstApplyDone":false/);
    assert.equal((await h.get("/livez", healthPort)).status, 200);
    assert.equal(h.nft.scripts.length, 0);
    assert.deepEqual(h.sysctls.writes, []);
    h.stop.abort();
    assert.equal(await done, 0);
  });

  it("exits non-zero after maxApplyFailures failed policy applies in a row, leaving the kernel as it was", async () => {
    const h = harness({ maxApplyFailures: "3" });
    await h.store.create(namespaceProfile("ns"));
    await h.store.create(A);
    h.nft.failNext(100, "nft: Could not process rule: Operation not supported");
    const code = await h.run();
    assert.equal(code, 1);
    assert.equal(h.nft.table, undefined);
    const fatal = h.lines.find((l) => l["level"] === "fatal");
    assert.match(String(fatal?.["reason"]), /3 dataplane applies failed in a row/);
    assert.equal(h.lines.filter((l) => l["msg"] === "dataplane apply failed").length, 3);
  });

  it("takes live settings from FelixConfiguration and logs the change", async () => {
    const h = harness();
    await h.store.create({
      apiVersion: "projectcalico.org/v3",
      kind: "FelixConfiguration",
      metadata: { name: "default" },
      spec: { defaultEndpointToHostAction: "Drop" },
    });
    await h.store.create(namespaceProfile("ns"));
    await h.store.create(A);
    h.link(ifaceOf(A));
    const done = h.run();
    const { healthPort } = await h.started;
    await h.until("ready", async () => (await h.get("/readyz", healthPort)).status === 200);
    const n = h.nft.scripts.length;
    await h.store.create({
      apiVersion: "projectcalico.org/v3",
      kind: "FelixConfiguration",
      metadata: { name: "node.host-1" },
      spec: { defaultEndpointToHostAction: "Accept", healthHost: "localhost" },
    });
    await h.until("delta", () => h.nft.scripts.length > n);
    assert.match(h.nft.scripts.at(-1) ?? "", /accept comment "defaultEndpointToHostAction Accept"/);
    assert.ok(
      h.lines.some(
        (l) =>
          l["msg"] ===
          "setting changed in FelixConfiguration; takes effect when the agent restarts",
      ),
    );
    h.stop.abort();
    assert.equal(await done, 0);
  });

  it("with BGP on: renders BIRD's configuration once in sync, from resources and its IPAM record", async () => {
    const h = harness({ bgpEnabled: "true", nodeIPv4: "192.0.2.1/24", birdDir: "/tmp/twt-none" });
    await h.store.create({
      apiVersion: "projectcalico.org/v3",
      kind: "Node",
      metadata: { name: "host-2" },
      spec: { bgp: { ipv4Address: "192.0.2.2/24" } },
    });
    await h.store.create({
      apiVersion: "projectcalico.org/v3",
      kind: "IPPool",
      metadata: { name: "pool" },
      spec: { cidr: "10.65.0.0/16", blockSize: 26 },
    });
    const hostKey = ipamKeys(h.store.prefix).host("host-1");
    await h.store.backend.txn({
      compare: [],
      success: [
        {
          type: "put",
          key: hostKey,
          value: JSON.stringify({ host: "host-1", blocks: ["10.65.0.0/26"] }),
        },
      ],
    });
    const done = h.run();
    const { healthPort } = await h.started;
    await h.until("a BIRD configuration", () => h.bird.configs.length > 0);
    assert.equal(h.bird.dir, "/tmp/twt-none");
    const text = h.bird.configs.at(-1) ?? "";
    assert.match(text, /router id 192\.0\.2\.1;/);
    assert.match(text, /route 10\.65\.0\.0\/26 blackhole;/);
    assert.match(text, /protocol bgp mesh_192_0_2_2 /);

    // A second block claimed: rendered again.
    await h.store.backend.txn({
      compare: [],
      success: [
        {
          type: "put",
          key: hostKey,
          value: JSON.stringify({ host: "host-1", blocks: ["10.65.0.0/26", "10.65.0.64/26"] }),
        },
      ],
    });
    await h.until("the new block", () =>
      (h.bird.configs.at(-1) ?? "").includes("route 10.65.0.64/26 blackhole;"),
    );
    const metrics = (await h.get("/metrics", healthPort)).body;
    assert.match(metrics, /twill_bird_up 1/);
    assert.match(metrics, /twill_bgp_sessions\{state="established"\} 0/);
    h.stop.abort();
    assert.equal(await done, 0);
    assert.deepEqual(h.bird.stops, [{ stopBird: false }], "BIRD is left running");
  });

  it("with BGP off: no BIRD, no BIRD metrics", async () => {
    const h = harness();
    const done = h.run();
    const { healthPort } = await h.started;
    await h.until("ready", async () => (await h.get("/readyz", healthPort)).status === 200);
    assert.doesNotMatch((await h.get("/metrics", healthPort)).body, /twill_bird_up/);
    h.stop.abort();
    assert.equal(await done, 0);
    assert.equal(h.bird.dir, undefined);
  });

  it("refuses a bad flag before doing anything, naming it", async () => {
    const h = harness({ healthPort: "ninety" });
    await assert.rejects(
      h.run(),
      (e: unknown) =>
        isErrorCode(e, "Invalid") && /healthPort from flag --health-port/.test(e.message),
    );
  });
});
