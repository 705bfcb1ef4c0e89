// One IPAM operation at a time per host, across plugin processes.
//
// Why: a node starting many pods at once has all their plugins allocating
// from the node's one block. IPAM is correct under that (every write
// compares revisions) but each round only one writer wins and the rest
// retry: 100 concurrent allocations took 7 s and ~900 lost races, against
// 0.8 s one after another. Taking turns is faster. Correctness never
// depends on this lock: without it (timed out, or another host) IPAM's
// compare-and-swap still decides.
//
// How: the lock is a listening unix socket in Linux's abstract namespace
// ("\0twill-ipam-lock"): one process can bind it; the kernel frees it
// when that process exits, however it exits, so there is no stale lock to
// clean up, and no file. Abstract sockets belong to the network namespace,
// which is exactly "this host" for plugins (runtimes run them in the host's
// namespace).
//
// Waiters queue, so that a release wakes one process rather than all of
// them: with a hundred plugins waiting, waking every one at every release
// to race for the name cost each ADD more CPU than its own turn. Each
// process has a socket of its own ("\0twill-ipam-lock.<pid>.<random>") and
// waits for its predecessor's to close:
//
//   holder H: binds the lock name; its listener is the queue's registry
//   waiter W: connects to it: "WAIT <W's socket> <tail of the queue behind W, or ->"
//             ◄─ "<predecessor>" (the queue's tail, or H); W's queue is the tail now
//             then connects to the predecessor's socket, waits for it to
//             close, and tries to bind the lock name again
//   release:  H closes the lock name, then its own socket, telling its
//             successor the queue's tail ("TAIL <name>", "TAIL -" for none,
//             "TAIL ?" when H does not know), so that the successor's
//             registry carries the queue on
//   orphan:   a waiter whose predecessor closed without a tail (died, gave
//             up, did not know) may have a queue behind it, so it does not
//             join the queue's end (it could end up waiting for its own
//             followers): it waits for the holder's release ("HOLD") and
//             tries again; as a holder its registry does not know the tail,
//             and every waiter waits for it directly
//
// Every wait ends when a socket closes, which the kernel does for a process
// that dies, so a crashed holder or waiter never blocks the queue behind it.
// A race (a newcomer binding the name between a release and the successor's
// bind, a predecessor gone before its successor connected) costs order,
// never exclusion: only the process bound to the lock name holds the lock.
import { randomBytes } from "node:crypto";
import { createConnection, createServer } from "node:net";
import type { Server, Socket } from "node:net";

export const IPAM_LOCK_NAME = "twill-ipam-lock";

export interface HostLockOptions {
  /** The abstract socket's name (without the leading NUL). */
  name?: string;
  /** Give up waiting after this long and go on without the lock (default 30000 ms). */
  timeoutMs?: number;
  /** Called each time this process has joined the queue (its predecessor is known). */
  onQueued?: () => void;
}

/** Resolves with a release function once this process holds the lock, or undefined after the timeout. */
export async function acquireHostLock(
  options: HostLockOptions = {},
): Promise<(() => Promise<void>) | undefined> {
  const name = options.name ?? IPAM_LOCK_NAME;
  const lockPath = `\0${name}`;
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  const self = `${name}.${process.pid}.${randomBytes(4).toString("hex")}`;
  // What the predecessor handed over: the tail of the queue behind this
  // process ("-" for none), or undefined when nothing was (never queued,
  // or orphaned).
  let handed: string | undefined;
  let queued = false;
  // The socket followers wait on: there before anyone can be told to wait on it.
  const own = await listen(`\0${self}`);
  if (!own) return undefined; // Cannot take part: go on without the lock.
  for (;;) {
    const registry = await listen(lockPath);
    if (registry) {
      const queue: Queue = {
        // Queued and orphaned: processes may wait behind this one, but which is last is unknown.
        known: !queued || handed !== undefined,
        tail: handed !== undefined && handed !== "-" ? handed : undefined,
      };
      serveRegistry(registry, self, queue);
      return release(registry, own, queue);
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      closeAll(own);
      return undefined;
    }
    if (queued && handed === undefined) {
      // Orphaned: wait for the holder's release, then try again.
      await waitForClose(lockPath, "HOLD\n", left);
      continue;
    }
    const predecessor = await ask(lockPath, `WAIT ${self} ${handed ?? "-"}\n`, left);
    if (predecessor === undefined || predecessor === self) continue; // The holder went meanwhile.
    queued = true;
    options.onQueued?.();
    const tail = await waitForClose(`\0${predecessor}`, undefined, deadline - Date.now());
    handed = tail === "?" ? undefined : tail;
  }
}

