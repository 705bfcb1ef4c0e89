// A lab workload's long-lived responder, for `twill lab check` (and for
// anyone in the lab with `cat </dev/tcp/<workload>/80`): netcheck's TCP
// responder (it greets with the source address it saw), run detached inside
// the workload's namespace until SIGTERM, or until `lab down` ends every
// process of the lab. Unlike netcheck's responder-main.ts it does not end
// when its standard input closes: it outlives the `lab check` that started
// it, so later checks need not start one again.
//
//   ip netns exec twl-<lab>-h1w1 node lab-responder-main.js --lab-dir DIR --tcp 80
//
// Prints "ready" once listening (lab-check.ts reads it from the log file).
import { serveResponder } from "../netcheck/responder.js";

function flag(name: string): string {
  const i = process.argv.indexOf(name);
  return i < 0 ? "" : (process.argv[i + 1] ?? "");
}

const ports = flag("--tcp")
  .split(",")
  .filter((s) => s !== "")
  .map(Number);
try {
  const responder = await serveResponder({ tcpPorts: ports, udpPorts: [] });
  process.on("SIGTERM", () => {
    void responder.close().finally(() => process.exit(0));
  });
  process.stdout.write(`ready tcp ${ports.join(",")}\n`);
} catch (err) {
  process.stdout.write(`responder: ${(err as Error).message}\n`);
  process.exit(1);
}
