/**
 * Token shards (src/data/shards/): `data prepare` speed and how it scales with threads (byte-identical
 * shards checked), the time to read one step's windows from shards next to a preset-A training step,
 * and, with --rss-mb, generated corpora of several sizes through `adabatch data prepare` and a short
 * `adabatch train` from the shards, each process's resident memory sampled over time — so that
 * memory can be seen not to grow with the corpus. Corpora are generated under the system temp
 * folder at run time and removed afterwards.
 *
 *   npm run bench -- data [--mb 64] [--threads 1,2] [--rounds 2] [--steps 200] [--rss-mb 100,1000] [--train-steps 20]
 *                         [--memory-up-to-mb 200]   (also train from memory, for contrast, at sizes up to this)
 *
 * Generated text: documents of 3–30 paragraphs drawn at random (seeded) from Brown, so the words and
 * their frequencies are real English; the tokenizer is a 4096-token BPE trained on Brown (preset A's).
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createBackend } from '../src/backend/registry.js';
import { brownDocuments } from '../src/data/brown.js';
import { openCorpus } from '../src/data/corpus.js';
import { openShardDataset } from '../src/data/dataset.js';
import { prepareShards } from '../src/data/shards/prepare.js';
import { loadTokenizer, trainTokenizer, type Tokenizer } from '../src/data/tokenizer.js';
import { modelConfig } from '../src/model/config.js';
import { Rng } from '../src/util/rng.js';
import { median, positiveInt, trainingStep } from './common.js';

export const summary = 'data prepare MB/s and thread scaling, window reads per step vs a preset-A step, flat RSS on generated corpora (--rss-mb)';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const MB = 1e6;
const seconds = (t0: number): number => (performance.now() - t0) / 1000;

/** CPU-seconds the whole machine has been busy, and this process (all its threads). */
function cpuSeconds(): { machine: number; ours: number } {
  const machine = cpus().reduce((n, c) => n + c.times.user + c.times.nice + c.times.sys + c.times.irq, 0) / 1000;
  const { user, system } = process.cpuUsage();
  return { machine, ours: (user + system) / 1e6 };
}

/** Writes ~`mb` MB of generated JSONL text into `dir` (files of ≤ 100 MB); returns the text's UTF-8 bytes. */
function generateCorpus(dir: string, mb: number, seed: number): number {
  mkdirSync(dir, { recursive: true });
  const paragraphs = brownDocuments().flatMap((d) => d.text.split('\n\n').filter((p) => p.length > 40));
  const rng = new Rng(seed);
  let total = 0;
  for (let file = 0; total < mb * MB; file++) {
    const fd = openSync(join(dir, `part-${String(file).padStart(4, '0')}.jsonl`), 'w');
    let inFile = 0;
    const chunk: string[] = [];
    while (inFile < 100 * MB && total < mb * MB) {
      const n = 3 + rng.int(28);
      const text = Array.from({ length: n }, () => paragraphs[rng.int(paragraphs.length)]!).join('\n\n');
      const bytes = Buffer.byteLength(text, 'utf8');
      chunk.push(JSON.stringify({ text }) + '\n');
      inFile += bytes;
      total += bytes;
      if (chunk.length >= 256) writeSync(fd, chunk.splice(0).join(''));
    }
    writeSync(fd, chunk.join(''));
    closeSync(fd);
  }
  return total;
}

interface Sampled {
  seconds: number;
  peakMb: number;
  /** [seconds since start, RSS in MB], every 0.25 s. */
  samples: Array<[number, number]>;
  stderr: string;
}

/** Runs the adabatch CLI, sampling its resident memory (threads included: they share the process). */
async function runSampled(args: string[]): Promise<Sampled> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, CI: '1' } });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdout.resume();
  const samples: Array<[number, number]> = [];
  let peakKb = 0;
  const sample = (): void => {
    try {
      const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
      samples.push([seconds(t0), kb('VmRSS') / 1024]);
      peakKb = Math.max(peakKb, kb('VmHWM'));
    } catch {
      /* exited between samples */
    }
  };
  const timer = setInterval(sample, 250);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearInterval(timer);
  if (code !== 0) throw new Error(`bench data: adabatch ${args.slice(0, 2).join(' ')} failed (exit ${code}):\n${stderr}`);
  return { seconds: seconds(t0), peakMb: peakKb / 1024, samples, stderr };
}

/** A few evenly spaced samples of a memory curve, "t s: MB" (enough to see it is flat). */
function curve(s: Sampled, points = 6): string {
  if (s.samples.length === 0) return 'n/a';
  const picks = Array.from({ length: points }, (_, i) => s.samples[Math.min(s.samples.length - 1, Math.round((i * (s.samples.length - 1)) / (points - 1)))]!);
  return picks.map(([t, mb]) => `${t.toFixed(0)}s ${mb.toFixed(0)}`).join(', ') + ' MB';
}