/** The queue behind a holder: its last process, when known. */
interface Queue {
  known: boolean;
  tail: string | undefined;
}

interface Listener {
  server: Server;
  sockets: Set<Socket>;
}

/** A listener on `path`, or undefined when the name is taken. */
function listen(path: string): Promise<Listener | undefined> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    const sockets = new Set<Socket>();
    server.on("connection", (s) => {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    });
    server.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE") resolve(undefined);
      else reject(err);
    });
    server.listen({ path, exclusive: true }, () => resolve({ server, sockets }));
  });
}

/**
 * The holder's registry. "WAIT <waiter> <tail of its own queue, or ->": the
 * answer is the waiter's predecessor (the queue's tail, or the holder), and
 * the waiter's queue becomes the queue's end. With the tail unknown every
 * waiter waits for the holder itself. "HOLD": kept open until the release.
 */
function serveRegistry(registry: Listener, self: string, queue: Queue): void {
  registry.server.on("connection", (s) => {
    let text = "";
    s.setEncoding("utf8");
    s.on("data", (chunk: string) => {
      text += chunk;
      const nl = text.indexOf("\n");
      if (nl < 0) return;
      const [verb, waiter, waiterTail] = text.slice(0, nl).split(" ");
      if (verb === "HOLD") return;
      if (verb !== "WAIT" || !waiter || !waiterTail) {
        s.destroy();
        return;
      }
      if (!queue.known || queue.tail === waiter || queue.tail === waiterTail) {
        s.end(`${self}\n`);
        return;
      }
      s.end(`${queue.tail ?? self}\n`);
      queue.tail = waiterTail === "-" ? waiter : waiterTail;
    });
  });
}

/** Sends `request` to the registry: resolves with the first line of the answer, or undefined. */
function ask(lockPath: string, request: string, ms: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ path: lockPath });
    let text = "";
    let settled = false;
    const done = (answer: string | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(() => done(undefined), Math.max(1, ms));
    socket.setEncoding("utf8");
    socket.on("connect", () => socket.write(request));
    socket.on("data", (chunk: string) => {
      text += chunk;
      const nl = text.indexOf("\n");
      if (nl >= 0) done(text.slice(0, nl) || undefined);
    });
    socket.on("error", () => done(undefined));
    socket.on("close", () => done(undefined));
  });
}

/**
 * Connects to `path` (sending `request` if given) and waits until the other
 * end closes (its owner released or died), refuses (already gone), or the
 * time is up. Resolves with the queue's tail when the owner handed it over.
 */
function waitForClose(
  path: string,
  request: string | undefined,
  ms: number,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = createConnection({ path });
    let text = "";
    let settled = false;
    const done = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const line = text.split("\n")[0] ?? "";
      resolve(line.startsWith("TAIL ") && line.length > 5 ? line.slice(5) : undefined);
    };
    const timer = setTimeout(done, Math.max(1, ms));
    socket.setEncoding("utf8");
    if (request !== undefined) socket.on("connect", () => socket.write(request));
    socket.on("data", (chunk: string) => (text += chunk));
    socket.on("error", done);
    socket.on("close", done);
    socket.on("end", done);
  });
}

/** Stops listening (the name is free at once) and ends every connection, with `message` if given. */
function closeAll(listener: Listener, message?: string): void {
  listener.server.close();
  for (const s of listener.sockets) {
    if (message !== undefined) s.end(message);
    else s.destroy();
  }
}

function release(registry: Listener, own: Listener, queue: Queue): () => Promise<void> {
  let released = false;
  return async () => {
    if (released) return;
    released = true;
    // First the name (the successor finds it free), then the successor,
    // told the queue's tail so that its registry carries the queue on.
    closeAll(registry);
    closeAll(own, `TAIL ${queue.known ? (queue.tail ?? "-") : "?"}\n`);
  };
}
