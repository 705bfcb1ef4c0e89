// Connects, again and again, until a TCP connection succeeds: the far end of
// the propagation benchmark (bench/propagation.ts), run inside a workload's
// namespace. Reads "ADDR PORT" lines on stdin; for each, tries to connect
// every few milliseconds (each attempt given up after ATTEMPT_MS, since a
// SYN that policy drops gets no answer at all) and prints
// "ok ADDR ATTEMPTS" once one handshake completes. Several targets may be
// pending at once. Exits when stdin closes.
import { connect } from "node:net";
import { createInterface } from "node:readline";

const ATTEMPT_MS = 25;
const PAUSE_MS = 2;

function reach(addr: string, port: number): void {
  let attempts = 0;
  const attempt = (): void => {
    attempts++;
    const socket = connect({ host: addr, port });
    const timer = setTimeout(() => socket.destroy(new Error("timeout")), ATTEMPT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      process.stdout.write(`ok ${addr} ${attempts}\n`);
      socket.destroy();
    });
    socket.once("error", () => {
      clearTimeout(timer);
      setTimeout(attempt, PAUSE_MS);
    });
  };
  attempt();
}

createInterface({ input: process.stdin })
  .on("line", (line) => {
    const [addr, port] = line.trim().split(/\s+/);
    if (addr !== undefined && port !== undefined) reach(addr, Number(port));
  })
  .on("close", () => process.exit(0));
