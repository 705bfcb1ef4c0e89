// Reads a child's stdout as JSON log lines (the agent's pino output), for
// test kits that wait on what a process logged. A line that is not JSON is
// kept as {msg: line}.
import type { Readable } from "node:stream";

export function collectJsonLines(
  stream: Readable | null | undefined,
  lines: Record<string, unknown>[],
  onLines?: () => void,
): void {
  let buffered = "";
  stream?.on("data", (d: Buffer) => {
    buffered += d.toString("utf8");
    const parts = buffered.split("\n");
    buffered = parts.pop() ?? "";
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as Record<string, unknown>);
      } catch {
        lines.push({ msg: p });
      }
    }
    onLines?.();
  });
}
