import { test } from "node:test";
import assert from "node:assert/strict";
import { applyLabelChanges, parseLabelArgs } from "./label-args.js";
import type { LabelChanges } from "./label-args.js";
import { TwillError } from "../util/errors.js";

const parseCases: { name: string; args: string[]; want?: LabelChanges; error?: RegExp }[] = [
  { name: "key=value sets", args: ["app=web"], want: { set: { app: "web" }, remove: [] } },
  { name: "key= sets an empty value", args: ["flag="], want: { set: { flag: "" }, remove: [] } },
  { name: "value may contain '='", args: ["a=b=c"], want: { set: { a: "b=c" }, remove: [] } },
  { name: "key- removes", args: ["old-"], want: { set: {}, remove: ["old"] } },
  {
    name: "prefixed keys and mixes",
    args: ["projectcalico.org/zone=a", "tier-", "x=1"],
    want: { set: { "projectcalico.org/zone": "a", x: "1" }, remove: ["tier"] },
  },
  {
    name: "the same pair twice is fine",
    args: ["a=1", "a=1"],
    want: { set: { a: "1" }, remove: [] },
  },
  { name: "no arguments", args: [], error: /at least one label update/ },
  { name: "a bare word", args: ["app"], error: /invalid label update "app"/ },
  { name: "a lone dash", args: ["-"], error: /invalid label update "-"/ },
  { name: "an empty key", args: ["=v"], error: /invalid label update "=v"/ },
  {
    name: "two values for one key",
    args: ["a=1", "a=2"],
    error: /"a" is given twice, as "1" and "2"/,
  },
  {
    name: "set and remove one key",
    args: ["a=1", "a-"],
    error: /"a" cannot be both set and removed/,
  },
];

for (const c of parseCases) {
  test(`parseLabelArgs: ${c.name}`, () => {
    if (c.error) {
      assert.throws(
        () => parseLabelArgs(c.args),
        (e: unknown) => e instanceof TwillError && e.code === "Invalid" && c.error!.test(e.message),
      );
    } else {
      assert.deepEqual(parseLabelArgs(c.args), c.want);
    }
  });
}

const applyCases: {
  name: string;
  current: Record<string, string> | undefined;
  args: string[];
  overwrite?: boolean;
  want?: { labels: Record<string, string>; changed: boolean; warnings: string[] };
  error?: RegExp;
}[] = [
  {
    name: "adds to no labels",
    current: undefined,
    args: ["app=web"],
    want: { labels: { app: "web" }, changed: true, warnings: [] },
  },
  {
    name: "same value is no change and needs no --overwrite",
    current: { app: "web" },
    args: ["app=web"],
    want: { labels: { app: "web" }, changed: false, warnings: [] },
  },
  {
    name: "a different value without --overwrite is refused",
    current: { app: "web" },
    args: ["app=db"],
    error: /label "app" already has the value "web"; use --overwrite to change it to "db"/,
  },
  {
    name: "a different value with --overwrite replaces",
    current: { app: "web", zone: "a" },
    args: ["app=db"],
    overwrite: true,
    want: { labels: { app: "db", zone: "a" }, changed: true, warnings: [] },
  },
  {
    name: "removes a label",
    current: { app: "web", zone: "a" },
    args: ["zone-"],
    want: { labels: { app: "web" }, changed: true, warnings: [] },
  },
  {
    name: "removing a missing label warns and changes nothing",
    current: { app: "web" },
    args: ["zone-"],
    want: { labels: { app: "web" }, changed: false, warnings: ['label "zone" not found'] },
  },
];

for (const c of applyCases) {
  test(`applyLabelChanges: ${c.name}`, () => {
    const changes = parseLabelArgs(c.args);
    const run = () => applyLabelChanges(c.current, changes, { overwrite: c.overwrite ?? false });
    if (c.error) {
      assert.throws(
        run,
        (e: unknown) => e instanceof TwillError && e.code === "Invalid" && c.error!.test(e.message),
      );
    } else {
      assert.deepEqual(run(), c.want);
    }
  });
}
