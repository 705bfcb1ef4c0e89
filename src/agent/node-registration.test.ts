import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { kindById } from "../api/kinds.js";
import type { Resource } from "../api/resource.js";
import { MemoryBackend } from "../datastore/memory-backend.js";
import { ResourceStore } from "../datastore/resource-store.js";
import { isErrorCode } from "../util/errors.js";
import { nodeWithIdentity, registerNode } from "./node-registration.js";

const NODE = kindById("Node");

describe("nodeWithIdentity", () => {
  const existing: Resource = {
    apiVersion: "projectcalico.org/v3",
    kind: "Node",
    metadata: { name: "host-1", labels: { rack: "a" } },
    spec: {
      bgp: { ipv4Address: "10.0.0.1/24", routeReflectorClusterID: "244.0.0.1" },
      addresses: [
        { address: "10.0.0.1/24", type: "CalicoNodeIP" },
        { address: "203.0.113.5", type: "ExternalIP" },
      ],
    },
  };
  const cases: { name: string; id: Parameters<typeof nodeWithIdentity>[1]; spec: unknown }[] = [
    {
      name: "a new address replaces ours and keeps everything else",
      id: { name: "host-1", ipv4: "10.0.0.2/24" },
      spec: {
        bgp: { ipv4Address: "10.0.0.2/24", routeReflectorClusterID: "244.0.0.1" },
        addresses: [
          { address: "10.0.0.2/24", type: "CalicoNodeIP" },
          { address: "203.0.113.5", type: "ExternalIP" },
        ],
      },
    },
    {
      name: "nothing given changes nothing",
      id: { name: "host-1" },
      spec: existing.spec,
    },
    {
      name: "IPv6 and the AS number join",
      id: { name: "host-1", ipv6: "fd00::1/64", asNumber: 64512 },
      spec: {
        bgp: {
          ipv4Address: "10.0.0.1/24",
          routeReflectorClusterID: "244.0.0.1",
          ipv6Address: "fd00::1/64",
          asNumber: 64512,
        },
        addresses: [
          { address: "fd00::1/64", type: "CalicoNodeIP" },
          { address: "203.0.113.5", type: "ExternalIP" },
        ],
      },
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const out = nodeWithIdentity(existing, c.id);
      assert.deepEqual(out.spec, c.spec);
      assert.deepEqual(out.metadata.labels, { rack: "a" });
    });
  }
});

describe("registerNode", () => {
  it("creates the Node, then leaves it alone when nothing changed, then updates it", async () => {
    const store = new ResourceStore(new MemoryBackend());
    const a = await registerNode(store, { name: "host-1", ipv4: "10.0.0.1/24" });
    assert.equal(a.created, true);
    const b = await registerNode(store, { name: "host-1", ipv4: "10.0.0.1/24" });
    assert.deepEqual([b.created, b.changed], [false, false]);
    assert.equal(b.resource.metadata.resourceVersion, a.resource.metadata.resourceVersion);
    const c = await registerNode(store, { name: "host-1", asNumber: 65000 });
    assert.deepEqual([c.created, c.changed], [false, true]);
    const stored = await store.get(NODE, "host-1");
    assert.deepEqual((stored.spec as { bgp: unknown }).bgp, {
      ipv4Address: "10.0.0.1/24",
      asNumber: 65000,
    });
  });

  it("keeps an operator's concurrent label: it compares revisions and retries", async () => {
    const store = new ResourceStore(new MemoryBackend());
    await registerNode(store, { name: "host-1" });
    const get = store.get.bind(store);
    let raced = false;
    store.get = async (kind, name, opts) => {
      const r = await get(kind, name, opts);
      if (!raced) {
        raced = true;
        await store.update({ ...r, metadata: { ...r.metadata, labels: { rack: "b" } } });
      }
      return r;
    };
    await registerNode(store, { name: "host-1", ipv4: "10.0.0.9/24" });
    const n = await get(NODE, "host-1");
    assert.deepEqual(n.metadata.labels, { rack: "b" });
    assert.equal((n.spec as { bgp: { ipv4Address: string } }).bgp.ipv4Address, "10.0.0.9/24");
  });

  it("refuses an identity the Node schema would refuse, naming the field", async () => {
    const store = new ResourceStore(new MemoryBackend());
    await assert.rejects(
      registerNode(store, { name: "host-1", ipv4: "fd00::1/64" }),
      (e: unknown) => isErrorCode(e, "Invalid") && /spec.bgp.ipv4Address/.test(e.message),
    );
  });
});
