/**
 * Data mixtures: the schedule realises the weights exactly per block and within one sample on every
 * prefix, maps sample indices one-to-one onto each source's samples in order; the mixture's windows
 * are random access (resume from any k), disjoint across ranks; config refusals name the field; and a
 * two-source run from two prepared folders logs tokens per source that add up, resumes bit-exactly,
 * and the report shows them. Mismatched tokenizers are refused naming both sources.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { brownDocuments } from '../src/data/brown.js';
import { openCorpus } from '../src/data/corpus.js';
import { loadDataset, parseDataConfig } from '../src/data/dataset.js';
import { MAX_BLOCK, MixtureSchedule, MixtureWindows } from '../src/data/mixture.js';
import { PackedWindows, shardStep } from '../src/data/sampler.js';
import { prepareShards } from '../src/data/shards/prepare.js';
import { trainTokenizer, type Tokenizer } from '../src/data/tokenizer.js';
import { readCheckpoint } from '../src/io/checkpoint.js';
import { readMetrics } from '../src/io/metrics.js';
import { formatSummaryTable, loadRun, summarizeRun } from '../src/report/runs.js';
import { loadTrainConfig } from '../src/train/config.js';
import { Progress } from '../src/train/progress.js';
import { loadResumeConfig } from '../src/train/resume.js';
import { runTrain } from '../src/train/run.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './helpers/tmp.js';

const weightsArb = fc.oneof(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 6 }), fc.array(fc.double({ min: 0.01, max: 1, noNaN: true }), { minLength: 1, maxLength: 6 }));
const scheduleOf = (weights: readonly number[]): MixtureSchedule => new MixtureSchedule(weights.map((weight, i) => ({ name: `s${i}`, weight })));

test('blocks realise the weights exactly; every prefix is within one sample of k·q_s/B; j runs 0, 1, 2, … per source', () => {
  assert.deepEqual([scheduleOf([0.7, 0.3]).block, scheduleOf([0.7, 0.3]).perBlock], [10, [7, 3]]);
  assert.deepEqual([scheduleOf([7, 3]).block, scheduleOf([7, 3]).perBlock], [10, [7, 3]], 'weights are relative');
  assert.deepEqual([scheduleOf([2, 1]).block, scheduleOf([2, 1]).perBlock], [3, [2, 1]]);
  assert.deepEqual([scheduleOf([1]).block, scheduleOf([1]).perBlock], [1, [1]]);
  const irrational = scheduleOf([Math.SQRT2, 1]);
  assert.equal(irrational.block, MAX_BLOCK);
  assert.ok(Math.abs(irrational.perBlock[0]! / MAX_BLOCK - Math.SQRT2 / (1 + Math.SQRT2)) < 1 / MAX_BLOCK);
  // 0.7/0.3 interleaved, not in runs.
  assert.deepEqual(Array.from({ length: 10 }, (_, k) => scheduleOf([0.7, 0.3]).at(k).source), [0, 0, 1, 0, 0, 1, 0, 0, 0, 1]);

  fc.assert(
    fc.property(weightsArb, fc.nat(), (weights, probe) => {
      const sch = scheduleOf(weights);
      const B = sch.block;
      const total = weights.reduce((a, b) => a + b, 0);
      assert.equal(sch.perBlock.reduce((a, b) => a + b, 0), B);
      sch.perBlock.forEach((q, s) => assert.ok(Math.abs(q / B - weights[s]! / total) < 1 / B + 1e-12, `share of s${s}`));
      const seen = new Array<number>(weights.length).fill(0);
      const end = Math.min(2 * B + 7, 25_000);
      for (let k = 0; k < end; k++) {
        const { source, index } = sch.at(k);
        assert.equal(index, seen[source], `sample ${k} reads the next sample of s${source}`);
        seen[source]!++;
        seen.forEach((c, s) => assert.ok(Math.abs(c - ((k + 1) * sch.perBlock[s]!) / B) < 1, `prefix ${k + 1}: s${s} has ${c}`));
        assert.equal(sch.samplesBefore(source, index), k);
      }
      const k = probe % end;
      const counts = sch.counts(k);
      assert.equal(counts.reduce((a, b) => a + b, 0), k);
      const recount = new Array<number>(weights.length).fill(0);
      for (let i = 0; i < k; i++) recount[sch.at(i).source]!++;
      assert.deepEqual(counts, recount);
      // Far out (block n), the same pattern: c_s(n·B + r) = n·q_s + c_s(r).
      const far = 1e9 * B + (probe % B);
      assert.deepEqual(sch.counts(far), sch.counts(probe % B).map((c, s) => c + 1e9 * sch.perBlock[s]!));
    }),
    { numRuns: 60 },
  );
});

/** Source s's stream: token values s·10⁶ + position, so a window tells whose and where it is. */
function sources(lengths: readonly number[], seqLen: number, seed: number): PackedWindows[] {
  return lengths.map((n, s) => new PackedWindows(Int32Array.from({ length: n }, (_, i) => s * 1e6 + i), seqLen, { shuffleSeed: seed + s }));
}

