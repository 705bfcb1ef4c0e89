// Where the CLI's text goes. This is the only module that touches the
// process's stdout and stderr (and console); every command writes through an
// `Output` handed to it, so tests capture exactly what a user would see.

/** The CLI's two streams. Text is written as given: callers add the newlines. */
export interface Output {
  /** Results: tables, YAML, "created" lines. */
  out(text: string): void;
  /** Diagnostics: errors, warnings, "No resources found.". */
  err(text: string): void;
}

/** An Output on the process's stdout and stderr, with a flush for before exit. */
export interface ProcessOutput extends Output {
  /** Resolves once everything written so far has been handed to the OS. */
  flush(): Promise<void>;
}

function drain(stream: NodeJS.WriteStream): Promise<void> {
  // An empty write's callback runs after every earlier write has been flushed.
  return new Promise((resolve) => {
    stream.write("", () => resolve());
  });
}

export function processOutput(): ProcessOutput {
  // A reader that goes away (`twill get ... | head`) is not an error of ours:
  // drop the rest of the output quietly instead of crashing on EPIPE.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code !== "EPIPE") throw err;
    });
  }
  return {
    out: (text) => {
      process.stdout.write(text);
    },
    err: (text) => {
      process.stderr.write(text);
    },
    flush: async () => {
      await Promise.all([drain(process.stdout), drain(process.stderr)]);
    },
  };
}

/** The width of the terminal on stdout, or undefined when stdout is not one. */
export function terminalWidth(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns : undefined;
}

/** An Output that keeps everything in memory (tests, embedding). */
export interface CapturedOutput extends Output {
  readonly stdout: string;
  readonly stderr: string;
}

export function captureOutput(): CapturedOutput {
  let stdout = "";
  let stderr = "";
  return {
    out: (text) => {
      stdout += text;
    },
    err: (text) => {
      stderr += text;
    },
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
  };
}
