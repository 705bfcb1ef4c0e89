import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isErrorCode } from "../util/errors.js";
import {
  endpointStatusKey,
  endpointStatusPrefix,
  formatEndpointStatus,
  isProgrammedAt,
  parseEndpointStatus,
  parseEndpointStatusKey,
} from "./endpoint-status.js";

describe("endpoint status keys", () => {
  it("lays keys out per node, namespace and endpoint, and reads them back", () => {
    const ref = { node: "node-1", namespace: "shop", name: "node--1-k8s-web-eth0" };
    const key = endpointStatusKey("/twill/v1", ref);
    assert.equal(key, "/twill/v1/status/endpoints/node-1/shop/node--1-k8s-web-eth0");
    assert.ok(key.startsWith(endpointStatusPrefix("/twill/v1/", "node-1")));
    assert.deepEqual(parseEndpointStatusKey("/twill/v1", key), ref);
    assert.equal(parseEndpointStatusKey("/twill/v1", "/twill/v1/status/endpoints/n/x"), undefined);
    assert.equal(parseEndpointStatusKey("/twill/v1", "/other/key"), undefined);
  });

  it("refuses segments that would add a level", () => {
    for (const ref of [
      { node: "a/b", namespace: "ns", name: "n" },
      { node: "a", namespace: "", name: "n" },
      { node: "a", namespace: "ns", name: "x/y" },
    ]) {
      assert.throws(
        () => endpointStatusKey("/p", ref),
        (err: unknown) => isErrorCode(err, "Invalid"),
      );
    }
  });
});

describe("endpoint status values", () => {
  it("round-trips a status", () => {
    for (const status of [
      { state: "programmed" as const, resourceVersion: "42" },
      { state: "error" as const, resourceVersion: "7", message: "nft: syntax error" },
    ]) {
      assert.deepEqual(parseEndpointStatus(formatEndpointStatus(status)), status);
    }
  });

  it("rejects malformed values, naming the key", () => {
    for (const value of [
      "not json",
      "[]",
      '{"state":"done","resourceVersion":"1"}',
      '{"state":"programmed","resourceVersion":1}',
      '{"state":"programmed","resourceVersion":"x1"}',
      '{"state":"error","resourceVersion":"1","message":3}',
    ]) {
      assert.throws(
        () => parseEndpointStatus(value, "/k"),
        (err: unknown) => isErrorCode(err, "Invalid") && err.message.startsWith("/k:"),
        value,
      );
    }
  });

  it("counts as programmed only at the endpoint's revision or later, as numbers", () => {
    const cases: [string, string, string, boolean][] = [
      ["programmed", "100", "100", true],
      ["programmed", "101", "100", true],
      ["programmed", "99", "100", false],
      ["programmed", "1000", "999", true],
      ["error", "100", "100", false],
    ];
    for (const [state, rv, wanted, expected] of cases) {
      const status = parseEndpointStatus(JSON.stringify({ state, resourceVersion: rv }));
      assert.equal(isProgrammedAt(status, wanted), expected, `${state} ${rv} vs ${wanted}`);
    }
  });
});
