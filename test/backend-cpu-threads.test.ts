/**
 * Threads: the addon loads in worker_threads (context-aware), single-threaded backend instances in
 * several workers call oneDNN concurrently and still equal ref, oneDNN starts no OpenMP threads of
 * its own (2 ranks × 1 thread use 2 threads), buffer ids come from one process-global registry, a
 * worker's buffers are released when it exits, and kernel results do not depend on the number of
 * pool threads.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { CpuBackend } from '../src/backend/cpu/index.js';
import { loadNativeAddon } from '../src/addon/addon.js';
import { RefBackend } from '../src/backend/ref/index.js';
import { randInts, randn, relL2 } from './helpers/num.js';

interface WorkerReport {
  maxErr: number;
  ids: number[];
  threads: number;
}

/** In a worker: GEMMs and attention on a single-threaded cpu backend, checked against ref. */
function workerMain(seed: number): WorkerReport {
  const cpu = new CpuBackend({ threads: 1 });
  const ref = new RefBackend();
  let maxErr = 0;
  const ids: number[] = [];
  for (let rep = 0; rep < 12; rep++) {
    const [m, n, k] = [96 + rep, 80, 72];
    const A = Float32Array.from(randn(m * k, seed * 100 + rep));
    const B = Float32Array.from(randn(k * n, seed * 100 + rep + 50));
    const run = (be: CpuBackend | RefBackend): Float64Array => {
      const a = be.alloc([m, k]);
      const b = be.alloc([n, k]);
      const c = be.alloc([m, n]);
      be.upload(a, A);
      be.upload(b, B.subarray(0, n * k));
      be.matmul(c, a, b, false, true);
      if (be === cpu) ids.push(a.buffer, b.buffer, c.buffer);
      return Float64Array.from(be.download(c));
    };
    maxErr = Math.max(maxErr, relL2(run(cpu), run(ref)));
  }
  const dims = { batch: 2, seqLen: 70, nHeads: 4, nKvHeads: 2, headDim: 8 };
  const width = 8 * 8;
  const q = Float32Array.from(randn(140 * width, seed));
  const attn = (be: CpuBackend | RefBackend): Float64Array => {
    const qkv = be.alloc([140, width]);
    be.upload(qkv, q);
    const out = be.alloc([140, 32]);
    be.attentionForward(out, be.alloc([2 * 4 * 70]), qkv, dims);
    return Float64Array.from(be.download(out));
  };
  maxErr = Math.max(maxErr, relL2(attn(cpu), attn(ref)) / 10); // attention tolerance is 1e-4
  return { maxErr, ids, threads: cpu.getThreads() };
}

