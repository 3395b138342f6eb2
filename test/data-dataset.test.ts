/**
 * loadDataset end to end: config defaults and errors, the packed windows against an independent
 * packing of the same documents, cache hits, rebuilds after damage or input changes, and Brown.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { brownDocuments } from '../src/data/brown.js';
import { loadDataset, parseDataConfig, type Dataset } from '../src/data/dataset.js';
import { isValidationDocument } from '../src/data/split.js';
import { UserError } from '../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'adabatch-dataset-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const L = 32;
const corpusDir = join(dir, 'corpus');
mkdirSync(corpusDir);
const texts = brownDocuments()
  .slice(100, 140)
  .map((d) => d.text.slice(0, 1500));
texts.forEach((t, i) => writeFileSync(join(corpusDir, `doc${String(i).padStart(2, '0')}.txt`), t));
writeFileSync(join(corpusDir, 'empty.txt'), '');
const cacheDir = join(dir, 'cache');
const cfg = { corpus: { paths: [corpusDir] }, tokenizer: { vocab: 500 }, val_fraction: 0.2, cache_dir: cacheDir };

/** All windows of one epoch (or the whole validation set), as strings, sorted. */
function epochWindows(s: Dataset['train'], epoch = 0): string[] {
  const W = s.windowsPerEpoch;
  const w = s.windows(epoch * W, W);
  const out: string[] = [];
  for (let i = 0; i < W; i++) out.push(w.subarray(i * (L + 1), (i + 1) * (L + 1)).join(','));
  return out;
}

/** The windows an independent packing of the split's documents gives: <bos> doc <eos> …, stride L. */
function expectedWindows(ds: Dataset, validation: boolean): string[] {
  const stream: number[] = [];
  texts.forEach((t, i) => {
    const id = `corpus/doc${String(i).padStart(2, '0')}.txt`;
    if (isValidationDocument(id, 0, 0.2) === validation) stream.push(...ds.tokenizer.encode(t, { bos: true, eos: true }));
  });
  const out: string[] = [];
  for (let at = 0; at + L + 1 <= stream.length; at += L) out.push(stream.slice(at, at + L + 1).join(','));
  return out;
}

test('config: {} means Brown with a trained 4096-token tokenizer; errors name the field', () => {
  assert.deepEqual(parseDataConfig({}), { corpus: 'brown', on_bad_record: 'fail', tokenizer: { min_frequency: 2 }, val_fraction: 0.05, val_windows: 1024, split_seed: 0 });
  assert.deepEqual(parseDataConfig(undefined), parseDataConfig({}));
  const bad = (raw: unknown, pattern: RegExp): void => assert.throws(() => parseDataConfig(raw), (e: unknown) => e instanceof UserError && pattern.test(e.message), JSON.stringify(raw));
  bad({ val_fraction: 1 }, /data\.val_fraction/);
  bad({ tokenizer: { path: 'x.json', vocab: 100 } }, /data\.tokenizer\.vocab: give tokenizer\.path or tokenizer\.vocab, not both/);
  bad({ tokenizer: { vocab: 100 } }, /data\.tokenizer\.vocab/);
  bad({ corpus: 'shakespeare' }, /data\.corpus/);
  bad({ corpus: { paths: [] } }, /data\.corpus/);
  bad({ colour: 'blue' }, /unknown field 'colour'/);
  bad({ on_bad_record: 'ignore' }, /data\.on_bad_record/);
  bad({ corpus: { paths: [{ path: 'a.parquet', field: 'x' }] } }, /data\.corpus/);
  bad({ corpus: { paths: [{ text_field: 'x' }] } }, /data\.corpus/);
  assert.deepEqual(parseDataConfig({ corpus: { paths: ['a/*.parquet', { path: 'b.jsonl.zst', text_field: 'body' }] }, on_bad_record: 'skip' }).corpus, {
    paths: ['a/*.parquet', { path: 'b.jsonl.zst', text_field: 'body' }],
    text_field: 'text',
  });
});

