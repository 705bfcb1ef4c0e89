import { test } from "node:test";
import assert from "node:assert/strict";
import { sameContent } from "./same-content.js";

const cases: { name: string; a: unknown; b: unknown; same: boolean }[] = [
  {
    name: "key order does not matter",
    a: { x: 1, y: { p: 1, q: 2 } },
    b: { y: { q: 2, p: 1 }, x: 1 },
    same: true,
  },
  { name: "array order matters", a: [1, 2], b: [2, 1], same: false },
  { name: "undefined fields are absent", a: { x: 1, y: undefined }, b: { x: 1 }, same: true },
  { name: "null is not absent", a: { x: null }, b: {}, same: false },
  { name: "numbers and strings differ", a: { x: 1 }, b: { x: "1" }, same: false },
  { name: "nested change", a: { spec: { order: 1 } }, b: { spec: { order: 2 } }, same: false },
];

for (const c of cases) {
  test(`sameContent: ${c.name}`, () => {
    assert.equal(sameContent(c.a, c.b), c.same);
  });
}
