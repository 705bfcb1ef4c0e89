// IPAM allocation throughput against a real etcd (a throwaway single member
// from startEtcd, data dir in /tmp).
//
// Figures:
//   single_host_allocs_per_s   N allocations from one host, one after the
//                              other (as one host's CNI calls, serialized).
//   ten_hosts_allocs_per_s     N allocations in all from 10 hosts in
//                              parallel, each host one after the other.
//   single_host_8_inflight_allocs_per_s
//                              N/10 allocations from one host with 8 in
//                              flight at once: they race for the host's
//                              newest block (the CAS-contention case).
//   *_cas_retries              transactions lost to a concurrent writer and
//                              retried, per scenario.
//   single_host_8_inflight_gave_up
//                              allocations that ran out of retries (Conflict)
//                              and were tried again, as a CNI runtime would.
// Baseline, measured in the same run against the same etcd:
//   plain_put_per_s            sequential puts of one small key each: the
//                              floor of "one transaction per allocation".
//   ratio_vs_plain_put = single_host_allocs_per_s / plain_put_per_s.
//   parallel_put_per_s         the same from 10 parallel writers;
//   ten_hosts_ratio_vs_parallel_put = ten_hosts_allocs_per_s / parallel_put_per_s.
// An allocation is what the CNI plugin does per workload: read the pools,
// reservations, IPAMConfiguration and Node, the host's block list and the
// handle, then the block, then commit block + handle in one transaction
// (three round trips, seven requests, ~7 KB written on average for a half
// full /26 block). Every host may hold any number of blocks
// (maxBlocksPerHost 0): 10,000 addresses from one host fill 157 blocks of
// /26, more than the default 20.
//
// N is 10,000 unless TWILL_BENCH_IPAM_ALLOCATIONS says otherwise.

import { EtcdBackend } from "../src/datastore/etcd-backend.js";
import { startEtcd } from "../src/datastore/etcd-server.js";
import { ResourceStore } from "../src/datastore/resource-store.js";
import { Ipam } from "../src/ipam/ipam.js";
import { ipamConfig, node, pool } from "../src/ipam/ipam-testkit.js";
import { isErrorCode } from "../src/util/errors.js";
import type { BenchContext, BenchFigures } from "./run.js";

const PUTS = 2000;
const HOSTS = 10;

async function setup(
  backend: EtcdBackend,
  prefix: string,
  hosts: string[],
): Promise<ResourceStore> {
  const store = new ResourceStore(backend, { prefix });
  for (const r of [
    pool("bench", "10.0.0.0/12", { blockSize: 26 }),
    ipamConfig({ maxBlocksPerHost: 0 }),
    ...hosts.map((h) => node(h)),
  ]) {
    await store.create(r);
  }
  return store;
}

/** Allocates as the CNI plugin would for workload `i` on `host`. */
function allocate(ipam: Ipam, host: string, i: number): Promise<unknown> {
  return ipam.autoAssign({
    host,
    handle: `k8s-pod-network.${host}-${i}`,
    attributes: {
      namespace: "bench",
      pod: `pod-${i}`,
      containerID: `${host}-${i}`,
      workloadEndpoint: `${host}-k8s-pod--${i}-eth0`,
    },
  });
}

async function timed<T>(work: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await work();
  return { ms: performance.now() - started, value };
}

const perSecond = (count: number, ms: number): number => Math.round((count * 1000) / ms);

