/**
 * Collective scenarios run on every rank of a group (worker threads or mpirun processes) by the
 * parallel-collectives tests. Inputs are deterministic functions of (rank, index), so the test can
 * compute the expected results independently; each scenario returns plain data (downloads, error
 * messages) for the test to check.
 */
import type { Backend, CollectiveAccess, CollectivePeers, Tensor, TensorCollectives } from '../../src/backend/backend.js';
import { RefBackend } from '../../src/backend/ref/index.js';
import { createBackend, type BackendName } from '../../src/backend/registry.js';
import { agreeOnRun } from '../../src/parallel/ddp.js';
import { bindProcessGroup, type ProcessGroup } from '../../src/parallel/group.js';
import type { Communicator } from '../../src/parallel/native-communicator.js';

/** Rank r's value at index i of input `k` (exact in float32). */
export function inputValue(k: number, rank: number, i: number): number {
  return Math.fround(Math.sin(0.001 * i + 0.7 * rank + k) * (rank + 1) + 0.25 * k);
}

export const SIZES = { big: 1_000_003, small: 7, shard: 1001, gather: 513, bcast: 4099 } as const;

function filled(b: Backend, n: number, dtype: 'f32' | 'f64' | 'i32', k: number, rank: number): Tensor {
  const t = b.alloc([n], dtype);
  const host = dtype === 'f32' ? new Float32Array(n) : dtype === 'f64' ? new Float64Array(n) : new Int32Array(n);
  for (let i = 0; i < n; i++) host[i] = dtype === 'i32' ? rank * 100000 + i : inputValue(k, rank, i);
  b.upload(t, host);
  return t;
}

const arr = (b: Backend, t: Tensor): number[] => Array.from(b.download(t));

async function rejection(p: Promise<unknown>): Promise<{ message: string; code: string | null; name: string } | null> {
  try {
    await p;
    return null;
  } catch (e) {
    return { message: (e as Error).message, code: ((e as { code?: string }).code ?? null), name: (e as Error).name };
  }
}

/** ctl.abortGroup asks the launching thread to abort the group and resolves once it has. */
export type Scenario = (comm: Communicator, ctl: { abortGroup?: () => Promise<void> }) => Promise<unknown>;

/** A backend of one kernel thread and this rank's process group for it. */
async function bound(comm: Communicator, name: BackendName = 'cpu'): Promise<{ b: Backend; group: ProcessGroup }> {
  const b = createBackend(name, { threads: 1 });
  return { b, group: await bindProcessGroup(comm, b) };
}

/**
 * A backend that brings its own collectives (as a GPU backend would bring NCCL's): ref kernels, and
 * an all-reduce and broadcast that run over the scalar channel the group hands to `connect`. It
 * records what the group told it and which collectives reached it.
 */
class OwnCollectivesBackend extends RefBackend {
  readonly calls: string[] = [];
  connectedAs: { rank: number; size: number } | null = null;
  readonly collectives: CollectiveAccess = {
    kind: 'own',
    connect: async (peers: CollectivePeers): Promise<TensorCollectives> => {
      this.connectedAs = { rank: peers.rank, size: peers.size };
      const through = async (t: Tensor, keep: (sum: number, mine: number) => number): Promise<void> => {
        const mine = this.download(t);
        const sums = await peers.allReduceScalars(Float64Array.from(mine));
        this.upload(t, Array.from(sums, (v, i) => keep(v, mine[i]!)));
      };
      return {
        allReduce: (t, op) => (this.calls.push(`allReduce ${op}`), through(t, (sum) => (op === 'avg' ? sum / peers.size : sum))),
        // Only the root's values count: the others contribute zeros.
        broadcast: async (t, root) => {
          this.calls.push(`broadcast ${root}`);
          if (peers.rank !== root) this.fill(t, 0);
          await through(t, (sum) => sum);
        },
        reduceScatter: () => Promise.reject(new Error('not needed by this test')),
        allGather: () => Promise.reject(new Error('not needed by this test')),
      };
    },
  };
}

