import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { endpointStatusKey, formatEndpointStatus } from "../datastore/endpoint-status.js";
import type { EndpointStatus } from "../datastore/endpoint-status.js";
import { MemoryBackend } from "../datastore/memory-backend.js";
import { EndpointStatusWriter } from "./status-writer.js";

const PREFIX = "/twill/v1";
const key = (name: string, node = "host-1") =>
  endpointStatusKey(PREFIX, { node, namespace: "ns", name });
const desired = (entries: [string, EndpointStatus][]) =>
  new Map(entries.map(([name, status]) => [name, { namespace: "ns", name, status }]));
const programmed = (rv: string): EndpointStatus => ({ state: "programmed", resourceVersion: rv });

/** A backend that counts writes. */
function counted() {
  const b = new MemoryBackend();
  const txn = b.txn.bind(b);
  let writes = 0;
  b.txn = async (req) => {
    writes += req.success.filter((o) => o.type !== "get").length;
    return txn(req);
  };
  return { b, writes: () => writes };
}

describe("endpoint status writer", () => {
  it("writes new and changed statuses and deletes those of endpoints gone", async () => {
    const { b, writes } = counted();
    const w = new EndpointStatusWriter(b, { prefix: PREFIX, node: "host-1" });
    w.setDesired(
      desired([
        ["a", programmed("5")],
        ["b", programmed("6")],
      ]),
    );
    assert.deepEqual(await w.flush(), { put: 2, deleted: 0 });
    w.setDesired(desired([["a", programmed("7")]]));
    assert.deepEqual(await w.flush(), { put: 1, deleted: 1 });
    assert.equal((await b.get(key("a")))?.value, formatEndpointStatus(programmed("7")));
    assert.equal(await b.get(key("b")), undefined);
    assert.equal(writes(), 4);
    assert.equal(w.dirty, false);
    assert.deepEqual(await w.flush(), { put: 0, deleted: 0 });
  });

  it("after a restart rewrites nothing that is right, removes leftovers, leaves other nodes alone", async () => {
    const { b, writes } = counted();
    await b.txn({
      compare: [],
      success: [
        { type: "put", key: key("a"), value: formatEndpointStatus(programmed("5")) },
        { type: "put", key: key("old"), value: formatEndpointStatus(programmed("2")) },
        { type: "put", key: key("x", "host-2"), value: formatEndpointStatus(programmed("3")) },
      ],
    });
    const before = writes();
    const w = new EndpointStatusWriter(b, { prefix: PREFIX, node: "host-1" });
    w.setDesired(desired([["a", programmed("5")]]));
    assert.deepEqual(await w.flush(), { put: 0, deleted: 1 });
    assert.equal(writes() - before, 1);
    assert.notEqual(await b.get(key("x", "host-2")), undefined);
  });

  it("a failed flush stays dirty and the next one writes the difference", async () => {
    const b = new MemoryBackend();
    const w = new EndpointStatusWriter(b, { prefix: PREFIX, node: "host-1" });
    const txn = b.txn.bind(b);
    let fail = true;
    b.txn = async (req) => {
      if (fail) throw new Error("etcd unavailable");
      return txn(req);
    };
    w.setDesired(
      desired([["a", { state: "error", resourceVersion: "9", message: "nft refused" }]]),
    );
    await assert.rejects(w.flush(), /unavailable/);
    assert.equal(w.dirty, true);
    fail = false;
    assert.deepEqual(await w.flush(), { put: 1, deleted: 0 });
  });

  it("splits many writes into transactions etcd accepts", async () => {
    const b = new MemoryBackend();
    const w = new EndpointStatusWriter(b, { prefix: PREFIX, node: "host-1" });
    w.setDesired(
      desired(
        Array.from({ length: 250 }, (_, i): [string, EndpointStatus] => [`e${i}`, programmed("1")]),
      ),
    );
    assert.deepEqual(await w.flush(), { put: 250, deleted: 0 });
  });
});
