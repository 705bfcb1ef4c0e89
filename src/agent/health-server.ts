// The agent's HTTP endpoint, always on:
//
//   GET /livez    200 while the process works: the apply loop is not stuck
//                 and the syncer has not failed; 503 otherwise
//   GET /readyz   200 once the first complete apply has succeeded (and the
//                 latest one did); 503 before and while failing
//   GET /metrics  Prometheus text exposition
//
// Bodies of /livez and /readyz are small JSON objects saying why, so an
// operator's `curl` explains itself.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { TwillError } from "../util/errors.js";
import type { Logger } from "./logging.js";

export interface Probe {
  ok: boolean;
  /** Why, for the response body. */
  detail: Record<string, unknown>;
}

export interface HealthChecks {
  live(): Probe;
  ready(): Probe;
  metrics(): Promise<{ contentType: string; body: string }>;
}

export interface HealthServer {
  /** Where it listens (the real port when 0 was asked for). */
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export async function startHealthServer(
  checks: HealthChecks,
  options: { host: string; port: number; logger: Logger },
): Promise<HealthServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    const probe = (p: Probe) => {
      res
        .writeHead(p.ok ? 200 : 503, { "content-type": "application/json" })
        .end(req.method === "HEAD" ? undefined : `${JSON.stringify({ ok: p.ok, ...p.detail })}\n`);
    };
    switch (path) {
      case "/livez":
        probe(checks.live());
        return;
      case "/readyz":
        probe(checks.ready());
        return;
      case "/metrics":
        checks.metrics().then(
          (m) => {
            res
              .writeHead(200, { "content-type": m.contentType })
              .end(req.method === "HEAD" ? undefined : m.body);
          },
          (err: unknown) => {
            options.logger.warn({ error: String(err) }, "metrics scrape failed");
            res.writeHead(500).end();
          },
        );
        return;
      default:
        res
          .writeHead(404, { "content-type": "text/plain" })
          .end("not found: try /livez, /readyz or /metrics\n");
    }
  });
  // A stuck or slow client must not hold the agent's shutdown.
  server.requestTimeout = 10_000;
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) =>
      reject(
        new TwillError(
          "Unavailable",
          `cannot serve health and metrics on ${options.host}:${options.port}: ${err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  options.logger.info(
    { host: options.host, port: address.port },
    "health and metrics server listening",
  );
  return {
    host: options.host,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
