/**
 * `adabatch data prepare | verify` as a user runs it: the same bytes whatever the thread count, a
 * resume after kill -9 and after Ctrl-C equal to an uninterrupted run, folders it refuses, a damaged
 * finished shard rewritten on resume, token files without a tokenizer, and a training run from the
 * shards of `--config` step for step equal to the run from the in-memory corpus.
 */
import { strict as assert } from 'node:assert';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { brownDocuments } from '../src/data/brown.js';
import { trainTokenizer } from '../src/data/tokenizer.js';
import { readMetrics } from '../src/io/metrics.js';
import { loadTrainConfig } from '../src/train/config.js';
import { Progress } from '../src/train/progress.js';
import { runTrain } from '../src/train/run.js';
import { tempDir } from './helpers/tmp.js';

const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));
const dir = tempDir('adabatch-prepare-');

// All of Brown as five JSONL files (~6 MB): enough work to interrupt a one-thread prepare mid-way.
const corpus = join(dir, 'brown-jsonl');
mkdirSync(corpus);
const brown = brownDocuments();
for (let f = 0; f < 5; f++) writeFileSync(join(corpus, `part-${f}.jsonl`), brown.slice(f * 100, f * 100 + 100).map((d) => JSON.stringify({ text: d.text }) + '\n').join(''));
const tokPath = join(dir, 'tokenizer.json');
trainTokenizer(brown.slice(0, 10).map((d) => d.text), { vocab: 300 }).save(tokPath);
const prepareArgs = (out: string, ...extra: string[]): string[] => ['data', 'prepare', '--input', corpus, '--tokenizer', tokPath, '--out', out, '--shard-tokens', '100k', ...extra];

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, CI: '1' } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Every file of a folder (the lock aside) by name. */
function files(folder: string): Map<string, Buffer> {
  return new Map(readdirSync(folder).filter((n) => n !== '.lock').sort().map((n) => [n, readFileSync(join(folder, n))]));
}

function assertSameFolder(a: string, b: string): void {
  const fa = files(a);
  const fb = files(b);
  assert.deepEqual([...fb.keys()], [...fa.keys()]);
  for (const [name, bytes] of fa) assert.ok(bytes.equals(fb.get(name)!), `${name} is byte-identical`);
}

const baseline = join(dir, 'one-thread');
const baselineRun = (async () => {
  const r = cli(...prepareArgs(baseline, '--threads', '1'));
  assert.equal(r.code, 0, r.stderr);
  return r;
})();

