import { test } from "node:test";
import assert from "node:assert/strict";
import { mergePatch } from "./merge-patch.js";

// The examples of RFC 7386, appendix A, plus nesting into a resource.
const cases: { name: string; target: unknown; patch: unknown; want: unknown }[] = [
  { name: "replaces a value", target: { a: "b" }, patch: { a: "c" }, want: { a: "c" } },
  { name: "adds a key", target: { a: "b" }, patch: { b: "c" }, want: { a: "b", b: "c" } },
  { name: "null removes a key", target: { a: "b" }, patch: { a: null }, want: {} },
  {
    name: "null removes one of several",
    target: { a: "b", b: "c" },
    patch: { a: null },
    want: { b: "c" },
  },
  { name: "arrays are replaced", target: { a: ["b"] }, patch: { a: "c" }, want: { a: "c" } },
  { name: "a value becomes an array", target: { a: "c" }, patch: { a: ["b"] }, want: { a: ["b"] } },
  {
    name: "nested objects merge and nested null removes",
    target: { a: { b: "c" } },
    patch: { a: { b: "d", c: null } },
    want: { a: { b: "d" } },
  },
  {
    name: "arrays of objects are replaced whole",
    target: { a: [{ b: "c" }] },
    patch: { a: [1] },
    want: { a: [1] },
  },
  {
    name: "array target replaced by array patch",
    target: ["a", "b"],
    patch: ["c", "d"],
    want: ["c", "d"],
  },
  { name: "object target replaced by array patch", target: { a: "b" }, patch: ["c"], want: ["c"] },
  { name: "null patch at the top replaces", target: { a: "foo" }, patch: null, want: null },
  { name: "string patch at the top replaces", target: { a: "foo" }, patch: "bar", want: "bar" },
  {
    name: "null inside a new key is dropped",
    target: { e: null },
    patch: { a: 1 },
    want: { e: null, a: 1 },
  },
  {
    name: "array target with object patch",
    target: [1, 2],
    patch: { a: "b", c: null },
    want: { a: "b" },
  },
  {
    name: "nested objects are created and nulls inside them dropped",
    target: {},
    patch: { a: { bb: { ccc: null } } },
    want: { a: { bb: {} } },
  },
  {
    name: "patches a resource's spec and labels",
    target: {
      metadata: { name: "x", labels: { a: "1", b: "2" } },
      spec: { order: 10, selector: "all()" },
    },
    patch: { metadata: { labels: { b: null, c: "3" } }, spec: { order: 20 } },
    want: {
      metadata: { name: "x", labels: { a: "1", c: "3" } },
      spec: { order: 20, selector: "all()" },
    },
  },
];

for (const c of cases) {
  test(`mergePatch: ${c.name}`, () => {
    const before = structuredClone(c.target);
    assert.deepEqual(mergePatch(c.target, c.patch), c.want);
    assert.deepEqual(c.target, before, "target must not be modified");
  });
}