test('windows are the documents packed <bos> doc <eos>, every window once per epoch; caches are reused', async () => {
  const logs: string[] = [];
  const first = await loadDataset(cfg, { seqLen: L, seed: 1, log: (m) => logs.push(m) });
  assert.equal(first.stats.tokenizer.cache, 'trained');
  assert.equal(first.stats.tokenCache.status, 'built');
  assert.equal(first.tokenizer.vocabSize, 500);
  assert.equal(first.stats.documents.train + first.stats.documents.validation, texts.length + 1);
  assert.ok(first.stats.documents.validation > 0);
  assert.deepEqual(epochWindows(first.train).sort(), expectedWindows(first, false).sort());
  assert.deepEqual(epochWindows(first.train, 3).sort(), expectedWindows(first, false).sort());
  // Validation: every window is one of the validation stream's, none repeated, none from training.
  const val = epochWindows(first.validation!);
  const expectedVal = new Set(expectedWindows(first, true));
  assert.equal(new Set(val).size, val.length);
  for (const w of val) assert.ok(expectedVal.has(w));
  assert.ok(logs.some((m) => /trained a 500-token/.test(m)));

  // Second load, another run seed: everything from the caches; same data, another training order.
  const second = await loadDataset(cfg, { seqLen: L, seed: 2 });
  assert.equal(second.stats.tokenizer.cache, 'hit');
  assert.equal(second.stats.tokenCache.status, 'hit');
  assert.equal(second.tokenizer.hash(), first.tokenizer.hash());
  assert.deepEqual(epochWindows(second.validation!), val, 'the validation windows do not depend on the run seed');
  assert.deepEqual(epochWindows(second.train).sort(), epochWindows(first.train).sort());
  assert.notDeepEqual(epochWindows(second.train), epochWindows(first.train));
  // Same run seed: same order.
  const again = await loadDataset(cfg, { seqLen: L, seed: 1 });
  assert.deepEqual(again.train.windows(5, 7), first.train.windows(5, 7));
});

