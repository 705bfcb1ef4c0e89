// The layered form of an item's labels (shared inherited layer, own layer on
// top) must read exactly like effectiveLabels' flat object, for every key a
// selector might ask about, and list the same labels.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { parseSelector } from "../selector/index.js";
import { prng } from "../util/prng.js";
import type { Labels } from "./model.js";
import {
  NAMESPACE_LABEL,
  ORCHESTRATOR_LABEL,
  SERVICE_ACCOUNT_LABEL,
  effectiveLabels,
  inheritedLabels,
  layeredLabels,
  namespaceLabels,
  relayeredLabels,
} from "./model.js";

const KEYS = [
  "app",
  "env",
  "pcns.env",
  NAMESPACE_LABEL,
  ORCHESTRATOR_LABEL,
  SERVICE_ACCOUNT_LABEL,
  "pcns.projectcalico.org/name",
  "constructor",
  "__proto__",
  "toString",
];

function randomLabels(rand: () => number): Labels | undefined {
  if (rand() < 0.1) return undefined;
  const entries: [string, string][] = [];
  for (const key of KEYS) if (rand() < 0.3) entries.push([key, `v${Math.floor(rand() * 3)}`]);
  return Object.fromEntries(entries); // own properties, even for "__proto__"
}

/** Every label as for...in lists it, with its value. */
function listed(labels: Labels): [string, string][] {
  const out: [string, string][] = [];
  for (const key in labels) out.push([key, labels[key]!]);
  return out.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

describe("layeredLabels", () => {
  it("reads and lists like effectiveLabels, and after relayering too", () => {
    const rand = prng(0x1abe1);
    for (let n = 0; n < 2000; n++) {
      const own = randomLabels(rand);
      const profiles = Array.from({ length: Math.floor(rand() * 3) }, () => randomLabels(rand));
      const namespace = rand() < 0.7 ? `ns${Math.floor(rand() * 2)}` : undefined;
      const nsLabels =
        namespace === undefined ? undefined : namespaceLabels(namespace, randomLabels(rand));
      const orchestrator = rand() < 0.7 ? "k8s" : undefined;
      const serviceAccount = rand() < 0.3 ? "sa" : undefined;
      const shared = { inherited: profiles, namespace, namespaceLabels: nsLabels, orchestrator };
      const automatic = { namespace, orchestrator, serviceAccount };
      const flat = effectiveLabels({ own, ...shared, serviceAccount });
      const layered = layeredLabels(inheritedLabels(shared), own, automatic);
      const context = JSON.stringify({ own, profiles, namespace, nsLabels, serviceAccount });
      assert.deepEqual(listed(layered), listed(flat), context);
      for (const key of KEYS) {
        const want = Object.hasOwn(flat, key) ? flat[key] : undefined;
        const got = layered[key];
        assert.equal(typeof got === "string" ? got : undefined, want, `${context}: ${key}`);
        const has = parseSelector(`has(${key})`);
        assert.equal(has.matches(layered), has.matches(flat), `${context}: has(${key})`);
      }

      // The profiles' labels change: the same own layer over the new inherited one.
      const profiles2 = profiles.map(() => randomLabels(rand));
      const shared2 = { ...shared, inherited: profiles2 };
      const flat2 = effectiveLabels({ own, ...shared2, serviceAccount });
      const relayered = relayeredLabels(layered, inheritedLabels(shared2));
      assert.deepEqual(listed(relayered), listed(flat2), `${context} relayered`);
    }
  });
});