if (!isMainThread) {
  parentPort!.postMessage(workerMain(workerData as number));
} else {
  const runWorker = (seed: number): Promise<WorkerReport> =>
    new Promise((resolve, reject) => {
      const w = new Worker(new URL(import.meta.url), { workerData: seed });
      w.once('message', (m: WorkerReport) => resolve(m));
      w.once('error', reject);
    });

  test('single-threaded backends in concurrent worker_threads equal ref, with process-unique buffer ids', async () => {
    const reports = await Promise.all([1, 2, 3].map(runWorker));
    for (const r of reports) {
      assert.equal(r.threads, 1);
      assert.ok(r.maxErr < 1e-5, `worker result differs from ref: rel L2 ${r.maxErr}`);
    }
    const all = reports.flatMap((r) => r.ids);
    assert.equal(new Set(all).size, all.length, 'buffer ids are unique across workers');
  });

  test('two single-threaded ranks in one process run their GEMMs (f32 and bf16) without any further thread: oneDNN starts no OpenMP team', () => {
    // In a child, so nothing else in the process starts threads meanwhile. Each worker builds its
    // backend and runs one small GEMM (the addon and oneDNN are loaded), reports ready, then runs
    // large GEMMs; the process's thread count must not change. Without the team size of one, each
    // calling thread would start its own OpenMP team (measured: +1 thread per worker by default on
    // 2 cores, +3 with OMP_NUM_THREADS=4).
    const cpuModule = new URL('../src/backend/cpu/index.js', import.meta.url).href;
    const script = `
      import { Worker } from 'node:worker_threads';
      import { readdirSync } from 'node:fs';
      const threads = () => readdirSync('/proc/self/task').length;
      const body = \`
        const { parentPort } = await import('node:worker_threads');
        const { CpuBackend, gemmConfig } = await import(${JSON.stringify(cpuModule)});
        const be = new CpuBackend({ threads: 1 });
        const gemm = (n, dtype) => { const a = be.alloc([n, n], dtype), b = be.alloc([n, n], dtype), c = be.alloc([n, n]); be.fill(a, 0.5); be.fill(b, 0.25); be.matmul(c, a, b, false, true); return be.download(c)[0]; };
        gemm(8, 'f32');
        parentPort.postMessage('ready');
        parentPort.once('message', () => {
          let x = gemm(768, 'f32');
          if (gemmConfig().bf16) x += gemm(768, 'bf16');
          parentPort.postMessage(x);
        });
      \`;
      const workers = [0, 1].map(() => new Worker(body, { eval: true }));
      await Promise.all(workers.map((w) => new Promise((r) => w.once('message', r))));
      const before = threads();
      const results = await Promise.all(workers.map((w) => { const p = new Promise((r) => w.once('message', r)); w.postMessage('go'); return p; }));
      console.log(JSON.stringify({ before, after: threads(), results }));
      await Promise.all(workers.map((w) => w.terminate()));
    `;
    // OMP_NUM_THREADS=4 asks libgomp for teams of 4: a GEMM that honoured it would add 3 threads per worker.
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '4' } });
    assert.equal(r.status, 0, r.stderr);
    const { before, after, results } = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { before: number; after: number; results: number[] };
    for (const x of results) assert.ok(x === 768 * 0.125 || x === 2 * 768 * 0.125, `GEMM result ${x}`);
    // (Node may retire an idle internal thread meanwhile: fewer is fine, more is not.)
    assert.ok(after <= before, `threads before the large GEMMs ${before}, after ${after}: GEMMs started threads`);
  });

  test("a worker's buffers are released when it exits", async () => {
    const addon = loadNativeAddon();
    const report = await runWorker(7);
    assert.ok(report.ids.length > 0);
    // Worker teardown finalizes its backend instances, which free their buffers.
    const deadline = Date.now() + 5000;
    while (report.ids.some((id) => addon.bufferIsLive(id)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(report.ids.filter((id) => addon.bufferIsLive(id)), [], 'buffers of the exited worker');
    const mine = new CpuBackend().alloc([3]);
    assert.ok(addon.bufferIsLive(mine.buffer), 'a live buffer of this thread is reported live');
  });

  test('kernel results are bit-identical for 1, 2 and 3 pool threads', () => {
    const results = [1, 2, 3].map((threads) => {
      const be = new CpuBackend({ threads });
      const rows = 1037;
      const dim = 65;
      const vocab = 301;
      const put = (data: ArrayLike<number>, shape: number[], dtype: 'f32' | 'f64' | 'i32' = 'f32') => {
        const t = be.alloc(shape, dtype);
        be.upload(t, data);
        return t;
      };
      const x = put(randn(rows * dim, 1), [rows, dim]);
      const w = put(randn(dim, 2), [dim]);
      const out = be.alloc([rows, dim]);
      const rstd = be.alloc([rows]);
      be.rmsnormForward(out, rstd, x, w, 1e-5);
      const dx = be.alloc([rows, dim]);
      const dw = be.alloc([dim]);
      be.rmsnormBackward(dx, dw, put(randn(rows * dim, 3), [rows, dim]), x, w, rstd, false);
      const stats = be.alloc([4], 'f64');
      const big = put(randn(200003, 4), [200003]);
      be.sumSquares(big, stats, 0);
      be.accumulateWithNorm(put(randn(200003, 5), [200003]), 0.5, big, stats, 1);
      const headW = put(randn(vocab * dim, 6, 0.1), [vocab, dim]);
      const g = { dx: be.alloc([rows, dim]), dNormW: be.alloc([dim]), dHeadW: be.alloc([vocab, dim]), gradScale: 0.01 };
      be.headLoss({ x, normW: w, headW, targets: put(randInts(rows, vocab, 7), [rows], 'i32'), eps: 1e-5, lossOut: stats, lossIndex: 2, grads: g, chunkTokens: 200 });
      const gu = put(randn(rows * 2 * dim, 8), [rows, 2 * dim]);
      const h = be.alloc([rows, dim]);
      be.swigluForward(h, gu);
      const res = [out, rstd, dx, dw, stats, g.dx, g.dNormW, h].map((t) => Array.from(be.download(t)));
      be.dispose();
      return res;
    });
    // GEMM blocks differ between thread counts, so head-loss outputs are compared to a tolerance;
    // everything else must match exactly.
    for (const i of [0, 1, 2, 3, 7]) {
      assert.deepEqual(results[1]![i], results[0]![i], `output ${i} (2 threads)`);
      assert.deepEqual(results[2]![i], results[0]![i], `output ${i} (3 threads)`);
    }
    for (const r of results.slice(1)) {
      assert.deepEqual(r[4]!.slice(0, 2), results[0]![4]!.slice(0, 2), 'float64 statistics');
      for (const i of [4, 5, 6]) assert.ok(relL2(r[i]!, results[0]![i]!) < 1e-6, `head loss output ${i}`);
    }
  });
}