/** Every collective, with sizes that do not divide evenly, views, in-place forms and empty buffers. */
async function everyCollective(comm: Communicator, backendName: BackendName): Promise<Record<string, unknown>> {
  {
    const { b, group } = await bound(comm, backendName);
    const J = group.size;
    const r = group.rank;
    const out: Record<string, unknown> = {};

    const big = filled(b, SIZES.big, 'f32', 1, r);
    await group.allReduce(big, 'sum');
    out.allReduceSum = arr(b, big);

    const small = filled(b, SIZES.small, 'f64', 2, r);
    await group.allReduce(small, 'avg');
    out.allReduceAvg = arr(b, small);

    // A view: only its window changes.
    const host = filled(b, 300, 'f32', 3, r);
    await group.allReduce(b.view(host, 100, [150]), 'sum');
    out.viewReduce = arr(b, host);

    const empty = b.alloc([0], 'f32');
    await group.allReduce(empty, 'sum');

    // Reduce-scatter out of place (sum, f32) and in place into this rank's shard (avg, f64).
    const rsIn = filled(b, SIZES.shard * J, 'f32', 4, r);
    const rsOut = b.alloc([SIZES.shard], 'f32');
    await group.reduceScatter(rsOut, rsIn, 'sum');
    out.reduceScatter = arr(b, rsOut);
    const rsIn2 = filled(b, SIZES.shard * J, 'f64', 5, r);
    await group.reduceScatter(b.view(rsIn2, r * SIZES.shard, [SIZES.shard]), rsIn2, 'avg');
    out.reduceScatterInPlace = arr(b, b.view(rsIn2, r * SIZES.shard, [SIZES.shard]));

    // All-gather out of place (f32) and in place (i32).
    const shard = filled(b, SIZES.gather, 'f32', 6, r);
    const gathered = b.alloc([SIZES.gather * J], 'f32');
    await group.allGather(gathered, shard);
    out.allGather = arr(b, gathered);
    const whole = b.alloc([SIZES.gather * J], 'i32');
    const mine = b.view(whole, r * SIZES.gather, [SIZES.gather]);
    b.upload(mine, Int32Array.from({ length: SIZES.gather }, (_, i) => r * 100000 + i));
    await group.allGather(whole, mine);
    out.allGatherInPlace = arr(b, whole);

    // Broadcast from the last rank.
    const bc = filled(b, SIZES.bcast, 'f64', 7, r);
    await group.broadcast(bc, J - 1);
    out.broadcast = arr(b, bc);
    const bcI = filled(b, 5, 'i32', 0, r);
    await group.broadcast(bcI, J - 1);
    out.broadcastI32 = arr(b, bcI);

    out.scalarsSum = Array.from(await group.allReduceScalars(Float64Array.of(r, 1, r * r + 0.1), 'sum'));
    out.scalarsAvg = Array.from(await group.allReduceScalars(Float64Array.of(r, 1), 'avg'));
    out.scalarsEmpty = Array.from(await group.allReduceScalars(new Float64Array(0), 'sum'));
    await group.barrier();
    out.stats = group.collectiveStats?.() ?? null;
    return out;
  }
}