test('mixture windows: random access (resume at any k), disjoint across ranks, each from its source by the schedule', () => {
  const seqLen = 4;
  fc.assert(
    fc.property(weightsArb, fc.nat({ max: 500 }), fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 6 }), (weights, start, batch, ranks, micro) => {
      const srcs = sources(weights.map((_, s) => 40 + 13 * s), seqLen, 7);
      const sch = scheduleOf(weights);
      const mix = new MixtureWindows(sch, srcs);
      const width = seqLen + 1;
      const all = mix.windows(start, batch);
      for (let i = 0; i < batch; i++) {
        const { source, index } = sch.at(start + i);
        assert.deepEqual(all.subarray(i * width, (i + 1) * width), srcs[source]!.windows(index, 1), `sample ${start + i}`);
        assert.deepEqual(mix.windows(start + i, 1), all.subarray(i * width, (i + 1) * width), 'one at a time = all at once');
      }
      // Ranks' micro-batches, concatenated in rank order, are the step's samples: nothing read twice.
      const parts = shardStep(start, batch, ranks, micro).flatMap((r) => r.micro.map((m) => mix.windows(m.start, m.count)));
      assert.deepEqual(Int32Array.from(parts.flatMap((p) => [...p])), all);
      const tokens = mix.tokensBySource(start + batch);
      assert.equal(Object.values(tokens).reduce((a, b) => a + b, 0), (start + batch) * seqLen);
    }),
    { numRuns: 80 },
  );
  // windowsPerEpoch: the samples before some source starts its second pass.
  const sch = scheduleOf([0.7, 0.3]);
  const mix = new MixtureWindows(sch, sources([41, 41], seqLen, 1)); // 10 windows each
  assert.equal(mix.windowsPerEpoch, 14, 'the 0.7 source runs out first: its 10 windows take 14 samples');
  assert.deepEqual(mix.cursorAt(15), { epoch: 1, position: 1 });
});

test('mixture configs: names unique, weights positive, one kind of data; errors name the field', () => {
  const bad = (cfg: unknown, pattern: RegExp): void => assert.throws(() => parseDataConfig(cfg), (e: unknown) => e instanceof UserError && pattern.test(e.message), JSON.stringify(cfg));
  const src = (name: string, weight: number): unknown => ({ name, weight, shards: `/d/${name}` });
  bad({ mixture: [src('web', 1), src('web', 2)] }, /data\.mixture\.1\.name: source name web is used twice/);
  bad({ mixture: [src('web', 0), src('code', 1)] }, /data\.mixture\.0\.weight/);
  bad({ mixture: [src('web', -1)] }, /data\.mixture\.0\.weight/);
  bad({ mixture: [src('web code', 1)] }, /data\.mixture\.0\.name: a source name is letters, digits/);
  bad({ mixture: [src('web', 1), src('rare', 1e-5)] }, /data\.mixture\.1\.weight: rare would get .* under the smallest share a mixture realises \(1\/10000\)/);
  bad({ mixture: [] }, /data\.mixture/);
  bad({ mixture: [src('web', 1)], shards: '/d' }, /data\.shards: give data\.shards or data\.mixture, not both \(a mixture names the shards of each source\)/);
  bad({ mixture: [{ name: 'web', weight: 1 }] }, /data\.mixture\.0\.shards/);
  bad({ mixture: [src('web', 1)], tokenizer: { vocab: 300 } }, /data\.tokenizer\.vocab/);
  const ok = parseDataConfig({ mixture: [src('web', 0.7), src('code', 0.3)], val_windows: 16 });
  assert.ok('mixture' in ok && ok.mixture.length === 2 && ok.val_windows === 16);
});

// Two prepared folders with one tokenizer (web: Brown prose, code: other Brown texts), one with another.
const dir = tempDir('adabatch-mixture-');
const brown = brownDocuments();
const tokenizer = trainTokenizer(brown.slice(0, 10).map((d) => d.text.slice(0, 3000)), { vocab: 300 });