export async function run(ctx: BenchContext): Promise<BenchFigures> {
  const n = Number(process.env["TWILL_BENCH_IPAM_ALLOCATIONS"] ?? 10_000);
  if (!Number.isInteger(n) || n < HOSTS) {
    throw new Error(`TWILL_BENCH_IPAM_ALLOCATIONS must be an integer >= ${HOSTS}, got ${n}`);
  }
  const etcd = await startEtcd();
  // Generous deadlines: a busy machine must slow the benchmark, not fail it.
  const backend = new EtcdBackend({ endpoints: [etcd.endpoint], dialTimeoutMs: 60_000 });
  try {
    ctx.log(`etcd at ${etcd.endpoint}; ${n} allocations per scenario`);

    const puts = await timed(async () => {
      for (let i = 0; i < PUTS; i++) {
        await backend.txn({
          compare: [],
          success: [{ type: "put", key: `/bench/put/${i}`, value: "x" }],
        });
      }
    });
    const plainPut = perSecond(PUTS, puts.ms);
    ctx.log(`plain puts: ${plainPut}/s sequential`);
    const parallelPuts = await timed(() =>
      Promise.all(
        Array.from({ length: HOSTS }, async (_, w) => {
          for (let i = 0; i < PUTS / HOSTS; i++) {
            await backend.txn({
              compare: [],
              success: [{ type: "put", key: `/bench/pput/${w}/${i}`, value: "x" }],
            });
          }
        }),
      ),
    );
    const parallelPut = perSecond(PUTS, parallelPuts.ms);
    ctx.log(`plain puts: ${parallelPut}/s from ${HOSTS} parallel writers`);

    // One host, one allocation at a time.
    const single = new Ipam(await setup(backend, "/bench-single", ["host-0"]));
    const singleRun = await timed(async () => {
      for (let i = 0; i < n; i++) {
        await allocate(single, "host-0", i);
        if ((i + 1) % 2000 === 0) ctx.log(`single host: ${i + 1} allocated`);
      }
    });
    const singleRate = perSecond(n, singleRun.ms);
    ctx.log(`single host: ${singleRate}/s, ${single.stats.casRetries} CAS retries`);
    await backend.compact(await backend.revision());

    // Ten hosts in parallel, each one allocation at a time.
    const names = Array.from({ length: HOSTS }, (_, h) => `host-${h}`);
    const tenStore = await setup(backend, "/bench-ten", names);
    const perHost = names.map(() => new Ipam(tenStore));
    const tenRun = await timed(() =>
      Promise.all(
        names.map(async (host, h) => {
          for (let i = 0; i < n / HOSTS; i++) await allocate(perHost[h] as Ipam, host, i);
        }),
      ),
    );
    const tenRate = perSecond(n, tenRun.ms);
    const tenRetries = perHost.reduce((sum, ipam) => sum + ipam.stats.casRetries, 0);
    ctx.log(`ten hosts: ${tenRate}/s, ${tenRetries} CAS retries`);
    await backend.compact(await backend.revision());

    // One host, 8 allocations in flight: the contended case.
    const contended = new Ipam(await setup(backend, "/bench-inflight", ["host-0"]));
    const inflightN = Math.max(8, Math.floor(n / 10));
    let next = 0;
    let conflicts = 0;
    const inflightRun = await timed(() =>
      Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < inflightN) {
            const i = next++;
            // An allocation that runs out of retries fails with Conflict; the
            // CNI runtime would try the pod again, and so does this.
            for (;;) {
              try {
                await allocate(contended, "host-0", i);
                break;
              } catch (err) {
                if (!isErrorCode(err, "Conflict")) throw err;
                conflicts += 1;
              }
            }
          }
        }),
      ),
    );
    const inflightRate = perSecond(inflightN, inflightRun.ms);
    ctx.log(
      `single host, 8 in flight: ${inflightRate}/s, ${contended.stats.casRetries} CAS retries`,
    );

    return {
      allocations: n,
      single_host_allocs_per_s: singleRate,
      single_host_cas_retries: single.stats.casRetries,
      ten_hosts_allocs_per_s: tenRate,
      ten_hosts_cas_retries: tenRetries,
      single_host_8_inflight_allocations: inflightN,
      single_host_8_inflight_allocs_per_s: inflightRate,
      single_host_8_inflight_cas_retries: contended.stats.casRetries,
      single_host_8_inflight_gave_up: conflicts,
      plain_put_per_s: plainPut,
      parallel_put_per_s: parallelPut,
      ratio_vs_plain_put: Number((singleRate / plainPut).toFixed(3)),
      ten_hosts_ratio_vs_parallel_put: Number((tenRate / parallelPut).toFixed(3)),
    };
  } finally {
    await backend.close();
    await etcd.stop();
  }
}
