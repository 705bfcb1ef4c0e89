// `twill lab up`'s progress display: one line per finished step with its
// elapsed time. On a terminal, the steps still running are shown on a last
// line that keeps ticking; elsewhere (CI logs, pipes) only finished steps
// are printed, so logs hold no control characters.
//
//   terminal:   ✓ network    9 namespaces, 8 links ...          0.2s
//               ⠼ agents, workloads  3.1s                      (rewritten in place)
//   otherwise:  [  0.2s] network: 9 namespaces, 8 links ...
import type { LabProgress } from "./lab.js";

export interface ProgressPrinter {
  onProgress(p: LabProgress): void;
  /** Stops the ticking and clears the running line; prints nothing more. */
  stop(): void;
}

const SPINNER = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
const STEP_WIDTH = 10;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

export function progressPrinter(options: {
  write: (text: string) => void;
  tty: boolean;
  now?: () => number;
}): ProgressPrinter {
  const { write, tty } = options;
  const now = options.now ?? (() => performance.now());
  const active = new Map<string, number>();
  let startedAt: number | undefined;
  let frame = 0;
  let timer: NodeJS.Timeout | undefined;
  let shown = false;

  const clearLine = (): void => {
    if (shown) write("\r\x1b[K");
    shown = false;
  };
  const drawActive = (): void => {
    if (!tty || active.size === 0 || startedAt === undefined) return;
    const names = [...active.keys()].join(", ");
    write(
      `\r\x1b[K${SPINNER[frame % SPINNER.length] ?? "-"} ${names}  ${seconds(now() - startedAt)}`,
    );
    shown = true;
  };

  return {
    onProgress(p) {
      startedAt ??= now() - p.elapsedMs;
      if (p.state === "start") {
        active.set(p.step, p.elapsedMs);
        if (tty && timer === undefined) {
          timer = setInterval(() => {
            frame++;
            drawActive();
          }, 100);
          timer.unref();
        }
        drawActive();
        return;
      }
      active.delete(p.step);
      const detail = p.detail ?? "";
      if (tty) {
        clearLine();
        const took = p.stepMs !== undefined ? `  (${seconds(p.stepMs)})` : "";
        write(`✓ ${p.step.padEnd(STEP_WIDTH)} ${detail}${took}\n`);
        drawActive();
      } else {
        write(`[${seconds(p.elapsedMs).padStart(6)}] ${p.step}: ${detail}\n`);
      }
      if (active.size === 0 && timer !== undefined) {
        clearInterval(timer);
        timer = undefined;
      }
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      if (tty) clearLine();
    },
  };
}