test('--help, and mistakes exit 2 naming the flag or the folder', () => {
  const help = cli('data', 'prepare', '--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /usage: adabatch data prepare --config FILE/);
  assert.match(help.stdout, /--shard-tokens N/);
  assert.match(cli('data', '--help').stdout, /prepare .*\n\s+verify/);
  assert.equal(cli('data').code, 2);
  const bad = (pattern: RegExp, ...args: string[]): void => {
    const r = cli(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, pattern);
  };
  bad(/give either --config FILE or --input PATH/, 'data', 'prepare', '--out', join(dir, 'x'));
  bad(/--out DIR is required/, 'data', 'prepare', '--input', corpus, '--tokenizer', tokPath);
  bad(/text inputs need --tokenizer FILE/, 'data', 'prepare', '--input', corpus, '--out', join(dir, 'x'));
  bad(/--shard-tokens must be a positive integer \(suffixes k, M, G allowed\), got '12q'/, ...prepareArgs(join(dir, 'x'), '--shard-tokens', '12q'));
  bad(/--tokenizer goes with --input/, 'data', 'prepare', '--config', 'c.yaml', '--tokenizer', tokPath, '--out', join(dir, 'x'));
  bad(/corpus path .*nowhere does not exist/, 'data', 'prepare', '--input', join(dir, 'nowhere'), '--tokenizer', tokPath, '--out', join(dir, 'x'));
  bad(/data: unknown subcommand 'shuffle'/, 'data', 'shuffle');
});

test('the same shards, byte for byte, with 1 and 3 threads; verify checks them', async () => {
  const one = await baselineRun;
  assert.match(one.stderr, /prepared .*one-thread: \d+ shards, 500 documents, .* tokens \(uint16, vocab 300\)/);
  assert.match(one.stderr, /train from it with the config section {2}data: \{ shards: /);
  const three = join(dir, 'three-threads');
  const r = cli(...prepareArgs(three, '--threads', '3'));
  assert.equal(r.code, 0, r.stderr);
  assertSameFolder(baseline, three);
  assert.ok(files(baseline).size > 10, 'many shards');
  const v = cli('data', 'verify', three);
  assert.equal(v.code, 0, v.stderr);
  assert.match(v.stdout, /three-threads: ok — \d+ shards, 500 documents/);
  // Run again: nothing to do.
  const again = cli(...prepareArgs(three));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /already complete \(\d+ shards verified\); nothing to do/);
});

/** Starts a one-thread prepare and stops it with `signal` once its manifest lists two shards. */
async function interrupted(out: string, signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...prepareArgs(out, '--threads', '1')], { env: { ...process.env, CI: '1' } });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  for (;;) {
    await new Promise((r) => setTimeout(r, 5));
    if (done) break;
    let listed = 0;
    try {
      listed = (JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { shards: unknown[] }).shards.length;
    } catch {
      /* not written yet */
    }
    if (listed >= 2) {
      child.kill(signal);
      break;
    }
  }
  return { code: await exited, stderr };
}

test('kill -9 mid-run, then the same command: it verifies the finished shards and ends byte-identical', async () => {
  await baselineRun;
  const out = join(dir, 'killed');
  await interrupted(out, 'SIGKILL');
  const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { complete: boolean; shards: unknown[] };
  assert.equal(manifest.complete, false, 'the run was killed before it finished (the machine is too fast for this test?)');
  const r = cli(...prepareArgs(out, '--threads', '2'));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`resuming .*killed: ${manifest.shards.length} finished shards verified`));
  assert.match(r.stderr, new RegExp(`resumed after ${manifest.shards.length} finished shards`));
  assertSameFolder(baseline, out);
  assert.deepEqual(readdirSync(out).filter((n) => n.includes('.tmp~')), [], 'no temporary file left');
});

test('Ctrl-C stops cleanly (exit 130, the open shard removed); a damaged finished shard is rewritten on resume', async () => {
  await baselineRun;
  const out = join(dir, 'interrupted');
  const r = await interrupted(out, 'SIGINT');
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /data prepare interrupted: \d+ finished shards are kept in .*interrupted; run the same command again to resume/);
  assert.deepEqual(readdirSync(out).filter((n) => n.includes('.tmp~')), []);
  // Damage shard 1's tokens: the resume verifies every block, finds it, and writes it again.
  const shard = join(out, 'shard-00001.bin');
  const bytes = readFileSync(shard);
  bytes[500] = bytes[500]! ^ 0xff;
  writeFileSync(shard, bytes);
  const again = cli(...prepareArgs(out));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /shard-00001\.bin: tokens 0–8191 \(block 0\) do not match their checksum \(corrupt\): writing it and the shards after it again/);
  assert.match(again.stderr, /resuming .*: 1 finished shards verified/);
  assertSameFolder(baseline, out);
});

test('folders it refuses: not empty without a manifest, another plan (unless --overwrite)', async () => {
  await baselineRun;
  const foreign = join(dir, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'mine');
  const r = cli(...prepareArgs(foreign));
  assert.equal(r.code, 2);
  assert.match(r.stderr, /foreign is not empty \(notes\.txt\) and holds no manifest\.json: give a new or empty folder/);
  assert.equal(readFileSync(join(foreign, 'notes.txt'), 'utf8'), 'mine');

  const other = join(dir, 'replanned');
  assert.equal(cli(...prepareArgs(other, '--shard-tokens', '400k')).code, 0);
  const refused = cli(...prepareArgs(other));
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /replanned holds shards prepared with another shard size \(400000 tokens, now 100000\): give another --out, or pass --overwrite/);
  const replaced = cli(...prepareArgs(other, '--overwrite'));
  assert.equal(replaced.code, 0, replaced.stderr);
  assertSameFolder(baseline, other);
});

