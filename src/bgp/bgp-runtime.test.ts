// The agent's BGP runtime over a memory datastore and a fake BIRD: what it
// gathers (resources, this host's IPAM record, local workload addresses),
// when it renders (never before in-sync and the host record), coalescing,
// and retrying after a failed reload. The real BIRD is bird-supervisor.test.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kindById } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { stored, workload } from "../calc/testing/resources.js";
import { MemoryBackend } from "../datastore/memory-backend.js";
import { ipamKeys } from "../ipam/ipam-keys.js";
import type { SyncUpdate } from "../sync/syncer.js";
import { TwillError } from "../util/errors.js";
import type { BgpInputs } from "./bgp-inputs.js";
import { BgpInputsTracker } from "./bgp-inputs-tracker.js";
import { BgpRuntime } from "./bgp-runtime.js";
import type { BirdRuntime } from "./bgp-runtime.js";
import type { BirdLogger, ConfigOutcome } from "./bird-supervisor.js";

const PREFIX = "/twill/v1";
const V3 = "projectcalico.org/v3";

const node = (name: string, ipv4: string): Resource =>
  stored({
    apiVersion: V3,
    kind: "Node",
    metadata: { name },
    spec: { bgp: { ipv4Address: ipv4 } },
  });
const pool = (name: string, cidr: string): Resource =>
  stored({ apiVersion: V3, kind: "IPPool", metadata: { name }, spec: { cidr } });
const peer = (name: string, peerIP: string): Resource =>
  stored({
    apiVersion: V3,
    kind: "BGPPeer",
    metadata: { name },
    spec: { peerIP, asNumber: 65001 },
  });
const put = (resource: Resource): SyncUpdate => ({ type: "put", resource });
const del = (r: Resource): SyncUpdate => ({
  type: "delete",
  kind: kindById(r.kind as "Node" | "WorkloadEndpoint" | "BGPPeer"),
  name: r.metadata.name,
  ...(r.metadata.namespace !== undefined ? { namespace: r.metadata.namespace } : {}),
});
const IN_SYNC: SyncUpdate = { type: "status", status: "in-sync" };

const quiet: BirdLogger = { debug() {}, info() {}, warn() {}, error() {} };

function fakeBird() {
  const configs: string[] = [];
  let failNext = 0;
  const bird: BirdRuntime & { configs: string[]; failTimes(n: number): void; stopped?: boolean } = {
    configs,
    failTimes(n) {
      failNext = n;
    },
    start: async () => "clean",
    setConfig: async (text): Promise<ConfigOutcome> => {
      if (failNext > 0) {
        failNext--;
        throw new TwillError("Invalid", "BIRD rejects the rendered configuration");
      }
      const changed = configs.at(-1) !== text;
      configs.push(text);
      return changed ? "reloaded" : "unchanged";
    },
    stop: async () => {
      bird.stopped = true;
    },
    stats: () => ({ state: "running", up: true, pid: 1, restarts: 0, reloads: 0, adopted: false }),
    query: async () => {
      throw new TwillError("Unavailable", "fake");
    },
  };
  return bird;
}

/** Renders the inputs as JSON: the test reads back exactly what would be rendered. */
const render = (inputs: BgpInputs) => JSON.stringify(inputs);
const last = (bird: { configs: string[] }) =>
  JSON.parse(bird.configs.at(-1) ?? "null") as BgpInputs;

async function until(what: string, pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function setHostBlocks(backend: MemoryBackend, host: string, blocks: string[]) {
  await backend.txn({
    compare: [],
    success: [
      { type: "put", key: ipamKeys(PREFIX).host(host), value: JSON.stringify({ host, blocks }) },
    ],
  });
}

describe("BGP inputs tracker", () => {
  it("keeps the BGP kinds, only this node's workload addresses, and reports changes", () => {
    const t = new BgpInputsTracker("host-1");
    const a = workload({
      namespace: "ns",
      pod: "a",
      node: "host-1",
      ips: ["10.65.0.1/32", "fd00::1/128"],
    });
    const r = workload({ namespace: "ns", pod: "r", node: "host-2", ips: ["10.65.1.1"] });
    assert.equal(
      t.onUpdates([put(node("host-2", "10.0.0.2/24")), put(node("host-1", "10.0.0.1/24"))]),
      true,
    );
    assert.equal(
      t.onUpdates([put(pool("p", "10.65.0.0/16")), put(peer("tor", "10.0.0.254")), put(a), put(r)]),
      true,
    );
    assert.equal(t.inSync, false);
    assert.equal(t.onUpdates([IN_SYNC]), true);
    const i = t.inputs();
    assert.deepEqual(
      i.nodes.map((n) => n.metadata.name),
      ["host-1", "host-2"],
    );
    assert.deepEqual(i.localWorkloadAddresses, ["10.65.0.1", "fd00::1"]);
    assert.equal(i.ipPools[0]?.spec.blockSize, 26, "defaults filled in");
    assert.deepEqual(
      i.bgpPeers.map((p) => p.metadata.name),
      ["tor"],
    );

    // A new resourceVersion of the same content is no change.
    const again = { ...a, metadata: { ...a.metadata, resourceVersion: "99" } };
    assert.equal(
      t.onUpdates([
        put(again),
        put({
          ...node("host-2", "10.0.0.2/24"),
          metadata: { name: "host-2", resourceVersion: "7" },
        }),
      ]),
      false,
    );
    // A deleted workload, a deleted peer.
    assert.equal(t.onUpdates([del(a)]), true);
    assert.deepEqual(t.inputs().localWorkloadAddresses, []);
    assert.equal(t.onUpdates([del(peer("tor", "10.0.0.254"))]), true);
    assert.deepEqual(t.inputs().bgpPeers, []);
    // Kinds BGP does not read.
    assert.equal(
      t.onUpdates([
        put(stored({ apiVersion: V3, kind: "Tier", metadata: { name: "t" }, spec: {} })),
      ]),
      false,
    );
  });

  it("leaves out an invalid resource and says why", () => {
    const t = new BgpInputsTracker("host-1");
    const bad: Resource = {
      apiVersion: V3,
      kind: "BGPPeer",
      metadata: { name: "bad" },
      spec: { peerIP: "nope" },
    };
    t.onUpdates([put(bad)]);
    assert.deepEqual(t.inputs().bgpPeers, []);
    const errors = t.drainErrors();
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.resource, 'BGPPeer "bad"');
    assert.deepEqual(t.drainErrors(), []);
  });

  it("sorts and de-duplicates own blocks", () => {
    const t = new BgpInputsTracker("host-1");
    assert.equal(t.setOwnBlocks(["10.65.1.0/26", "10.65.0.0/26", "10.65.1.0/26"]), true);
    assert.deepEqual(t.inputs().ownBlocks, ["10.65.0.0/26", "10.65.1.0/26"]);
    assert.equal(t.setOwnBlocks(["10.65.0.0/26", "10.65.1.0/26"]), false);
  });
});

