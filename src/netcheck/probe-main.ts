// The prober as a process, for `ip netns exec NS node probe-main.js
// TIMEOUT_MS` (netcheck.ts probeFrom): reads a JSON list of targets on
// standard input, probes them all at once, writes the JSON list of outcomes
// on standard output.
import { runProbes } from "./prober.js";
import type { ProbeTarget } from "./matrix.js";

const chunks: Buffer[] = [];
for await (const c of process.stdin) chunks.push(c as Buffer);
try {
  const targets = JSON.parse(Buffer.concat(chunks).toString("utf8")) as ProbeTarget[];
  const timeoutMs = Number(process.argv[2] ?? "1000");
  const outcomes = await runProbes(targets, { timeoutMs });
  process.stdout.write(`${JSON.stringify(outcomes)}\n`);
} catch (err) {
  process.stderr.write(`probe: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
