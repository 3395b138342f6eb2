/**
 * The `threads` and `mpi` process groups' collectives against closed-form references: every
 * collective on float32/float64/int32 buffers (sizes that do not divide evenly, views, in-place
 * reduce-scatter and all-gather, empty buffers), bit-identical results on every rank, and the
 * failure paths: mismatched calls, a late rank (timeout), an aborting rank, an abort from the
 * launcher, a rank that leaves, bad arguments; and a rank's event loop keeps running while it waits.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { nativeAddonAvailable } from '../src/addon/addon.js';
import { mpiSkipReason, scenarioOnMpi, scenarioOnThreads } from './helpers/ranks.js';
import { inputValue, SIZES } from './helpers/collective-scenarios.js';

const noAddon = nativeAddonAvailable() ? false : 'the native addon is not built (npm run build:native)';
const noMpi = noAddon || mpiSkipReason() || false;

type Results = Record<string, number[]> & { stats: Record<string, { count: number; seconds: number }> | null };

/** Σ over ranks in rank order, rounding like float32 after every addition. */
function sumF32(J: number, k: number, i: number): number {
  let acc = inputValue(k, 0, i);
  for (let r = 1; r < J; r++) acc = Math.fround(acc + inputValue(k, r, i));
  return acc;
}

function sumF64(J: number, k: number, i: number): number {
  let acc = inputValue(k, 0, i);
  for (let r = 1; r < J; r++) acc += inputValue(k, r, i);
  return acc;
}

function close(a: number, b: number, tol: number, what: string): void {
  if (!(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)))) assert.fail(`${what}: ${a} vs ${b}`);
}

/**
 * Checks one rank's results. `exactOrder`: sums must equal rank-order summation bit for bit (the
 * threads transport's documented order); otherwise (MPI chooses its own order) within rounding.
 */
function checkCollectives(J: number, rank: number, res: Results, exactOrder: boolean): void {
  const tag = `J=${J} rank ${rank}`;
  const eq = (got: number, want: number, what: string, tol: number): void => (exactOrder ? assert.equal(got, want, what) : close(got, want, tol, what));

  assert.equal(res.allReduceSum!.length, SIZES.big);
  for (let i = 0; i < SIZES.big; i += i < 5000 ? 1 : 997) eq(res.allReduceSum![i]!, sumF32(J, 1, i), `${tag} allReduce sum [${i}]`, 1e-6);
  eq(res.allReduceSum![SIZES.big - 1]!, sumF32(J, 1, SIZES.big - 1), `${tag} allReduce sum [last]`, 1e-6);
  for (let i = 0; i < SIZES.small; i++) eq(res.allReduceAvg![i]!, sumF64(J, 2, i) * (1 / J), `${tag} allReduce avg [${i}]`, 1e-14);

  for (let i = 0; i < 300; i++) {
    const inside = i >= 100 && i < 250;
    if (inside) eq(res.viewReduce![i]!, sumF32(J, 3, i), `${tag} view [${i}]`, 1e-6);
    else assert.equal(res.viewReduce![i], inputValue(3, rank, i), `${tag} outside the view [${i}] is untouched`);
  }

  for (let i = 0; i < SIZES.shard; i++) {
    const g = rank * SIZES.shard + i;
    eq(res.reduceScatter![i]!, sumF32(J, 4, g), `${tag} reduceScatter [${i}]`, 1e-6);
    eq(res.reduceScatterInPlace![i]!, sumF64(J, 5, g) * (1 / J), `${tag} reduceScatter in place [${i}]`, 1e-14);
  }
  for (let k = 0; k < J; k++) {
    for (let i = 0; i < SIZES.gather; i++) {
      assert.equal(res.allGather![k * SIZES.gather + i], inputValue(6, k, i), `${tag} allGather [${k}][${i}]`);
      assert.equal(res.allGatherInPlace![k * SIZES.gather + i], k * 100000 + i, `${tag} allGather in place [${k}][${i}]`);
    }
  }
  for (let i = 0; i < SIZES.bcast; i++) assert.equal(res.broadcast![i], inputValue(7, J - 1, i), `${tag} broadcast [${i}]`);
  assert.deepEqual(res.broadcastI32, [0, 1, 2, 3, 4].map((i) => (J - 1) * 100000 + i));

  let rs = 0;
  let sq = 0;
  for (let r = 0; r < J; r++) {
    rs += r;
    sq += r * r + 0.1;
  }
  assert.deepEqual(res.scalarsSum, [rs, J, sq], `${tag} scalar sums in rank order`);
  assert.deepEqual(res.scalarsAvg, [rs / J, 1]);
  assert.deepEqual(res.scalarsEmpty, []);
  assert.ok(res.stats && res.stats.allReduce!.count === 4 && res.stats.broadcast!.count === 2 && res.stats.allReduce!.seconds >= 0, `${tag} collective stats ${JSON.stringify(res.stats)}`);
}

function checkIdentical(all: Results[]): void {
  for (const key of ['allReduceSum', 'allReduceAvg', 'allGather', 'broadcast', 'scalarsSum'] as const) {
    for (let r = 1; r < all.length; r++) assert.deepEqual(all[r]![key], all[0]![key], `rank ${r} holds the same ${key} bits as rank 0`);
  }
  const window = (a: number[]): number[] => a.slice(100, 250);
  for (let r = 1; r < all.length; r++) assert.deepEqual(window(all[r]!.viewReduce!), window(all[0]!.viewReduce!));
}

