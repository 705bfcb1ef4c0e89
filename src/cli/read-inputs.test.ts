import { test } from "node:test";
import assert from "node:assert/strict";
import { readInputs } from "./read-inputs.js";
import type { InputFiles } from "./read-inputs.js";

/** An in-memory tree: keys ending in "/" are directories. */
function memoryFiles(tree: Record<string, string>, stdin = ""): InputFiles {
  return {
    readFile: (p) => {
      const text = tree[p];
      if (text === undefined)
        return Promise.reject(Object.assign(new Error(`ENOENT ${p}`), { code: "ENOENT" }));
      return Promise.resolve(text);
    },
    readDir: (p) => {
      const dir = p.endsWith("/") ? p : `${p}/`;
      if (!(dir in tree)) {
        if (p in tree) return Promise.resolve(undefined);
        return Promise.reject(Object.assign(new Error(`ENOENT ${p}`), { code: "ENOENT" }));
      }
      const names = Object.keys(tree)
        .filter((k) => k.startsWith(dir) && k !== dir && !k.slice(dir.length).includes("/"))
        .map((k) => k.slice(dir.length));
      return Promise.resolve(names);
    },
    readStdin: () => Promise.resolve(stdin),
  };
}

const tree = {
  "a.yaml": "kind: A\nmetadata: {name: a}\n---\nkind: B\nmetadata: {name: b}\n",
  "d/": "",
  "d/2.json": '{"kind": "C", "metadata": {"name": "c"}}',
  "d/1.yml": "kind: D\nmetadata: {name: d}\n",
  "d/README.md": "not a manifest",
  "empty/": "",
  "bad.yaml": "kind: [unclosed\n",
};

const cases: {
  name: string;
  paths: string[];
  stdin?: string;
  sources: string[];
  errors: RegExp[];
}[] = [
  {
    name: "a file with two documents",
    paths: ["a.yaml"],
    sources: ["a.yaml#1", "a.yaml#2"],
    errors: [],
  },
  {
    name: "a directory reads manifests only, sorted by name",
    paths: ["d"],
    sources: ["d/1.yml", "d/2.json"],
    errors: [],
  },
  {
    name: "stdin",
    paths: ["-"],
    stdin: "kind: E\nmetadata: {name: e}\n",
    sources: ["<stdin>"],
    errors: [],
  },
  {
    name: "several paths keep their order",
    paths: ["d", "a.yaml"],
    sources: ["d/1.yml", "d/2.json", "a.yaml#1", "a.yaml#2"],
    errors: [],
  },
  {
    name: "a missing file is an error naming it",
    paths: ["nope.yaml"],
    sources: [],
    errors: [/^nope.yaml: .*no such file/],
  },
  {
    name: "an empty directory is an error",
    paths: ["empty"],
    sources: [],
    errors: [/^empty: directory holds no/],
  },
  {
    name: "a syntax error names the file",
    paths: ["bad.yaml", "a.yaml"],
    sources: ["a.yaml#1", "a.yaml#2"],
    errors: [/^bad.yaml: /],
  },
  { name: "stdin only once", paths: ["-", "-"], stdin: "", sources: [], errors: [/only once/] },
];

for (const c of cases) {
  test(`readInputs: ${c.name}`, async () => {
    const r = await readInputs(c.paths, memoryFiles(tree, c.stdin));
    assert.deepEqual(
      r.documents.map((d) => d.source),
      c.sources,
    );
    const errors = r.errors.map((e) => `${e.source}: ${e.message}`);
    assert.equal(errors.length, c.errors.length, errors.join("\n"));
    c.errors.forEach((re, i) => assert.match(errors[i] ?? "", re));
  });
}