test('a damaged token cache or tokenizer cache is rebuilt, never trusted', async () => {
  const base = await loadDataset(cfg, { seqLen: L, seed: 1 });
  truncateSync(base.stats.tokenCache.file, 1000);
  const logs: string[] = [];
  const rebuilt = await loadDataset(cfg, { seqLen: L, seed: 1, log: (m) => logs.push(m) });
  assert.equal(rebuilt.stats.tokenCache.status, 'rebuilt');
  assert.ok(logs.some((m) => /unusable \(truncated/.test(m)));
  assert.deepEqual(rebuilt.train.windows(0, 20), base.train.windows(0, 20));

  const tokDir = join(cacheDir, 'tokenizers');
  for (const f of readdirSync(tokDir)) writeFileSync(join(tokDir, f), '{"model": ');
  const retrained = await loadDataset(cfg, { seqLen: L, seed: 1 });
  assert.equal(retrained.stats.tokenizer.cache, 'trained');
  assert.equal(retrained.tokenizer.hash(), base.tokenizer.hash(), 'training is deterministic');
  assert.equal(retrained.stats.tokenCache.status, 'hit');
});

test('a given tokenizer file is used as is; changed inputs retokenise', async () => {
  const base = await loadDataset(cfg, { seqLen: L, seed: 1 });
  const tokPath = join(dir, 'given.json');
  base.tokenizer.save(tokPath);
  const given = await loadDataset({ ...cfg, tokenizer: { path: tokPath } }, { seqLen: L, seed: 1 });
  assert.equal(given.stats.tokenizer.cache, 'given');
  // Same tokenizer content (hash), same inputs: the token cache is shared.
  assert.equal(given.stats.tokenCache.status, 'hit');
  assert.deepEqual(given.train.windows(0, 10), base.train.windows(0, 10));

  writeFileSync(join(corpusDir, 'doc99.txt'), 'A new document arrives. '.repeat(40));
  const changed = await loadDataset(cfg, { seqLen: L, seed: 1 });
  assert.equal(changed.stats.tokenizer.cache, 'trained');
  assert.equal(changed.stats.tokenCache.status, 'built');
  rmSync(join(corpusDir, 'doc99.txt'));
});

test('the token cache is keyed by content: new bytes under the old size and modification time rebuild it', async () => {
  const file = join(corpusDir, 'doc05.txt');
  // A whole second, so that setting it again restores it exactly (utimes takes no nanoseconds).
  const mtime = new Date(2020, 0, 1);
  utimesSync(file, mtime, mtime);
  const base = await loadDataset(cfg, { seqLen: L, seed: 1 });
  assert.equal(base.stats.tokenCache.status, 'hit', 'a new modification time alone keeps the cache');
  const original = readFileSync(file);
  // Same length, same modification time, other bytes (what a sampled or stat-based key would miss).
  writeFileSync(file, Buffer.from(original.toString('latin1').replace(/e/g, 'a'), 'latin1'));
  utimesSync(file, mtime, mtime);
  assert.equal(statSync(file).size, original.length);
  assert.equal(statSync(file).mtimeMs, mtime.getTime());
  const changed = await loadDataset(cfg, { seqLen: L, seed: 1 });
  assert.equal(changed.stats.tokenizer.cache, 'trained');
  assert.equal(changed.stats.tokenCache.status, 'built');
  assert.notDeepEqual(changed.train.windows(0, 50), base.train.windows(0, 50));
  // The old bytes under a new modification time: the first caches again.
  writeFileSync(file, original);
  const restored = await loadDataset(cfg, { seqLen: L, seed: 1 });
  assert.equal(restored.stats.tokenizer.cache, 'hit');
  assert.equal(restored.stats.tokenCache.status, 'hit');
  assert.equal(restored.stats.tokenCache.file, base.stats.tokenCache.file);
});

test('Parquet, compressed JSONL and glob patterns train today; bad records are skipped with a count when asked', async () => {
  const fixtures = fileURLToPath(new URL('../../test/fixtures/data/', import.meta.url));
  const data = { tokenizer: { vocab: 300 }, val_fraction: 0, cache_dir: cacheDir };
  const paths = [join(fixtures, '{snappy,gzip}.parquet'), { path: join(fixtures, 'zstd.parquet'), text_field: 'content' }, join(fixtures, 'docs.jsonl.*')];
  const ds = await loadDataset({ ...data, corpus: { paths } }, { seqLen: 8, seed: 0 });
  assert.equal(ds.stats.documents.train, 5 * 7);
  assert.match(ds.stats.corpus, /\(5 files\)$/);
  assert.ok(ds.train.windowsPerEpoch > 10);

  const logs: string[] = [];
  const withNulls = { ...data, corpus: { paths: [join(fixtures, 'nulls.parquet'), join(fixtures, 'snappy.parquet')] } };
  await assert.rejects(loadDataset(withNulls, { seqLen: 8, seed: 0 }), (e: unknown) => e instanceof UserError && /nulls\.parquet: row 2: 'text' is null/.test(e.message));
  const skipped = await loadDataset({ ...withNulls, on_bad_record: 'skip' }, { seqLen: 8, seed: 0, log: (m) => logs.push(m) });
  assert.equal(skipped.stats.documents.train, 3 + 7);
  assert.ok(logs.some((m) => /skipped 1 malformed record in .*nulls\.parquet \(row 2\)/.test(m)));
});

test('a corpus without one full training window is a UserError', async () => {
  const tiny = join(dir, 'tiny');
  mkdirSync(tiny);
  writeFileSync(join(tiny, 'a.txt'), 'just a few words');
  await assert.rejects(
    loadDataset({ corpus: { paths: [tiny] }, tokenizer: { vocab: 300 }, val_fraction: 0, cache_dir: cacheDir }, { seqLen: 64, seed: 0 }),
    (e: unknown) => e instanceof UserError && /fewer than one window of seq_len \+ 1 = 65/.test(e.message),
  );
});

test('Brown by default: 500 texts, a 4096-token tokenizer, ~5% held out', async () => {
  const ds = await loadDataset({ cache_dir: cacheDir }, { seqLen: 128, seed: 0 });
  const { documents, tokens } = ds.stats;
  assert.equal(documents.train + documents.validation, 500);
  assert.ok(documents.validation >= 10 && documents.validation <= 45, `validation documents: ${documents.validation}`);
  assert.equal(ds.tokenizer.vocabSize, 4096);
  // ~1.16M words at ~1.4 tokens per word.
  assert.ok(tokens.train + tokens.validation > 1.3e6 && tokens.train + tokens.validation < 2.0e6);
  assert.equal(ds.train.windowsPerEpoch, Math.floor((tokens.train - 1) / 128));
  assert.equal(ds.validation!.windowsPerEpoch, Math.min(1024, Math.floor((tokens.validation - 1) / 128)));
  const text = ds.tokenizer.decode(ds.train.windows(0, 1), { skipSpecial: true });
  assert.ok(/ the /.test(text), text);
});