export const scenarios: Record<string, Scenario> = {
  /** A backend with its own collectives: the group connects it once and hands it every tensor collective. */
  async ownCollectives(comm) {
    const b = new OwnCollectivesBackend();
    const group = await bindProcessGroup(comm, b);
    const t = filled(b, 5, 'f64', 1, comm.rank);
    await group.allReduce(t, 'sum');
    const bc = filled(b, 3, 'f64', 2, comm.rank);
    await group.broadcast(bc, 1);
    return { connectedAs: b.connectedAs, calls: b.calls, allReduce: arr(b, t), broadcast: arr(b, bc), scalarReductions: group.collectiveStats?.().allReduceScalars.count ?? null };
  },
  /** Every collective on cpu tensors (registry buffers, reduced in place). */
  collectives: (comm) => everyCollective(comm, 'cpu'),
  /** The same on ref tensors, which the group stages through registry buffers of its own. */
  collectivesStaged: (comm) => everyCollective(comm, 'ref'),

  /** Rank 0 and rank 1 disagree on the size: both calls fail, naming both. */
  async mismatch(comm) {
    const { b, group } = await bound(comm);
    const t = b.alloc([group.rank === 0 ? 10 : 11], 'f32');
    return rejection(group.allReduce(t, 'sum'));
  },

  /** Rank 1 is late by far more than the timeout: rank 0's barrier fails with a timeout naming rank 1. */
  async timeout(comm) {
    if (comm.rank === 1) {
      await new Promise((r) => setTimeout(r, 1500));
      return rejection(comm.barrier());
    }
    return rejection(comm.barrier());
  },

  /** Rank 1 fails while rank 0 waits in an all-reduce: rank 0's collective fails with rank 1's reason. */
  async abort(comm) {
    const { b, group } = await bound(comm);
    if (group.rank === 1) {
      await new Promise((r) => setTimeout(r, 200));
      group.abort!('rank 1 failed: Error: boom');
      return rejection(group.barrier());
    }
    return rejection(group.allReduce(b.alloc([1000], 'f32'), 'sum'));
  },

  /** Rank 0 waits in a barrier rank 1 never joins; the launcher aborts the group. */
  async launcherAbort(comm, ctl) {
    if (comm.rank === 1) {
      await new Promise((r) => setTimeout(r, 200));
      await ctl.abortGroup!();
      return null;
    }
    return rejection(comm.barrier());
  },

  /** Rank 0's event loop keeps running while it waits for rank 1 in a collective. */
  async eventLoop(comm) {
    await comm.barrier(); // both ranks are running from here
    if (comm.rank === 1) {
      await new Promise((r) => setTimeout(r, 300));
      await comm.barrier();
      return null;
    }
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    await comm.barrier();
    clearInterval(timer);
    return { ticks };
  },

  /** Rank 1 leaves the group at once: rank 0's next collective fails instead of waiting. */
  async leave(comm) {
    if (comm.rank === 1) {
      await comm.close();
      return null;
    }
    await new Promise((r) => setTimeout(r, 100));
    return rejection(comm.barrier());
  },

  /** Bad arguments are errors at the call (nothing is queued, the group stays usable). */
  async validation(comm) {
    const { b, group } = await bound(comm);
    const ref = createBackend('ref');
    const errors: string[] = [];
    const capture = async (f: () => Promise<unknown>): Promise<void> => {
      try {
        await f();
        errors.push('no error');
      } catch (e) {
        errors.push((e as Error).message);
      }
    };
    await capture(() => group.allReduce(ref.alloc([4], 'f32'), 'sum'));
    await capture(() => group.reduceScatter(b.alloc([3], 'f32'), b.alloc([7], 'f32'), 'sum'));
    await capture(() => group.allGather(b.alloc([7], 'f32'), b.alloc([3], 'f32')));
    await capture(() => group.allReduce(b.alloc([4], 'i32'), 'sum'));
    const freed = b.alloc([4], 'f32');
    b.free(freed);
    await capture(() => group.allReduce(freed, 'sum'));
    // Still usable afterwards.
    const t = b.alloc([3], 'f32');
    b.upload(t, [group.rank, 1, 2]);
    await group.allReduce(t, 'sum');
    return { errors, after: arr(b, t) };
  },

  /** Start-up agreement: equal configs give every rank rank 0's clock; a differing one fails on every rank. */
  async agreement(comm) {
    const same = (await agreeOnRun(comm, { seed: 1, batch: { schedule: 'norm' } })).getTime();
    const differ = await rejection(agreeOnRun(comm, { seed: comm.rank === 1 ? 2 : 1, batch: { schedule: 'norm' } }));
    return { same, differ };
  },
};