async function prepareFolder(name: string, from: number, tok: Tokenizer): Promise<string> {
  const corpusDir = join(dir, `${name}-corpus`);
  mkdirSync(corpusDir);
  brown.slice(from, from + 25).forEach((d, i) => writeFileSync(join(corpusDir, `doc${String(i).padStart(2, '0')}.txt`), d.text.slice(0, 2500)));
  const out = join(dir, name);
  await prepareShards({ out, inputs: [{ kind: 'corpus', corpus: openCorpus({ paths: [corpusDir] }) }], descriptions: [name], tokenizer: tok, threads: 1, shardTokens: 8000 });
  return out;
}
const folders = Promise.all([prepareFolder('web', 100, tokenizer), prepareFolder('code', 300, tokenizer), prepareFolder('other', 400, trainTokenizer(brown.slice(20, 30).map((d) => d.text.slice(0, 3000)), { vocab: 300 }))]);

test('sources prepared with different tokenizers are refused, naming both', async () => {
  const [web, , other] = await folders;
  await assert.rejects(
    loadDataset({ mixture: [{ name: 'web', weight: 1, shards: web }, { name: 'books', weight: 1, shards: other }] }, { seqLen: 16, seed: 0 }),
    (e: unknown) => e instanceof UserError && /data\.mixture: sources web \(.*web\) and books \(.*other\) were prepared with different tokenizers \(tokenizer hash/.test(e.message),
  );
});

test('a two-source run logs tokens per source that add up, resumes bit-exactly, and the report shows them', async () => {
  const [web, code] = await folders;
  const quiet = { log: () => {}, progress: new Progress(process.stderr, 1e9, false) };
  const sets = (runDir: string): string[] => [
    `run_dir=${runDir}`,
    'model.preset=tiny',
    'model.n_layers=1',
    'model.seq_len=16',
    `data={mixture: [{name: web, weight: 0.7, shards: ${web}}, {name: code, weight: 0.3, shards: ${code}}], val_fraction: 0.2}`,
    'batch={schedule: constant, batch: 6, max_micro: 3}',
    'budget.samples=36',
    'eval.every_samples=12',
    'eval.windows=8',
    'threads=1',
  ];
  const straightDir = join(dir, 'straight');
  const a = await runTrain(loadTrainConfig(undefined, sets(straightDir)), quiet);
  assert.equal(a.samples, 36);
  const rows = readMetrics(join(straightDir, 'metrics.jsonl'));
  const sch = scheduleOf([0.7, 0.3]);
  for (const r of rows) {
    const bySource = r.tokens_by_source as Record<string, number>;
    const [webSamples, codeSamples] = sch.counts(r.samples as number);
    assert.deepEqual(bySource, { web: webSamples! * 16, code: codeSamples! * 16 }, `row ${r.step}`);
    assert.equal(bySource.web! + bySource.code!, r.tokens);
  }
  assert.ok(rows.some((r) => typeof r.val_loss === 'number'), 'validation mixes the sources too');

  const resumedDir = join(dir, 'resumed');
  let steps = 0;
  const first = await runTrain(loadTrainConfig(undefined, sets(resumedDir)), { ...quiet, shouldStop: () => ++steps >= 3 });
  assert.ok(first.stoppedEarly && first.steps === 3);
  const b = await runTrain(loadResumeConfig(resumedDir, undefined, []), { ...quiet, resume: true });
  assert.equal(b.steps, a.steps);
  const ca = readCheckpoint(a.checkpoint!);
  const cb = readCheckpoint(b.checkpoint!);
  for (const [name, t] of ca.model) assert.deepEqual(cb.model.get(name), t, `parameter ${name} is bit-identical`);
  const clock = ['tok_per_s', 'step_time_s', 'elapsed_s', 'overhead_s', 'stats_s', 'eval_s'];
  const strip = (rs: typeof rows): unknown[] => rs.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !clock.includes(k))));
  assert.deepEqual(strip(readMetrics(join(resumedDir, 'metrics.jsonl'))), strip(rows), 'identical metrics rows apart from wall-clock fields');

  const summary = summarizeRun(loadRun(straightDir));
  assert.deepEqual(summary.tokensBySource, rows.at(-1)!.tokens_by_source);
  const table = formatSummaryTable([summary]);
  assert.match(table, /tokens by source/);
  assert.match(table, /web 400 \(69%\), code 176 \(31%\)/);
});