describe("BGP runtime (fake BIRD, memory datastore)", () => {
  const setup = async (blocks?: string[]) => {
    const backend = new MemoryBackend();
    if (blocks) await setHostBlocks(backend, "host-1", blocks);
    const bird = fakeBird();
    let errors = 0;
    const rt = new BgpRuntime({
      nodeName: "host-1",
      backend,
      prefix: PREFIX,
      bird,
      render,
      logger: quiet,
      minIntervalMs: 5,
      onError: () => errors++,
      extras: { workloadRouteProtocol: 116, workloadInterfacePrefix: "tw" },
    });
    await rt.start();
    return { backend, bird, rt, errors: () => errors };
  };

  it("renders nothing before the first in-sync, then once with everything", async () => {
    const { bird, rt } = await setup(["10.65.0.0/26"]);
    try {
      rt.onUpdates([put(node("host-1", "10.0.0.1/24")), put(pool("p", "10.65.0.0/16"))]);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(bird.configs.length, 0);
      rt.onUpdates([IN_SYNC]);
      await until("a render", () => bird.configs.length === 1);
      const i = last(bird);
      assert.deepEqual(i.ownBlocks, ["10.65.0.0/26"]);
      assert.equal(i.workloadRouteProtocol, 116);
      assert.deepEqual(
        i.nodes.map((n) => n.metadata.name),
        ["host-1"],
      );
    } finally {
      await rt.stop();
    }
    assert.equal(bird.stopped, true);
  });

  it("follows this host's IPAM record (claims, releases, deletion), not another host's", async () => {
    const { backend, bird, rt } = await setup();
    try {
      rt.onUpdates([put(node("host-1", "10.0.0.1/24")), IN_SYNC]);
      await until("first render (no record yet)", () => bird.configs.length === 1);
      assert.deepEqual(last(bird).ownBlocks, []);
      await setHostBlocks(backend, "host-1", ["10.65.0.0/26"]);
      await until("block claimed", () => last(bird).ownBlocks.length === 1);
      await setHostBlocks(backend, "host-10", ["10.65.9.0/26"]); // a prefix of our key, not ours
      await setHostBlocks(backend, "host-1", ["10.65.0.0/26", "10.65.0.64/26"]);
      await until("second block", () => last(bird).ownBlocks.length === 2);
      assert.deepEqual(last(bird).ownBlocks, ["10.65.0.0/26", "10.65.0.64/26"]);
      await backend.txn({
        compare: [],
        success: [{ type: "delete", key: ipamKeys(PREFIX).host("host-1") }],
      });
      await until("record deleted", () => last(bird).ownBlocks.length === 0);
    } finally {
      await rt.stop();
    }
  });

  it("coalesces a burst of updates", async () => {
    const { bird, rt } = await setup([]);
    try {
      rt.onUpdates([put(node("host-1", "10.0.0.1/24")), IN_SYNC]);
      await until("first render", () => bird.configs.length === 1);
      for (let i = 0; i < 50; i++) {
        rt.onUpdates([
          put(
            workload({ namespace: "ns", pod: `w${i}`, node: "host-1", ips: [`10.65.0.${i + 1}`] }),
          ),
        ]);
      }
      await until("all addresses", () => last(bird).localWorkloadAddresses.length === 50);
      assert.ok(bird.configs.length <= 4, `renders: ${bird.configs.length}`);
    } finally {
      await rt.stop();
    }
  });

  it("retries a configuration BIRD did not take, and applies setting changes", async () => {
    const { bird, rt, errors } = await setup([]);
    try {
      bird.failTimes(1);
      rt.onUpdates([put(node("host-1", "10.0.0.1/24")), IN_SYNC]);
      await until("applied after a retry", () => bird.configs.length === 1, 5000);
      assert.equal(errors(), 1);
      assert.equal(rt.stats().lastOutcome, "reloaded");
      rt.setExtras({ workloadRouteProtocol: 116, workloadInterfacePrefix: "cali" });
      await until("new prefix", () => last(bird).workloadInterfacePrefix === "cali");
    } finally {
      await rt.stop();
    }
  });
});
