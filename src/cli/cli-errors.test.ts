import { test } from "node:test";
import assert from "node:assert/strict";
import { EXIT, UsageError, exitCodeFor, formatError, rewordStoreError } from "./cli-errors.js";
import { lookupKind } from "../api/kinds.js";
import { TwillError } from "../util/errors.js";

const gnp = lookupKind("gnp")!;
const netpol = lookupKind("networkpolicy")!;

const cases: { name: string; err: unknown; code: number; text: RegExp }[] = [
  {
    name: "not found is exit 3, worded like kubectl",
    err: rewordStoreError(new TwillError("NotFound", "key /x missing"), gnp, "x", undefined),
    code: EXIT.notFound,
    text: /^Error from server \(NotFound\): globalnetworkpolicy "x" not found\n$/,
  },
  {
    name: "namespaced not found names the namespace",
    err: rewordStoreError(new TwillError("NotFound", "gone"), netpol, "p", "dev"),
    code: EXIT.notFound,
    text: /^Error from server \(NotFound\): networkpolicy "p" in namespace "dev" not found\n$/,
  },
  {
    name: "already exists is exit 4",
    err: rewordStoreError(new TwillError("AlreadyExists", "exists"), gnp, "x", undefined),
    code: EXIT.alreadyExists,
    text: /^Error from server \(AlreadyExists\): globalnetworkpolicy "x" already exists\n$/,
  },
  {
    name: "conflict is exit 5",
    err: rewordStoreError(new TwillError("Conflict", "revision 3 != 4"), gnp, "x", undefined),
    code: EXIT.conflict,
    text: /^Error from server \(Conflict\): Operation cannot be fulfilled on globalnetworkpolicy "x": the object has been modified/,
  },
  {
    name: "unavailable is exit 6 and keeps the cause",
    err: new TwillError("Unavailable", "etcd at http://127.0.0.1:1 did not answer within 3s", {
      cause: new Error("connect ECONNREFUSED 127.0.0.1:1"),
    }),
    code: EXIT.unavailable,
    text: /^error: cannot reach the datastore: etcd at http:\/\/127\.0\.0\.1:1 did not answer within 3s \(connect ECONNREFUSED 127\.0\.0\.1:1\)\n$/,
  },
  {
    name: "usage errors are exit 2 and point at --help",
    err: new UsageError('unknown resource type "foo"', { command: "get" }),
    code: EXIT.usage,
    text: /^error: unknown resource type "foo"\nSee 'twill get --help' for usage\.\n$/,
  },
  {
    name: "invalid input is exit 1",
    err: new TwillError("Invalid", "bad"),
    code: EXIT.failed,
    text: /^error: bad\n$/,
  },
  {
    name: "plain errors are exit 1",
    err: new Error("boom"),
    code: EXIT.failed,
    text: /^error: boom\n$/,
  },
  { name: "non-errors are exit 1", err: "weird", code: EXIT.failed, text: /^error: weird\n$/ },
];

for (const c of cases) {
  test(`cli errors: ${c.name}`, () => {
    assert.equal(exitCodeFor(c.err), c.code);
    assert.match(formatError(c.err), c.text);
  });
}

test("rewordStoreError leaves other errors alone", () => {
  const e = new TwillError("Unavailable", "down");
  assert.equal(rewordStoreError(e, gnp, "x", undefined), e);
  const plain = new Error("x");
  assert.equal(rewordStoreError(plain, gnp, "x", undefined), plain);
});
