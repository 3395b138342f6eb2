/**
 * Token shards as training reads them: the lazy packing against packDocuments, a prepared folder read
 * back (documents, ids, reads across blocks and shards), windows from shards equal to windows from
 * memory, damaged shards and bad folders refused naming the file, llm.c and nanoGPT token files
 * (written here by hand from their documented layouts), and the vocabulary checked against the model.
 */
import { strict as assert } from 'node:assert';
import { appendFileSync, copyFileSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { brownDocuments } from '../src/data/brown.js';
import { openCorpus, readAll } from '../src/data/corpus.js';
import { loadDataset, parseDataConfig } from '../src/data/dataset.js';
import { memoryTokens, PackedDocuments, packDocuments, type WindowSampler } from '../src/data/sampler.js';
import { MANIFEST_FILE } from '../src/data/shards/manifest.js';
import { prepareShards, type PrepareInput } from '../src/data/shards/prepare.js';
import { HEADER_BYTES } from '../src/data/shards/shard-file.js';
import { ShardSet } from '../src/data/shards/shard-set.js';
import { openTokenFile } from '../src/data/shards/token-files.js';
import { trainTokenizer, type Tokenizer } from '../src/data/tokenizer.js';
import { loadTrainConfig } from '../src/train/config.js';
import { Progress } from '../src/train/progress.js';
import { runTrain } from '../src/train/run.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './helpers/tmp.js';

const dir = tempDir('adabatch-shards-');
const corpusDir = join(dir, 'corpus');
mkdirSync(corpusDir);
// 60 Brown texts of up to 3,000 characters (~50k tokens at vocab 300: several 16 KiB blocks per shard), and an empty one.
const texts = brownDocuments()
  .slice(200, 260)
  .map((d) => d.text.slice(0, 3000));
texts.forEach((t, i) => writeFileSync(join(corpusDir, `doc${String(i).padStart(2, '0')}.txt`), t));
writeFileSync(join(corpusDir, 'empty.txt'), '');
const tokenizer = trainTokenizer(texts.slice(0, 10), { vocab: 300 });
const tokPath = join(dir, 'tokenizer.json');
tokenizer.save(tokPath);

const userError = (pattern: RegExp) => (e: unknown) => e instanceof UserError && pattern.test(e.message);

async function prepare(out: string, inputs: PrepareInput[], opts: { tokenizer?: Tokenizer | null; special?: { vocabSize: number; bos: number; eos: number }; shardTokens?: number } = {}): Promise<void> {
  const special = opts.special ? { special: opts.special } : {};
  await prepareShards({ out, inputs, descriptions: inputs.map((_, i) => `input ${i}`), tokenizer: opts.tokenizer === undefined ? tokenizer : opts.tokenizer, ...special, threads: 2, shardTokens: opts.shardTokens ?? 12000 });
}

const corpusInput = (): PrepareInput => ({ kind: 'corpus', corpus: openCorpus({ paths: [corpusDir] }) });
const shardsDir = join(dir, 'shards');
const prepared = prepare(shardsDir, [corpusInput()]);

test('PackedDocuments reads every range of the packed stream as packDocuments lays it out', () => {
  fc.assert(
    fc.property(fc.array(fc.array(fc.integer({ min: 2, max: 99 }), { maxLength: 12 }), { minLength: 1, maxLength: 12 }), fc.boolean(), fc.nat(), fc.nat(), (docs, sameSeparator, a, b) => {
      const tokens = Uint16Array.from(docs.flat());
      const offsets = Float64Array.from([0, ...docs.map((_, i) => docs.slice(0, i + 1).reduce((n, d) => n + d.length, 0))]);
      const order = docs.map((_, i) => i).filter((i) => (a >> i) % 2 === 0);
      const [bos, eos] = sameSeparator ? [1, 1] : [0, 1];
      const expected: number[] = [];
      for (const d of order) if (docs[d]!.length > 0) expected.push(...(sameSeparator ? [] : [bos]), ...docs[d]!, eos);
      assert.deepEqual([...packDocuments(tokens, offsets, order, bos, eos)], expected);
      const packed = new PackedDocuments(memoryTokens(tokens, offsets), order, bos, eos);
      assert.equal(packed.length, expected.length);
      if (expected.length === 0) return;
      const from = a % expected.length;
      const count = b % (expected.length - from + 1);
      const out = new Int32Array(count + 2).fill(-7);
      packed.read(from, out, 1, count);
      assert.deepEqual([...out], [-7, ...expected.slice(from, from + count), -7]);
    }),
  );
});

test('a prepared folder reads back every document, its id and its tokens, across blocks and shards', async () => {
  await prepared;
  const set = ShardSet.open(shardsDir);
  const docs = await readAll(openCorpus({ paths: [corpusDir] }));
  assert.equal(set.documents, docs.length);
  assert.ok(set.manifest.shards.length >= 3, `${set.manifest.shards.length} shards`);
  assert.ok(set.manifest.shards.every((s, i) => i === set.manifest.shards.length - 1 || s.tokens * 2 > 16384), 'shards span several 16 KiB blocks');
  assert.deepEqual([...set.documentIds()], docs.map((d) => d.id));
  const all: number[] = [];
  docs.forEach((d, i) => {
    const ids = tokenizer.encode(d.text);
    assert.deepEqual([...set.read(i, 0, ids.length)], ids, d.id);
    all.push(...ids);
  });
  assert.equal(set.tokenCount, all.length);
  // Spans crossing block and shard boundaries, and the last token.
  for (const [from, to] of [[0, all.length], [8000, 8400], [set.documentStarts[20]! - 3, set.documentStarts[40]! + 3], [all.length - 1, all.length]] as const) {
    assert.deepEqual([...set.tokens(from, to)], all.slice(from, to), `tokens [${from}, ${to})`);
  }
  assert.throws(() => set.read(0, 0, 1e9), RangeError);
  set.close();
});

/** Every window of an epoch (training) or the fixed validation set, as one array. */
const everyWindow = (s: WindowSampler, epoch = 0): Int32Array => s.windows(epoch * s.windowsPerEpoch, s.windowsPerEpoch);

test('windows from shards equal windows from memory: same split, same packing, same order', async () => {
  await prepared;
  const split = { val_fraction: 0.2, val_windows: 50, split_seed: 3 };
  const memory = await loadDataset({ corpus: { paths: [corpusDir] }, tokenizer: { path: tokPath }, cache_dir: join(dir, 'cache'), ...split }, { seqLen: 24, seed: 7 });
  const shards = await loadDataset({ shards: shardsDir, ...split }, { seqLen: 24, seed: 7 });
  assert.deepEqual(shards.stats.documents, memory.stats.documents);
  assert.deepEqual(shards.stats.tokens, memory.stats.tokens);
  assert.ok(memory.stats.documents.validation > 3);
  assert.deepEqual(everyWindow(shards.train), everyWindow(memory.train));
  assert.deepEqual(everyWindow(shards.train, 2), everyWindow(memory.train, 2));
  assert.deepEqual(everyWindow(shards.validation!), everyWindow(memory.validation!));
  assert.equal(shards.tokenizer.hash(), tokenizer.hash());
  assert.equal(shards.stats.tokenCache.status, 'shards');
  // A tokenizer named in the config must be the folder's own.
  assert.ok(await loadDataset({ shards: shardsDir, tokenizer: { path: tokPath }, ...split }, { seqLen: 24, seed: 7 }));
  const other = join(dir, 'other-tokenizer.json');
  trainTokenizer(texts.slice(10, 20), { vocab: 300 }).save(other);
  await assert.rejects(loadDataset({ shards: shardsDir, tokenizer: { path: other } }, { seqLen: 24, seed: 7 }), userError(/other-tokenizer\.json is not the one the shards in .* were made with/));
});

test('config: data.shards with the split fields; corpus, cache or tokenizer training beside it are refused', () => {
  assert.deepEqual(parseDataConfig({ shards: 'out' }), { shards: 'out', tokenizer: { min_frequency: 2 }, val_fraction: 0.05, val_windows: 1024, split_seed: 0 });
  const bad = (raw: unknown, pattern: RegExp): void => assert.throws(() => parseDataConfig(raw), userError(pattern), JSON.stringify(raw));
  bad({ shards: 'out', corpus: 'brown' }, /data\.corpus: give data\.corpus or data\.shards, not both/);
  bad({ shards: 'out', tokenizer: { vocab: 500 } }, /data\.tokenizer\.vocab: the shards were tokenised by `data prepare`/);
  bad({ shards: 'out', cache_dir: '/tmp' }, /unknown field 'cache_dir'/);
  bad({ shards: '' }, /data\.shards/);
  bad({ shards: 'out', val_fraction: 2 }, /data\.val_fraction/);
});

/** A copy of the prepared folder to damage. */
function copyOfShards(name: string): string {
  const to = join(dir, name);
  mkdirSync(to);
  for (const f of ['manifest.json', 'tokenizer.json', ...ShardSet.open(shardsDir).manifest.shards.map((s) => s.file)]) copyFileSync(join(shardsDir, f), join(to, f));
  return to;
}

test('damaged shards are refused, naming the file: flipped token bytes on read, index, size and foreign shards on open', async () => {
  await prepared;
  const flipped = copyOfShards('flipped');
  const bytes = readFileSync(join(flipped, 'shard-00001.bin'));
  bytes[HEADER_BYTES + 20000] = bytes[HEADER_BYTES + 20000]! ^ 0x40; // a token in the second block
  writeFileSync(join(flipped, 'shard-00001.bin'), bytes);
  const set = ShardSet.open(flipped); // tokens are checked as they are read, not at open
  const start = set.manifest.shards[0]!.tokens;
  assert.deepEqual([...set.tokens(start, start + 100)], [...ShardSet.open(shardsDir).tokens(start, start + 100)], 'the first block is intact');
  assert.throws(() => set.tokens(start + 10000, start + 10001), userError(/token shard .*flipped\/shard-00001\.bin: tokens 8192–16383 \(block 1\) do not match their checksum \(corrupt\)/));
  set.close();

  const truncated = copyOfShards('truncated');
  truncateSync(join(truncated, 'shard-00002.bin'), 1000);
  assert.throws(() => ShardSet.open(truncated), userError(/truncated\/shard-00002\.bin: truncated \(1000 of \d+ bytes\)/));
  const padded = copyOfShards('padded');
  appendFileSync(join(padded, 'shard-00000.bin'), Buffer.alloc(8));
  assert.throws(() => ShardSet.open(padded), userError(/padded\/shard-00000\.bin: 8 bytes too many/));
  const index = copyOfShards('index');
  const b = readFileSync(join(index, 'shard-00000.bin'));
  b[b.length - 3] = b[b.length - 3]! ^ 1; // a block CRC, in the index
  writeFileSync(join(index, 'shard-00000.bin'), b);
  assert.throws(() => ShardSet.open(index), userError(/index\/shard-00000\.bin: its header or index does not match its checksum/));
  const swapped = copyOfShards('swapped');
  copyFileSync(join(shardsDir, 'shard-00000.bin'), join(swapped, 'shard-00001.bin'));
  assert.throws(() => ShardSet.open(swapped), userError(/swapped\/shard-00001\.bin: does not match its manifest\.json: it is shard 0, not 1/));
  const foreign = join(dir, 'foreign');
  await prepare(foreign, [corpusInput()], { shardTokens: 12001 });
  const mixed = copyOfShards('mixed');
  copyFileSync(join(foreign, 'shard-00000.bin'), join(mixed, 'shard-00000.bin'));
  assert.throws(() => ShardSet.open(mixed), userError(/mixed\/shard-00000\.bin: .*written by another prepare/));
  const missing = copyOfShards('missing');
  rmSync(join(missing, 'shard-00002.bin'));
  assert.throws(() => ShardSet.open(missing), userError(/token shard .*missing\/shard-00002\.bin is missing/));
  const retokenized = copyOfShards('retokenized');
  trainTokenizer(texts.slice(20, 30), { vocab: 300 }).save(join(retokenized, 'tokenizer.json'));
  assert.throws(() => ShardSet.open(retokenized), userError(/retokenized\/tokenizer\.json is not the tokenizer the shards .* were made with/));
});

test('bad folders: missing, not prepared, another manifest version, unfinished', async () => {
  await prepared;
  assert.throws(() => ShardSet.open(join(dir, 'nowhere')), userError(/token shard folder .*nowhere does not exist/));
  assert.throws(() => ShardSet.open(corpusDir), userError(/corpus has no manifest\.json: it is not the output of `adabatch data prepare`/));
  const v2 = copyOfShards('v2');
  const manifest = JSON.parse(readFileSync(join(v2, MANIFEST_FILE), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(v2, MANIFEST_FILE), JSON.stringify({ ...manifest, version: 2 }));
  assert.throws(() => ShardSet.open(v2), userError(/v2\/manifest\.json has manifest version 2; this adabatch reads version 1/));
  writeFileSync(join(v2, MANIFEST_FILE), JSON.stringify({ ...manifest, complete: false }));
  assert.throws(() => ShardSet.open(v2), userError(/v2 is incomplete .* run the same command again to finish it/));
  writeFileSync(join(v2, MANIFEST_FILE), JSON.stringify({ ...manifest, tokens: 5 }));
  assert.throws(() => ShardSet.open(v2), userError(/v2\/manifest\.json is inconsistent: tokens is not the sum over its shards/));
  writeFileSync(join(v2, MANIFEST_FILE), '{"format": "adabatch-token-shards", "version": 1');
  assert.throws(() => ShardSet.open(v2), userError(/v2\/manifest\.json: invalid JSON/));
});

/** An llm.c shard as dev/data/data_common.py writes it: 256 int32 (magic, version, count), then the tokens. */
function llmcFile(path: string, magic: number, version: number, tokens: number[], width: 2 | 4): void {
  const header = new Int32Array(256);
  header.set([magic, version, tokens.length]);
  const body = width === 2 ? Uint16Array.from(tokens) : Uint32Array.from(tokens);
  writeFileSync(path, Buffer.concat([Buffer.from(header.buffer), Buffer.from(body.buffer)]));
}

test('llm.c shards (GPT-2 uint16, Llama 3 uint32) and nanoGPT raw uint16 read as documents cut at BOS/EOS', async () => {
  const files = join(dir, 'token-files');
  mkdirSync(files);
  const EOT = 50256;
  // llm.c puts <|endoftext|> before each document; nanoGPT after each.
  llmcFile(join(files, 'gpt2_train_000001.bin'), 20240520, 1, [EOT, 10, 11, 12, EOT, 13, EOT, EOT, 14, 15], 2);
  writeFileSync(join(files, 'train.bin'), Buffer.from(Uint16Array.from([20, 21, EOT, 22, EOT, 23, 24, 25, EOT]).buffer));
  const gpt2 = join(dir, 'gpt2-shards');
  const inputs: PrepareInput[] = ['gpt2_train_000001.bin', 'train.bin'].map((f) => ({ kind: 'tokens', file: openTokenFile(join(files, f)) }));
  assert.deepEqual(inputs.map((i) => i.kind === 'tokens' && [i.file.format, i.file.tokens]), [['llm.c', 10], ['nanogpt', 9]]);
  await prepare(gpt2, inputs, { tokenizer: null, special: { vocabSize: 50257, bos: EOT, eos: EOT }, shardTokens: 4 });
  const set = ShardSet.open(gpt2);
  assert.equal(set.tokenizer, null);
  assert.equal(set.manifest.plan.dtype, 'uint16');
  assert.deepEqual([...set.documentIds()], ['gpt2_train_000001.bin:0', 'gpt2_train_000001.bin:1', 'gpt2_train_000001.bin:2', 'train.bin:0', 'train.bin:1', 'train.bin:2']);
  const docs = Array.from({ length: set.documents }, (_, d) => [...set.read(d, 0, set.documentStarts[d + 1]! - set.documentStarts[d]!)]);
  assert.deepEqual(docs, [[10, 11, 12], [13], [14, 15], [20, 21], [22], [23, 24, 25]]);

  // Llama 3 files: uint32 tokens, <|begin_of_text|> (128000) before each document.
  const BOT = 128000;
  llmcFile(join(files, 'llama3.bin'), 20240801, 7, [BOT, 100000, 5, BOT, 7, 128255], 4);
  const llama = join(dir, 'llama-shards');
  await prepare(llama, [{ kind: 'tokens', file: openTokenFile(join(files, 'llama3.bin')) }], { tokenizer: null, special: { vocabSize: 128256, bos: BOT, eos: 128001 } });
  const l = ShardSet.open(llama);
  assert.equal(l.manifest.plan.dtype, 'uint32');
  assert.deepEqual([...l.tokens(0, l.tokenCount)], [100000, 5, 7, 128255]);
  assert.equal(l.documents, 2);

  // Refused, naming the file: a truncated llm.c file, an unknown version, an id beyond the vocabulary, an odd raw size.
  writeFileSync(join(files, 'cut.bin'), readFileSync(join(files, 'gpt2_train_000001.bin')).subarray(0, 1030));
  assert.throws(() => openTokenFile(join(files, 'cut.bin')), userError(/llm\.c token file .*cut\.bin: its header says 10 uint16 tokens \(1044 bytes\), but the file has 1030 bytes/));
  llmcFile(join(files, 'v3.bin'), 20240520, 3, [1, 2], 2);
  assert.throws(() => openTokenFile(join(files, 'v3.bin')), userError(/v3\.bin: version 3 with magic 20240520; known are version 1/));
  writeFileSync(join(files, 'odd.bin'), Buffer.alloc(7));
  assert.throws(() => openTokenFile(join(files, 'odd.bin')), userError(/odd\.bin: not an llm\.c shard .* an odd size/));
  await assert.rejects(
    prepare(join(dir, 'too-big'), [{ kind: 'tokens', file: openTokenFile(join(files, 'train.bin')) }], { tokenizer: null, special: { vocabSize: 50000, bos: 0, eos: 0 } }),
    userError(/token file .*train\.bin: token 2 is 50256, not below the vocabulary size 50000/),
  );
});

test('training from shards checks the vocabulary against the model and the tokenizer against init_from', async () => {
  await prepared;
  const quiet = { log: () => {}, progress: new Progress(process.stderr, 1e9, false) };
  const runDir = (): string => join(tempDir('adabatch-shards-run-'), 'run');
  const small = ['model.preset=tiny', 'model.n_layers=1', 'model.seq_len=16'];
  const sets = (shards: string, extra: string[]): string[] => [`run_dir=${runDir()}`, `data={shards: ${shards}}`, 'batch={schedule: constant, batch: 4, max_micro: 4}', 'budget.samples=8', 'eval.every_samples=0', 'threads=1', ...extra];
  await assert.rejects(runTrain(loadTrainConfig(undefined, sets(shardsDir, [...small, 'model.vocab=512'])), quiet), userError(/model\.vocab is 512 but the tokenizer has \d+ tokens/));
  const first = await runTrain(loadTrainConfig(undefined, sets(shardsDir, small)), quiet);
  assert.equal(first.samples, 8);
  assert.ok(Number.isFinite(first.trainLoss) && first.checkpoint !== null);
  // Continued pretraining on shards made with another tokenizer: refused before anything trains.
  const otherShards = join(dir, 'other-tokenizer-shards');
  await prepare(otherShards, [corpusInput()], { tokenizer: trainTokenizer(texts.slice(30, 40), { vocab: 300 }) });
  await assert.rejects(runTrain(loadTrainConfig(undefined, sets(otherShards, [`init_from=${first.checkpoint}`])), quiet), userError(/init-tokenizer\/tokenizer\.json is not the one the shards in .*other-tokenizer-shards were made with: prepare the shards with `adabatch data prepare --tokenizer /));
  const again = await runTrain(loadTrainConfig(undefined, sets(shardsDir, [`init_from=${first.checkpoint}`])), quiet);
  assert.equal(again.samples, 8);
});
