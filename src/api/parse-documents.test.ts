import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { parseDocuments } from "./parse-documents.js";

describe("parseDocuments", () => {
  test("reads several YAML documents, skipping empty ones", () => {
    const r = parseDocuments("a: 1\n---\n---\nb: 2\n", "f.yaml");
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.documents.map((d) => [d.value, d.source]),
      [
        [{ a: 1 }, "f.yaml#1"],
        [{ b: 2 }, "f.yaml#3"],
      ],
    );
  });
  test("reads JSON objects and arrays", () => {
    const r = parseDocuments('[{"kind":"Tier"},{"kind":"Node"}]', "f.json");
    assert.deepEqual(
      r.documents.map((d) => d.source),
      ["f.json[0]", "f.json[1]"],
    );
  });
  test("unwraps List and XxxList wrappers", () => {
    const text = [
      "apiVersion: projectcalico.org/v3",
      "kind: GlobalNetworkPolicyList",
      "items:",
      "  - {kind: GlobalNetworkPolicy, metadata: {name: a}}",
      "  - {kind: List, items: [{kind: Tier}]}",
    ].join("\n");
    const r = parseDocuments(text, "l.yaml");
    assert.deepEqual(
      r.documents.map((d) => d.source),
      ["l.yaml.items[0]", "l.yaml.items[1].items[0]"],
    );
  });
  test("reports syntax errors with the document", () => {
    const r = parseDocuments("a: 1\n---\nb: [1, 2\n", "bad.yaml");
    assert.equal(r.documents.length, 1);
    assert.equal(r.errors.length > 0, true);
    assert.equal(r.errors[0]?.source, "bad.yaml#2");
  });
  test("rejects duplicate keys", () => {
    const r = parseDocuments("a: 1\na: 2\n", "dup.yaml");
    assert.equal(r.errors.length > 0, true);
  });
});
