// One long-lived TCP flow, for the restart tests: the client sends a 1 KiB
// chunk every 10 ms and the server echoes it, so a stall, a reset or lost
// data shows on both ends. Run inside a workload's namespace (flow.ts starts
// it with `ip netns exec`):
//
//   tcp-flow-main.js server PORT         prints "ready", echoes one connection,
//                                        prints {"side":"server",...} when it closes
//   tcp-flow-main.js client ADDR PORT    prints "connected"; on stdin
//                                        "stat"  → {"side":"client","sent",...}
//                                        "stop"  → stop sending, wait for every echo,
//                                                  close, print the final line, exit
//
// Every status line is one JSON object. A reset or any socket error is
// reported in `error` (its code, e.g. ECONNRESET) and the exit code is 1.
import { createServer, connect } from "node:net";
import type { Socket } from "node:net";
import { createInterface } from "node:readline";

const CHUNK = Buffer.alloc(1024, 0x61);
const SEND_EVERY_MS = 10;

function say(line: unknown): void {
  process.stdout.write(`${typeof line === "string" ? line : JSON.stringify(line)}\n`);
}

function errorCode(err: Error): string {
  return (err as NodeJS.ErrnoException).code ?? err.message;
}

function server(port: number): void {
  const srv = createServer((socket: Socket) => {
    srv.close();
    let received = 0;
    let error: string | null = null;
    socket.on("data", (d: Buffer) => {
      received += d.length;
      socket.write(d);
    });
    socket.on("end", () => socket.end());
    socket.on("error", (err) => (error = errorCode(err)));
    socket.on("close", () => {
      say({ side: "server", received, error });
      process.exit(error === null ? 0 : 1);
    });
  });
  srv.listen(port, () => say("ready"));
  // The test went away: so do we.
  process.stdin.on("end", () => process.exit(0)).resume();
}

function client(addr: string, port: number): void {
  let sent = 0;
  let echoed = 0;
  let lastEcho = 0;
  let maxGapMs = 0;
  let error: string | null = null;
  let stopping = false;
  const stat = () => ({ side: "client", sent, echoed, maxGapMs: Math.round(maxGapMs), error });
  const socket = connect({ host: addr, port });
  let timer: NodeJS.Timeout | undefined;
  const finishIfDone = () => {
    if (stopping && echoed >= sent && !socket.writableEnded) socket.end();
  };
  socket.on("connect", () => {
    lastEcho = performance.now();
    say("connected");
    timer = setInterval(() => {
      if (stopping || socket.writableLength > 64 * 1024) return;
      socket.write(CHUNK);
      sent += CHUNK.length;
    }, SEND_EVERY_MS);
  });
  socket.on("data", (d: Buffer) => {
    const now = performance.now();
    if (!stopping) maxGapMs = Math.max(maxGapMs, now - lastEcho);
    lastEcho = now;
    echoed += d.length;
    finishIfDone();
  });
  socket.on("error", (err) => (error = errorCode(err)));
  socket.on("close", () => {
    clearInterval(timer);
    say(stat());
    process.exit(error === null && echoed === sent ? 0 : 1);
  });
  const input = createInterface({ input: process.stdin });
  input.on("close", () => process.exit(1));
  input.on("line", (line) => {
    if (line.trim() === "stat") say(stat());
    if (line.trim() === "stop") {
      stopping = true;
      clearInterval(timer);
      finishIfDone();
    }
  });
}

const [mode, a, b] = process.argv.slice(2);
if (mode === "server" && a !== undefined) server(Number(a));
else if (mode === "client" && a !== undefined && b !== undefined) client(a, Number(b));
else {
  process.stderr.write("usage: tcp-flow-main.js server PORT | client ADDR PORT\n");
  process.exit(2);
}