const print = (k: string, v: string): void => console.log(`  ${k.padEnd(44)}${v}`);
const A = modelConfig('A');
/** Preset A's global batch in the main job (docs/performance.md, the training loop's cost). */
const BATCH = 16;

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { mb: { type: 'string', default: '64' }, threads: { type: 'string', default: '1,2' }, rounds: { type: 'string', default: '2' }, steps: { type: 'string', default: '200' }, 'rss-mb': { type: 'string' }, 'train-steps': { type: 'string', default: '20' }, 'memory-up-to-mb': { type: 'string', default: '200' } },
  });
  const count = (name: keyof typeof values): number => positiveInt('data', name, values[name] as string);
  const threadCounts = values.threads!.split(',').map((t) => positiveInt('data', 'threads', t));
  const rssSizes = values['rss-mb'] ? values['rss-mb'].split(',').map((v) => positiveInt('data', 'rss-mb', v)) : [];
  const tmp = mkdtempSync(join(tmpdir(), 'adabatch-bench-data-'));
  // The machine may be shared: its load average before and after says how far to trust the numbers.
  const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
  console.log(`data bench (node ${process.version}, ${availableParallelism()} cores, ${new Date().toISOString().slice(0, 16)}Z, load average ${load()})`);
  try {
    const tokPath = join(tmp, 'tokenizer.json');
    trainTokenizer(brownDocuments().map((d) => d.text), { vocab: 4096 }).save(tokPath);
    const shards = await prepareSpeed(tmp, loadTokenizer(tokPath), count('mb'), threadCounts, count('rounds'));
    await stepShare(shards, count('steps'));
    for (const size of rssSizes) await flatMemory(join(tmp, `rss-${size}`), size, tokPath, Math.max(...threadCounts), count('train-steps'), size <= count('memory-up-to-mb'));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`  (load average at the end ${load()})`);
}

/**
 * `data prepare` in this process at each thread count, rounds interleaved (a busy machine slows every
 * count alike): MB/s of text end to end, the best round of each, and the cores ours and other
 * processes kept busy. Returns a folder of the shards (all counts' are checked identical).
 */
async function prepareSpeed(tmp: string, tokenizer: Tokenizer, mb: number, threadCounts: number[], rounds: number): Promise<string> {
  const corpus = join(tmp, 'corpus');
  let t0 = performance.now();
  const textBytes = generateCorpus(corpus, mb, 1);
  print('generated corpus', `${(textBytes / MB).toFixed(1)} MB of text as JSONL in ${seconds(t0).toFixed(1)} s`);
  const best = new Map<number, { secs: number; ours: number; others: number }>();
  const hashes = new Set<string>();
  let summaryOf = '';
  for (let round = 0; round < rounds; round++) {
    for (const threads of threadCounts) {
      const out = join(tmp, `shards-${threads}`);
      rmSync(out, { recursive: true, force: true });
      t0 = performance.now();
      const cpu0 = cpuSeconds();
      const r = await prepareShards({ out, inputs: [{ kind: 'corpus', corpus: openCorpus({ paths: [corpus] }) }], descriptions: [corpus], tokenizer, threads, shardTokens: 10_000_000 });
      const cpu1 = cpuSeconds();
      const secs = seconds(t0);
      // The cores other processes kept busy meanwhile: on a shared machine, the honest caveat.
      const others = Math.max(0, (cpu1.machine - cpu0.machine - (cpu1.ours - cpu0.ours)) / secs);
      if (secs < (best.get(threads)?.secs ?? Infinity)) best.set(threads, { secs, ours: (cpu1.ours - cpu0.ours) / secs, others });
      hashes.add(r.manifest.shards.map((s) => s.index_sha256).join());
      summaryOf = `${(r.manifest.tokens / 1e6).toFixed(1)}M tokens, ${r.manifest.shards.length} shards`;
    }
  }
  const base = best.get(threadCounts[0]!)!.secs;
  const label = `${threadCounts[0]} thread${threadCounts[0] === 1 ? '' : 's'}`;
  for (const threads of threadCounts) {
    const { secs, ours, others } = best.get(threads)!;
    print(`data prepare, ${threads} thread${threads === 1 ? '' : 's'}`, `${(textBytes / MB / secs).toFixed(1)} MB/s (best of ${rounds}: ${secs.toFixed(1)} s, ${(base / secs).toFixed(2)}× ${label}; ${summaryOf}; cores busy: ours ${ours.toFixed(2)}, others ${others.toFixed(2)})`);
  }
  print('shards across thread counts and rounds', hashes.size === 1 ? 'byte-identical (same index hashes)' : 'DIFFERENT');
  if (hashes.size !== 1) process.exitCode = 1;
  rmSync(corpus, { recursive: true, force: true });
  return join(tmp, `shards-${threadCounts[0]}`);
}