test('token files without a tokenizer: --vocab and --eos-id', () => {
  const bin = join(dir, 'train.bin');
  writeFileSync(bin, Buffer.from(Uint16Array.from([5, 6, 99, 7, 99, 8, 9]).buffer));
  const out = join(dir, 'raw');
  const r = cli('data', 'prepare', '--input', bin, '--vocab', '100', '--eos-id', '99', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /1 shards, 3 documents, 5 tokens \(uint16, vocab 100\)/);
  const missing = cli('data', 'prepare', '--input', bin, '--out', join(dir, 'raw2'));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /token files need --tokenizer FILE, or --vocab N and --eos-id ID/);
});

const WALL_CLOCK = ['tok_per_s', 'step_time_s', 'elapsed_s', 'overhead_s', 'stats_s', 'eval_s'];
const stripClock = (rows: Array<Record<string, unknown>>): Array<Record<string, unknown>> => rows.map((r) => Object.fromEntries(Object.entries(r).filter(([k]) => !WALL_CLOCK.includes(k))));

test('a run from the shards of `data prepare --config` equals the run from the in-memory corpus, step for step', async () => {
  const small = join(dir, 'small');
  mkdirSync(small);
  brown.slice(300, 340).forEach((d, i) => writeFileSync(join(small, `t${i}.txt`), d.text.slice(0, 4000)));
  const config = join(dir, 'memory.yaml');
  // The tokenizer is trained (on the training split) and cached by `data prepare`, in a cache of its own.
  writeFileSync(config, `data:\n  corpus: { paths: [${small}] }\n  tokenizer: { vocab: 320 }\n  val_fraction: 0.15\n  cache_dir: ${join(dir, 'cache-memory')}\n`);
  const shards = join(dir, 'from-config');
  const r = cli('data', 'prepare', '--config', config, '--set', `data.cache_dir=${join(dir, 'cache-prepare')}`, '--out', shards, '--shard-tokens', '5k', '--threads', '2');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /trained a 320-token BPE tokenizer/);

  const quiet = { log: () => {}, progress: new Progress(process.stderr, 1e9, false) };
  const run = ['model.preset=tiny', 'model.n_layers=2', 'model.seq_len=32', 'batch={schedule: norm, eta: 0.5, initial: 4, max: 32, max_micro: 8}', 'budget.samples=160', 'eval.every_samples=48', 'eval.windows=8', 'lr.lr=0.003', 'threads=1'];
  const memoryDir = join(tempDir('adabatch-prepare-run-'), 'memory');
  const a = await runTrain(loadTrainConfig(config, [`run_dir=${memoryDir}`, ...run]), quiet);
  const shardsDir = join(tempDir('adabatch-prepare-run-'), 'shards');
  await runTrain(loadTrainConfig(undefined, [`run_dir=${shardsDir}`, `data={shards: ${shards}, val_fraction: 0.15}`, ...run]), quiet);
  assert.ok(a.batchChanges.length >= 2, `the batch grows (${JSON.stringify(a.batchChanges)})`);
  const ra = stripClock(readMetrics(join(memoryDir, 'metrics.jsonl')));
  const rb = stripClock(readMetrics(join(shardsDir, 'metrics.jsonl')));
  assert.ok(ra.some((row) => row.val_loss !== undefined), 'validation ran');
  assert.deepEqual(rb, ra, 'the same losses, batches and validation losses at every step');
  assert.ok(existsSync(join(shardsDir, 'tokenizer.json')));
});
