// Cross-check: the incremental calc graph, compiled and interpreted by the
// dataplane model, against explain.ts, the brute-force reference. Seeded
// random small clusters (testing/random-cluster.ts) and random flows; for
// every end that is an endpoint local to the graph's host, the model's
// verdict must equal explain's, per direction. Then random sequences of
// edits: after each, fed incrementally, the graph's output must equal a
// fresh graph's for the same state, and the verdicts must still agree.
//
// A failure names the seed, the flow and explain's trace; rerun one seed by
// setting SEEDS below to [that seed].
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Resource } from "../api/resource.js";
import { CalcGraph } from "./calc-graph.js";
import type { CalcInput } from "./calc-graph.js";
import { explain } from "./explain.js";
import type { Explanation, Flow } from "./explain.js";
import { DataplaneModel } from "./testing/dataplane-model.js";
import { modelFlow } from "./testing/flows.js";
import type { FlowSpec } from "./testing/flows.js";
import { Random, randomCluster, randomEdit, randomFlows } from "./testing/random-cluster.js";
import { transition } from "./testing/resources.js";

const CLUSTERS = 120;
const FLOWS_PER_CLUSTER = 25;
const SEQUENCES = 30;
const STEPS = 8;
const FLOWS_PER_STEP = 8;
const GRAPH_HOSTS = ["node-1", "node-2"];

const IN_SYNC: CalcInput = { type: "status", status: "in-sync" };

function syncedModel(resources: readonly Resource[], hostname: string): DataplaneModel {
  const graph = new CalcGraph({ hostname });
  graph.onUpdates([...resources.map((resource) => ({ type: "put" as const, resource })), IN_SYNC]);
  assert.deepEqual(graph.drainErrors(), []);
  const model = new DataplaneModel();
  model.apply(graph.flush());
  return model;
}

/** Compares the model with explain's answer for each local end; returns the problems found. */
function compare(
  model: DataplaneModel,
  resources: readonly Resource[],
  hostname: string,
  flow: FlowSpec,
  reference: Explanation,
  where: string,
): string[] {
  const problems: string[] = [];
  const verdict = model.evaluate(modelFlow(resources, hostname, flow));
  for (const direction of ["egress", "ingress"] as const) {
    const got = verdict[direction];
    if (got === undefined) continue;
    const want = reference[direction];
    if (got !== want.action) {
      problems.push(
        [
          `${where}, host ${hostname}, ${direction}: model says ${got}, explain says ${want.action}`,
          `flow: ${JSON.stringify(flow)}`,
          `explain: ${JSON.stringify(want.decision)}`,
          ...want.trace.map((l) => `  | ${l}`),
        ].join("\n"),
      );
    }
  }
  return problems;
}

function fail(problems: string[]): void {
  if (problems.length > 0) {
    assert.fail(`${problems.length} disagreement(s); the first:\n${problems[0]}`);
  }
}

describe("calc graph against explain", () => {
  it(`agrees on random flows in ${CLUSTERS} random clusters`, () => {
    const problems: string[] = [];
    for (let seed = 1; seed <= CLUSTERS; seed++) {
      const r = new Random(seed);
      const resources = randomCluster(r, { missingTiers: seed % 2 === 0 });
      const flows = randomFlows(r, resources, FLOWS_PER_CLUSTER);
      const references = flows.map((flow) => explain({ resources }, flow as Flow));
      for (const host of GRAPH_HOSTS) {
        const model = syncedModel(resources, host);
        flows.forEach((flow, i) => {
          problems.push(...compare(model, resources, host, flow, references[i]!, `seed ${seed}`));
        });
      }
    }
    fail(problems);
  });

  it(`agrees after every step of ${SEQUENCES} random edit sequences, whatever the path`, () => {
    const problems: string[] = [];
    for (let seed = 1001; seed < 1001 + SEQUENCES; seed++) {
      const r = new Random(seed);
      let state: readonly Resource[] = randomCluster(r);
      const graph = new CalcGraph({ hostname: "node-1" });
      const model = new DataplaneModel();
      graph.onUpdates([...transition([], state), IN_SYNC]);
      model.apply(graph.flush());
      for (let step = 0; step < STEPS; step++) {
        const next = randomEdit(r, state, step);
        graph.onUpdates(transition(state, next));
        state = next;
        assert.deepEqual(graph.drainErrors(), []);
        model.apply(graph.flush());
        const where = `seed ${seed} step ${step}`;
        assert.equal(
          model.dump(),
          syncedModel(state, "node-1").dump(),
          `${where}: path dependence`,
        );
        for (const flow of randomFlows(r, state, FLOWS_PER_STEP)) {
          const reference = explain({ resources: state }, flow as Flow);
          problems.push(...compare(model, state, "node-1", flow, reference, where));
        }
      }
    }
    fail(problems);
  });
});