for (const J of [2, 4]) {
  test(`threads, ${J} ranks: every collective matches its closed form, in rank order, identically on every rank`, { skip: noAddon }, async () => {
    const all = (await scenarioOnThreads(J, 'collectives')) as Results[];
    all.forEach((res, rank) => checkCollectives(J, rank, res, true));
    checkIdentical(all);
  });
}

test('threads, 3 ranks on the ref backend (staged through host buffers): every collective matches its closed form, identically on every rank', { skip: noAddon }, async () => {
  const all = (await scenarioOnThreads(3, 'collectivesStaged')) as Results[];
  all.forEach((res, rank) => checkCollectives(3, rank, res, true));
  checkIdentical(all);
});

test('threads, 2 ranks, a backend with its own collectives: connected once per rank, every tensor collective goes to it', { skip: noAddon }, async () => {
  const all = (await scenarioOnThreads(2, 'ownCollectives')) as Array<{ connectedAs: { rank: number; size: number }; calls: string[]; allReduce: number[]; broadcast: number[]; scalarReductions: number | null }>;
  all.forEach((res, rank) => {
    assert.deepEqual(res.connectedAs, { rank, size: 2 });
    assert.deepEqual(res.calls, ['allReduce sum', 'broadcast 1']);
    res.allReduce.forEach((v, i) => assert.ok(Math.abs(v - (inputValue(1, 0, i) + inputValue(1, 1, i))) < 1e-12, `rank ${rank} allReduce [${i}]`));
    res.broadcast.forEach((v, i) => assert.equal(v, inputValue(2, 1, i), `rank ${rank} broadcast [${i}]`));
    assert.equal(res.scalarReductions, 2, 'the backend used the scalar channel the group gave it');
  });
});

test('mpi, 3 ranks: every collective matches its closed form, identically on every rank', { skip: noMpi }, () => {
  const all = scenarioOnMpi(3, 'collectives') as Results[];
  all.forEach((res, rank) => checkCollectives(3, rank, res, false));
  checkIdentical(all);
});

test('threads: mismatched collectives fail on every rank, naming both calls', { skip: noAddon }, async () => {
  const [a, b] = (await scenarioOnThreads(2, 'mismatch')) as Array<{ message: string; code: string }>;
  for (const e of [a!, b!]) {
    assert.match(e.message, /collective mismatch: rank 0 called allReduce #0 \(f32 × 10, sum\) but rank 1 called allReduce #0 \(f32 × 11, sum\)/);
  }
});

test('threads: a rank that is late past the timeout fails its peers with a timeout naming it', { skip: noAddon }, async () => {
  const [a, b] = (await scenarioOnThreads(2, 'timeout', 0.5)) as Array<{ message: string; code: string; name: string }>;
  assert.equal(a!.code, 'ADABATCH_COMM_TIMEOUT');
  assert.equal(a!.name, 'CollectiveAbortedError');
  assert.match(a!.message, /rank 0: barrier #0 timed out after 0\.5 s waiting for rank\(s\) 1/);
  // The late rank learns why when it arrives.
  assert.equal(b!.code, 'ADABATCH_COMM_TIMEOUT');
  assert.match(b!.message, /waiting for rank\(s\) 1/);
});

test("threads: a rank's abort wakes a peer blocked in an all-reduce with its reason", { skip: noAddon }, async () => {
  const [a, b] = (await scenarioOnThreads(2, 'abort')) as Array<{ message: string; code: string }>;
  assert.equal(a!.code, 'ADABATCH_COMM_ABORTED');
  assert.equal(a!.message, 'rank 1 failed: Error: boom');
  assert.equal(b!.message, 'rank 1 failed: Error: boom', 'later collectives of the aborted group fail too');
});

test('threads: the launcher can abort a group whose ranks are blocked', { skip: noAddon }, async () => {
  const [a] = (await scenarioOnThreads(2, 'launcherAbort')) as Array<{ message: string; code: string }>;
  assert.equal(a!.message, 'the launcher stopped the run');
});

test('threads: a rank that left the group fails its peers instead of leaving them waiting', { skip: noAddon }, async () => {
  const [a] = (await scenarioOnThreads(2, 'leave')) as Array<{ message: string }>;
  assert.match(a!.message, /rank 1 left the group while rank 0 waits in barrier #0/);
});

test("threads and mpi: a rank's event loop runs while it waits in a collective", { skip: noAddon }, async () => {
  const [a] = (await scenarioOnThreads(2, 'eventLoop')) as Array<{ ticks: number }>;
  assert.ok(a!.ticks >= 5, `timer ticks during a 300 ms wait: ${a!.ticks}`);
  if (noMpi) return;
  const [m] = scenarioOnMpi(2, 'eventLoop') as Array<{ ticks: number }>;
  assert.ok(m!.ticks >= 5, `mpi: timer ticks during a 300 ms wait: ${m!.ticks}`);
});

test('threads: bad arguments fail at the call and leave the group usable', { skip: noAddon }, async () => {
  const [a] = (await scenarioOnThreads(2, 'validation')) as Array<{ errors: string[]; after: number[] }>;
  const e = a!.errors;
  assert.match(e[0]!, /allReduce: t is a 'ref' tensor; this process group is bound to the 'cpu' backend/);
  assert.match(e[1]!, /input must hold size × out elements \(2 × 3\), has 7/);
  assert.match(e[2]!, /out must hold size × shard elements \(2 × 3\), has 7/);
  assert.match(e[3]!, /must be f32 or f64, got i32/);
  assert.match(e[4]!, /was freed/);
  assert.deepEqual(a!.after, [1, 2, 4]);
});
