// The BIRD supervisor against a real BIRD, run in a network namespace of its
// own through a wrapper executable: start with the first configuration,
// reload only when the text changed, refuse a configuration BIRD rejects,
// restart (with -R) after kill -9, adopt a running BIRD, clean up after a
// dead one, and stop.
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { NetnsPool } from "../dataplane/netns-testkit.js";
import { isErrorCode } from "../util/errors.js";
import { birdPaths } from "./bgp-inputs.js";
import { BirdSupervisor } from "./bird-supervisor.js";
import type { BirdLogger, BirdState, BirdSupervisorOptions } from "./bird-supervisor.js";
import {
  alive,
  birdInNetns,
  birdPid,
  birdUnavailable,
  killBird,
  tempDir,
  until,
} from "./testing/bird-netns.js";

const config = (routes: string[]) =>
  [
    "router id 10.0.0.1;",
    "log stderr all;",
    "protocol device {}",
    `protocol static s4 { ipv4; ${routes.map((r) => `route ${r} blackhole;`).join(" ")} }`,
    "",
  ].join("\n");

const A = config(["10.65.0.0/26"]);
const B = config(["10.65.0.0/26", "10.65.0.64/26"]);

function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
}

describe(
  "BIRD supervisor (real BIRD in a network namespace)",
  { skip: birdUnavailable(), timeout: 90_000 },
  () => {
    const pool = new NetnsPool();
    const dir = tempDir("birdsup");
    const paths = birdPaths(`${dir.path}/node-1`);
    const started: BirdSupervisor[] = [];
    const logs: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
    let wrapper: string;

    const logger: BirdLogger = {
      debug: (fields, msg) => logs.push({ level: "debug", msg, fields }),
      info: (fields, msg) => logs.push({ level: "info", msg, fields }),
      warn: (fields, msg) => logs.push({ level: "warn", msg, fields }),
      error: (fields, msg) => logs.push({ level: "error", msg, fields }),
    };
    const supervisor = (extra: BirdSupervisorOptions = {}) => {
      const s = new BirdSupervisor(paths, {
        binary: wrapper,
        logger,
        checkNetns: false,
        backoff: { initialMs: 50, maxMs: 400 },
        pollIntervalMs: 100,
        ...extra,
      });
      started.push(s);
      return s;
    };
    const routes = (s: BirdSupervisor) =>
      s.query((c) => c.showRoutes({ protocol: "s4" })).then((rs) => rs.map((r) => r.prefix));
    const logTail = () =>
      logs
        .slice(-10)
        .map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.fields)}`)
        .join("\n");

    before(async () => {
      const ns = await pool.create("s");
      wrapper = birdInNetns(dir.path, ns.name);
    });

    after(async () => {
      for (const s of started) await s.stop({ stopBird: false }).catch(() => undefined);
      killBird(paths.pidFile);
      await pool.cleanup();
      dir.remove();
    });

    let first: BirdSupervisor;
    let firstPid: number;

    it("creates the directory and starts BIRD with the first configuration", async () => {
      const states: BirdState[] = [];
      first = supervisor({ onStateChange: (s) => states.push(s) });
      assert.equal(await first.start(), "clean");
      assert.ok(existsSync(paths.dir));
      assert.equal(first.state, "stopped", "nothing starts before a configuration");
      assert.equal(await first.setConfig(A), "started");
      assert.equal(first.state, "running");
      assert.deepEqual(states, ["starting", "running"]);
      assert.equal(readFileSync(paths.config, "utf8"), A);
      assert.ok(!existsSync(`${paths.config}.tmp`));
      firstPid = first.stats().pid!;
      assert.equal(birdPid(paths.pidFile), firstPid);
      assert.ok(
        !cmdline(firstPid).includes("-R"),
        "a first start on a clean directory is not a recovery",
      );
      assert.deepEqual(await routes(first), ["10.65.0.0/26"]);
    });

    it("reloads only when the text changed", async () => {
      const before = await first.query((c) => c.showStatus());
      assert.equal(await first.setConfig(A), "unchanged");
      assert.equal(first.stats().reloads, 0);
      assert.equal(
        (await first.query((c) => c.showStatus())).lastReconfiguration,
        before.lastReconfiguration,
      );
      assert.equal(await first.setConfig(B), "reloaded");
      assert.equal(first.stats().reloads, 1);
      assert.deepEqual(await routes(first), ["10.65.0.0/26", "10.65.0.64/26"]);
      assert.equal(first.stats().pid, firstPid, "a reload is not a restart");
    });

    it("keeps the previous configuration when BIRD rejects the new one", async () => {
      await assert.rejects(first.setConfig("protocol nonsense {\n"), (err: unknown) => {
        assert.ok(isErrorCode(err, "Invalid"));
        assert.match((err as Error).message, /BIRD rejects the rendered configuration/);
        return true;
      });
      assert.equal(readFileSync(paths.config, "utf8"), B);
      assert.equal(first.state, "running");
      assert.equal(await first.setConfig(B), "unchanged");
    });

    it("restarts BIRD after kill -9, in graceful restart recovery (-R)", async () => {
      process.kill(firstPid, "SIGKILL");
      await until(
        "BIRD restarted",
        () => first.state === "running" && first.stats().pid !== firstPid,
        10_000,
        logTail,
      );
      assert.equal(first.stats().restarts, 1);
      const pid = first.stats().pid!;
      assert.ok(cmdline(pid).includes("-R"), `restarted with -R: ${cmdline(pid).join(" ")}`);
      assert.ok(logs.some((l) => l.level === "warn" && l.msg === "BIRD exited; restarting it"));
      assert.deepEqual(await routes(first), ["10.65.0.0/26", "10.65.0.64/26"]);
      firstPid = pid;
    });

    it("leaves BIRD running when it stops, and a new supervisor adopts it without a reload", async () => {
      await first.stop();
      assert.ok(alive(firstPid), "BIRD outlives its supervisor");
      const second = supervisor();
      assert.equal(await second.start(), "adopted");
      assert.deepEqual(second.stats(), {
        state: "running",
        up: true,
        pid: firstPid,
        restarts: 0,
        reloads: 0,
        adopted: true,
      });
      assert.equal(await second.setConfig(B), "unchanged", "the same text: no reload");
      assert.equal(await second.setConfig(A), "reloaded");
      assert.deepEqual(await routes(second), ["10.65.0.0/26"]);

      // An adopted BIRD is not our child: its death is noticed by polling.
      process.kill(firstPid, "SIGKILL");
      await until(
        "adopted BIRD replaced",
        () => second.state === "running" && second.stats().pid !== firstPid,
        10_000,
        logTail,
      );
      assert.equal(second.stats().adopted, false);
      assert.deepEqual(await routes(second), ["10.65.0.0/26"]);
      firstPid = second.stats().pid!;
      await second.stop();
    });

    it("cleans up a dead BIRD's socket and pid file, then starts in recovery", async () => {
      process.kill(firstPid, "SIGKILL");
      await until("BIRD dead", () => !alive(firstPid));
      assert.ok(existsSync(paths.socket), "kill -9 leaves the socket behind");
      const third = supervisor();
      assert.equal(await third.start(), "stale");
      assert.ok(!existsSync(paths.socket));
      assert.ok(!existsSync(paths.pidFile));
      assert.equal(await third.setConfig(A), "started", "same text as on disk, but BIRD must run");
      const pid = third.stats().pid!;
      assert.ok(cmdline(pid).includes("-R"));
      firstPid = pid;
      await third.stop();
    });

    it("takes a socket file with nothing behind it for stale", async () => {
      killBird(paths.pidFile);
      await until("BIRD dead", () => !alive(firstPid));
      writeFileSync(paths.pidFile, "999999\n");
      const fourth = supervisor();
      assert.equal(await fourth.start(), "stale");
      assert.equal(await fourth.setConfig(B), "started");
      firstPid = fourth.stats().pid!;
      // And stops BIRD when asked to.
      await fourth.stop({ stopBird: true });
      assert.ok(!alive(firstPid));
      assert.equal(fourth.state, "stopped");
    });

    it("replaces a BIRD whose pid file names it but whose socket does not answer", async () => {
      const fifth = supervisor();
      assert.equal(await fifth.start(), "clean");
      assert.equal(await fifth.setConfig(A), "started");
      const pid = fifth.stats().pid!;
      await fifth.stop();
      rmSync(paths.socket);
      const sixth = supervisor();
      assert.equal(await sixth.start(), "stale");
      assert.ok(!alive(pid), "the unreachable BIRD was stopped");
      assert.equal(await sixth.setConfig(A), "started");
      assert.deepEqual(await routes(sixth), ["10.65.0.0/26"]);
      await sixth.stop({ stopBird: true });
    });

    it("refuses a socket path too long for a unix socket", async () => {
      const s = new BirdSupervisor(birdPaths(`/tmp/${"x".repeat(120)}`));
      await assert.rejects(s.start(), (err: unknown) => isErrorCode(err, "Invalid"));
    });
  },
);