/** Reading one preset-A step's windows from shards (median over `steps` steps), next to the step itself. */
async function stepShare(shards: string, steps: number): Promise<void> {
  const t0 = performance.now();
  const ds = openShardDataset({ shards, tokenizer: { min_frequency: 2 }, val_fraction: 0.05, val_windows: 1024, split_seed: 0 }, { seqLen: A.seq_len, seed: 0 });
  print('open the shards (check indexes, split)', `${(seconds(t0) * 1000).toFixed(0)} ms (${ds.stats.documents.train + ds.stats.documents.validation} documents)`);
  const per: number[] = [];
  for (let s = 0; s < steps; s++) {
    const t = performance.now();
    ds.train.windows(s * BATCH, BATCH);
    per.push(performance.now() - t);
  }
  const readMs = median(per);
  const backend = createBackend('cpu', { threads: availableParallelism() });
  const { step } = trainingStep(backend, { ...A, vocab: ds.vocabSize }, BATCH);
  const stepMs: number[] = [];
  for (let i = 0; i < 7; i++) {
    const ms = await step();
    if (i >= 2) stepMs.push(ms);
  }
  backend.dispose?.();
  const stepMedian = median(stepMs);
  print(`windows of one step (${BATCH} × ${A.seq_len + 1} tokens)`, `${readMs.toFixed(3)} ms median over ${steps} steps (p90 ${[...per].sort((a, b) => a - b)[Math.floor(steps * 0.9)]!.toFixed(3)} ms)`);
  print(`preset-A step (batch ${BATCH}, ${availableParallelism()} threads)`, `${stepMedian.toFixed(0)} ms median of 5`);
  print('data loading share of a step', `${((100 * readMs) / stepMedian).toFixed(3)}% (goal ≤ 1%)`);
}

/**
 * A generated corpus of `size` MB through `adabatch data prepare` and a short `adabatch train` from
 * the shards (and, when `fromMemory`, from the corpus itself for contrast), as separate processes
 * whose resident memory is sampled.
 */
async function flatMemory(dir: string, size: number, tokPath: string, threads: number, trainSteps: number, fromMemory: boolean): Promise<void> {
  const t0 = performance.now();
  const corpus = join(dir, 'corpus');
  const bytes = generateCorpus(corpus, size, 2);
  print(`${size} MB corpus: generated`, `${(bytes / MB).toFixed(0)} MB of text in ${seconds(t0).toFixed(0)} s`);
  let before = loadavg()[0]!;
  const prep = await runSampled(['data', 'prepare', '--input', corpus, '--tokenizer', tokPath, '--out', join(dir, 'shards'), '--threads', String(threads)]);
  const prepared = /prepared .*: (\d+) shards, (\d+) documents, (\S+) tokens/.exec(prep.stderr);
  print(`${size} MB corpus: data prepare (${threads} threads)`, `${prep.seconds.toFixed(0)} s, ${(bytes / MB / prep.seconds).toFixed(1)} MB/s; ${prepared ? `${prepared[1]} shards, ${prepared[2]} documents, ${prepared[3]} tokens` : '?'}; peak RSS ${prep.peakMb.toFixed(0)} MB (${curve(prep)}); load ${before.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`);
  const train = async (label: string, data: string, run: string): Promise<void> => {
    const sets = [`run_dir=${join(dir, run)}`, 'model.preset=A', `data=${data}`, `batch={schedule: constant, batch: ${BATCH}, max_micro: ${BATCH}}`, `budget.samples=${BATCH * trainSteps}`, 'eval.every_samples=0', 'checkpoint.at_end=false', 'checkpoint.every_minutes=0'];
    before = loadavg()[0]!;
    const r = await runSampled(['train', ...sets.flatMap((s) => ['--set', s])]);
    const opened = /data: .*\((\d+\.\d) s\)/.exec(r.stderr)?.[1] ?? '?';
    print(`${size} MB corpus: train ${trainSteps} steps ${label}`, `${r.seconds.toFixed(0)} s (dataset opened in ${opened} s); peak RSS ${r.peakMb.toFixed(0)} MB (${curve(r)}); load ${before.toFixed(1)} → ${loadavg()[0]!.toFixed(1)}`);
  };
  // The in-memory path holds the texts and the tokens: shown for contrast where that is cheap.
  if (fromMemory) await train('from memory', `{corpus: {paths: [${corpus}]}, tokenizer: {path: ${tokPath}}, cache_dir: ${join(dir, 'cache')}}`, 'run-memory');
  rmSync(corpus, { recursive: true, force: true });
  await train('from shards', `{shards: ${join(dir, 'shards')}}`, 'run');
  rmSync(dir, { recursive: true, force: true });
}
