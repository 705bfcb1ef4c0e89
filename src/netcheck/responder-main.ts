// The responder as a process, for `ip netns exec NS node responder-main.js
// --tcp 80,8080 --udp 53 [--echo]` (netcheck.ts startResponder). Prints one line
// "ready" once every port is open. Exits when its standard input closes, so
// it never outlives whoever started it, even one killed with SIGKILL; and on
// SIGTERM.
import { serveResponder } from "./responder.js";

function ports(flag: string): number[] {
  const i = process.argv.indexOf(flag);
  const text = i < 0 ? "" : (process.argv[i + 1] ?? "");
  return text
    .split(",")
    .filter((s) => s !== "")
    .map(Number);
}

try {
  const responder = await serveResponder({
    tcpPorts: ports("--tcp"),
    udpPorts: ports("--udp"),
    echo: process.argv.includes("--echo"),
  });
  const stop = () => {
    void responder.close().finally(() => process.exit(0));
  };
  process.on("SIGTERM", stop);
  process.stdin.on("end", stop);
  process.stdin.on("error", stop);
  process.stdin.resume();
  process.stdout.write("ready\n");
} catch (err) {
  process.stderr.write(`responder: ${(err as Error).message}\n`);
  process.exit(1);
}
