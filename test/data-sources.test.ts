/**
 * Data sources: Parquet (snappy, zstd, gzip pages; several row groups) and JSONL (.gz, .zst) read
 * from fixtures written by independent implementations (test/fixtures/make-data.mjs: arrow-rs via
 * parquet-wasm, the gzip and zstd tools); folders and glob patterns; streaming; and every kind of bad
 * input under both policies: named by file and line or row, skipped with a count, never a crash.
 */
import { strict as assert } from 'node:assert';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { parquetMetadata } from 'hyparquet';
import { formatOf } from '../src/data/sources/files.js';
import { readSources, resolveSources, type OnBadRecord, type SourceDocument } from '../src/data/sources/index.js';
import { lines } from '../src/data/sources/streams.js';
import { invalidUtf8At } from '../src/data/sources/values.js';
import { UserError } from '../src/util/errors.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/data/', import.meta.url));
const fixture = (name: string): string => join(FIXTURES, name);
/** What make-data.mjs puts in every well-formed fixture, in order. */
const TEXTS = ['The cat sat on the mat.', 'Zoë’s café — naïve façade.', 'line one\nline two', '日本語のテキスト', 'emoji 🚀 rocket', 'tabs\tand  spaces', 'last row'];

const dir = mkdtempSync(join(tmpdir(), 'adabatch-sources-'));
after(() => rmSync(dir, { recursive: true, force: true }));

interface Read {
  docs: SourceDocument[];
  logs: string[];
}

async function read(paths: Array<string | [string, string]>, onBadRecord: OnBadRecord = 'fail'): Promise<Read> {
  const logs: string[] = [];
  const sources = resolveSources(paths.map((p) => (typeof p === 'string' ? { path: p, textField: 'text' } : { path: p[0], textField: p[1] })));
  const docs: SourceDocument[] = [];
  for await (const d of readSources(sources, { onBadRecord, log: (m) => logs.push(m) })) docs.push(d);
  return { docs, logs };
}

/** Expects reading to fail with a UserError whose message contains every fragment. */
async function fails(paths: Array<string | [string, string]>, ...fragments: string[]): Promise<void> {
  await assert.rejects(read(paths), (e: unknown) => {
    assert.ok(e instanceof UserError, `not a UserError: ${(e as Error).stack}`);
    for (const f of fragments) assert.ok(e.message.includes(f), `'${e.message}' lacks '${f}'`);
    return true;
  });
}

/** A copy of a fixture (or new content) in the scratch folder. */
function scratch(name: string, from: string | Uint8Array): string {
  const path = join(dir, name);
  if (typeof from === 'string') copyFileSync(fixture(from), path);
  else writeFileSync(path, from);
  return path;
}

test('Parquet with snappy, zstd and gzip pages, several row groups each: every row, in order', async () => {
  for (const [name, field] of [
    ['snappy.parquet', 'text'],
    ['zstd.parquet', 'content'],
    ['gzip.parquet', 'text'],
  ] as const) {
    const { docs, logs } = await read([[fixture(name), field]]);
    assert.deepEqual(
      docs.map((d) => d.text),
      TEXTS,
      name,
    );
    assert.deepEqual(
      docs.map((d) => [d.id, d.locator]),
      TEXTS.map((_, i) => [`${name}:${i}`, `row ${i}`]),
    );
    assert.equal(docs[0]!.file, fixture(name));
    assert.deepEqual(logs, []);
  }
  // The codecs and row groups are what the test claims.
  for (const [name, codec, groups] of [
    ['snappy.parquet', 'SNAPPY', [3, 3, 1]],
    ['zstd.parquet', 'ZSTD', [2, 2, 2, 1]],
    ['gzip.parquet', 'GZIP', [4, 3]],
  ] as const) {
    const bytes = readFileSync(fixture(name));
    const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    assert.deepEqual(
      meta.row_groups.map((g) => Number(g.num_rows)),
      groups,
    );
    assert.ok(meta.row_groups.every((g) => g.columns.every((c) => c.meta_data?.codec === codec)));
  }
});

test('JSONL compressed by gzip and zstd (two members / frames each), and plain', async () => {
  for (const name of ['docs.jsonl.gz', 'docs.jsonl.zst']) {
    const { docs } = await read([fixture(name)]);
    assert.deepEqual(
      docs.map((d) => [d.id, d.locator, d.text]),
      TEXTS.map((t, i) => [`${name}:${i + 1}`, `line ${i + 1}`, t]),
    );
  }
  const plain = scratch('plain.jsonl', Buffer.from('{"text": "a"}\r\n\n  \n{"text": "b"}'));
  assert.deepEqual(
    (await read([plain])).docs.map((d) => [d.id, d.text]),
    [
      ['plain.jsonl:1', 'a'],
      ['plain.jsonl:4', 'b'],
    ],
  );
});

test('lines are cut across chunks of any size, a last line without a newline included', async () => {
  const text = 'first\nsecond, longer line\n\nlast';
  const bytes = Buffer.from(text);
  for (const size of [1, 2, 3, 7, 100]) {
    async function* chunks(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < bytes.length; i += size) yield Uint8Array.from(bytes.subarray(i, i + size));
    }
    const got: Array<[number, string]> = [];
    for await (const l of lines(chunks())) got.push([l.number, Buffer.from(l.bytes).toString()]);
    assert.deepEqual(
      got,
      text.split('\n').map((s, i) => [i + 1, s]),
      `chunks of ${size}`,
    );
  }
});

test('folders and glob patterns: sorted, recursive where asked, hidden entries skipped, links to files followed', async () => {
  const root = join(dir, 'tree');
  mkdirSync(join(root, 'shards', 'b'), { recursive: true });
  mkdirSync(join(root, 'shards', '.hidden'), { recursive: true });
  copyFileSync(fixture('docs.jsonl.zst'), join(root, 'shards', 'b', 'x.jsonl.zst'));
  copyFileSync(fixture('docs.jsonl.zst'), join(root, 'shards', 'a.jsonl.zst'));
  copyFileSync(fixture('docs.jsonl.zst'), join(root, 'shards', '.hidden', 'h.jsonl.zst'));
  copyFileSync(fixture('snappy.parquet'), join(root, 'shards', 'b', 'p.parquet'));
  writeFileSync(join(root, 'shards', 'notes.csv'), 'not a format we read');
  symlinkSync(fixture('gzip.parquet'), join(root, 'shards', 'linked.parquet'));
  const files = (path: string): string[] => resolveSources([{ path, textField: 'text' }])[0]!.files.map((f) => f.id);

  assert.deepEqual(files(join(root, 'shards')), ['shards/a.jsonl.zst', 'shards/b/p.parquet', 'shards/b/x.jsonl.zst', 'shards/linked.parquet']);
  assert.deepEqual(files(join(root, 'shards', '**', '*.jsonl.zst')), ['shards/a.jsonl.zst', 'shards/b/x.jsonl.zst']);
  // Without ** a pattern does not descend.
  assert.deepEqual(files(join(root, 'shards', '*.jsonl.zst')), ['shards/a.jsonl.zst']);
  assert.deepEqual(files(join(root, 'shards', '*', '*.{parquet,jsonl.zst}')), ['shards/b/p.parquet', 'shards/b/x.jsonl.zst']);
  assert.deepEqual(files(join(root, 'shards', '*.parquet')), ['shards/linked.parquet']);
  assert.throws(() => files(join(root, 'shards', '*.csv')), (e: unknown) => e instanceof UserError && /matches no \.parquet/.test(e.message));
  assert.throws(() => files(join(root, 'nowhere', '*.parquet')), (e: unknown) => e instanceof UserError && /folder .*nowhere does not exist/.test(e.message));
  // A path that exists is literal, glob characters or not.
  const literal = join(root, 'notes[1].txt');
  writeFileSync(literal, 'literal');
  assert.deepEqual(files(literal), ['notes[1].txt']);

  // Reading a pattern: files in order, each file's records in order.
  const { docs } = await read([[join(root, 'shards', '**', '*.{parquet,jsonl.zst}'), 'text']]);
  assert.deepEqual(
    docs.map((d) => d.id),
    [...TEXTS.map((_, i) => `shards/a.jsonl.zst:${i + 1}`), ...TEXTS.map((_, i) => `shards/b/p.parquet:${i}`), ...TEXTS.map((_, i) => `shards/b/x.jsonl.zst:${i + 1}`), ...TEXTS.map((_, i) => `shards/linked.parquet:${i}`)],
  );
  assert.ok(docs.every((d) => d.source === join(root, 'shards', '**', '*.{parquet,jsonl.zst}')));
});

test('formats by extension', () => {
  assert.deepEqual(formatOf('a.jsonl.zst'), { format: 'jsonl', compression: 'zstd' });
  assert.deepEqual(formatOf('a.ndjson.gz'), { format: 'jsonl', compression: 'gzip' });
  assert.deepEqual(formatOf('a.parquet'), { format: 'parquet', compression: 'none' });
  assert.deepEqual(formatOf('a.md'), { format: 'text', compression: 'none' });
  assert.equal(formatOf('a.parquet.gz'), null);
  assert.equal(formatOf('a.csv'), null);
  assert.equal(formatOf('a.gz'), null);
});

test('strict UTF-8: the first invalid byte is found (overlong, surrogate, out of range, truncated)', () => {
  const at = (...b: number[]): number => invalidUtf8At(Uint8Array.from(b));
  assert.equal(invalidUtf8At(Buffer.from('aé日🚀')), -1);
  assert.equal(at(0x61, 0xff), 1);
  assert.equal(at(0x61, 0xc0, 0x80), 1); // overlong NUL
  assert.equal(at(0xe0, 0x80, 0x80), 0); // overlong
  assert.equal(at(0x61, 0xed, 0xa0, 0x80), 1); // a UTF-16 surrogate
  assert.equal(at(0xf4, 0x90, 0x80, 0x80), 0); // above U+10FFFF
  assert.equal(at(0x61, 0x62, 0xe6, 0x97), 2); // truncated at the end
  assert.equal(at(0x80), 0); // a lone continuation byte
});

test('bad JSONL lines: fail names file and line; skip leaves them out and logs the count per file', async () => {
  const file = scratch(
    'bad.jsonl',
    Buffer.concat([
      Buffer.from('{"text": "ok 1"}\n{"text": \n{"text": "ok 3"}\n{"body": "no text"}\n[1, 2]\n{"text": null}\n{"text": {"nested": "x"}}\n'),
      Buffer.from([0x7b, 0x22, 0x74, 0x65, 0x78, 0x74, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d, 0x0a]), // {"text":"\xff"}
      Buffer.from('{"text": "ok 9"}\n'),
    ]),
  );
  await fails([file], `${file}:2: invalid JSON`, 'on_bad_record: skip');
  const { docs, logs } = await read([file], 'skip');
  assert.deepEqual(
    docs.map((d) => [d.locator, d.text]),
    [
      ['line 1', 'ok 1'],
      ['line 3', 'ok 3'],
      ['line 9', 'ok 9'],
    ],
  );
  assert.equal(logs.length, 1);
  assert.match(logs[0]!, new RegExp(`^data: skipped 6 malformed records in ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(lines 2, 4, 5, 6, 7, 8\\); first: line 2: invalid JSON`));

  // Each kind of bad line, alone, under fail.
  const one = (name: string, line: string | Buffer): string => scratch(name, Buffer.concat([Buffer.from('{"text": "fine"}\n'), Buffer.from(line)]));
  await fails([one('missing.jsonl', '{"body": "x"}\n')], 'missing.jsonl:2: no field \'text\' (set text_field');
  await fails([one('array.jsonl', '[1]\n')], 'array.jsonl:2: not a JSON object');
  await fails([one('null.jsonl', '{"text": null}\n')], "null.jsonl:2: 'text' is null");
  await fails([one('nested.jsonl', '{"text": ["a"]}\n')], "nested.jsonl:2: 'text' is a list, not a string");
  await fails([one('latin1.jsonl', Buffer.from('{"text": "caf\xe9"}\n', 'latin1'))], 'latin1.jsonl:2: not UTF-8 (invalid byte sequence at byte 13 of the line)');
  // Inherited properties are not fields.
  await fails([[one('proto.jsonl', '{"text": "x"}\n'), 'constructor']], "proto.jsonl:1: no field 'constructor'");
});

test('a text file that is not UTF-8 is named with its line; under skip it is left out', async () => {
  mkdirSync(join(dir, 'texts'));
  const file = scratch('texts/latin1.txt', Buffer.from('first line\nsecond line, caf\xe9\n', 'latin1'));
  scratch('texts/fine.txt', Buffer.from('all good'));
  await fails([file], `${file}:2: not UTF-8 (invalid byte sequence at byte 27 of the file`);
  // (A source that yields nothing is an error even under skip, so the folder is one source.)
  const { docs, logs } = await read([join(dir, 'texts')], 'skip');
  assert.deepEqual(
    docs.map((d) => [d.id, d.text]),
    [['texts/fine.txt', 'all good']],
  );
  assert.match(logs[0]!, /skipped 1 malformed record in .*latin1\.txt \(line 2\)/);
});

test('bad Parquet: null, non-UTF-8 and nested values, a missing column, no rows', async () => {
  await fails([fixture('nulls.parquet')], `${fixture('nulls.parquet')}: row 2: 'text' is null`);
  await fails([fixture('non-utf8.parquet')], 'non-utf8.parquet: row 1: \'text\' is not UTF-8 (invalid byte sequence at byte 2 of the text)');
  await fails([fixture('nested.parquet')], `${fixture('nested.parquet')}: column 'text' is nested`);
  await fails([fixture('no-text.parquet')], `${fixture('no-text.parquet')}: no column 'text' (it has 'body'; set text_field`);
  await fails([[fixture('zstd.parquet'), 'text']], "no column 'text' (it has 'url', 'content'");
  await fails([fixture('empty.parquet')], `${fixture('empty.parquet')}: no rows`);

  const { docs, logs } = await read([fixture('{nulls,non-utf8,nested,empty}.parquet')], 'skip');
  assert.deepEqual(
    docs.map((d) => d.id),
    ['data/non-utf8.parquet:0', 'data/non-utf8.parquet:2', 'data/nulls.parquet:0', 'data/nulls.parquet:1', 'data/nulls.parquet:3'],
  );
  assert.deepEqual(
    logs.map((l) => l.replaceAll(FIXTURES, '')),
    [
      'data: skipped empty.parquet: no rows',
      "data: skipped nested.parquet: column 'text' is nested (a struct), not text",
      "data: skipped 1 malformed record in non-utf8.parquet (row 1); first: row 1: 'text' is not UTF-8 (invalid byte sequence at byte 2 of the text)",
      "data: skipped 1 malformed record in nulls.parquet (row 2); first: row 2: 'text' is null",
    ],
  );
});

/** A copy of a fixture with one row group's column chunk overwritten by junk. */
function corruptRowGroup(name: string, column: string, group: number): string {
  const bytes = readFileSync(fixture(name));
  const meta = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  const chunk = meta.row_groups[group]!.columns.find((c) => c.meta_data?.path_in_schema[0] === column)!.meta_data!;
  const start = Number(chunk.dictionary_page_offset ?? chunk.data_page_offset);
  for (let i = start; i < start + Number(chunk.total_compressed_size); i++) bytes[i] = (i * 37) & 0xff;
  return scratch(`corrupt-${group}-${name}`, bytes);
}

test('a corrupt Parquet row group is named with its rows; what came before it has already streamed out', async () => {
  const file = corruptRowGroup('snappy.parquet', 'text', 1);
  // Under fail, rows 0–2 (row group 0) are yielded before row group 1 is even read.
  const seen: string[] = [];
  await assert.rejects(
    (async () => {
      for await (const d of readSources(resolveSources([{ path: file, textField: 'text' }]), { onBadRecord: 'fail', log: () => {} })) seen.push(d.locator);
    })(),
    (e: unknown) => e instanceof UserError && e.message.includes(`${file}: rows 3–5: row group 1 cannot be decoded`),
  );
  assert.deepEqual(seen, ['row 0', 'row 1', 'row 2']);
  const { docs, logs } = await read([file], 'skip');
  assert.deepEqual(
    docs.map((d) => d.text),
    [...TEXTS.slice(0, 3), TEXTS[6]],
  );
  assert.match(logs[0]!, /skipped 3 malformed records in .*corrupt-1-snappy\.parquet \(rows 3–5\); first: rows 3–5: row group 1 cannot be decoded/);
  // zstd and gzip pages too.
  await fails([[corruptRowGroup('zstd.parquet', 'content', 2), 'content']], 'rows 4–5: row group 2 cannot be decoded');
  await fails([corruptRowGroup('gzip.parquet', 'text', 0)], 'rows 0–3: row group 0 cannot be decoded');
});

test('a corrupt or truncated Parquet file, or something else named .parquet, is named', async () => {
  mkdirSync(join(dir, 'cut'));
  const cut = scratch('cut/cut.parquet', 'zstd.parquet');
  truncateSync(cut, readFileSync(cut).length - 10);
  scratch('cut/good.parquet', 'zstd.parquet');
  await fails([[cut, 'content']], `${cut}: not a readable Parquet file`);
  await fails([[scratch('tiny.parquet', Buffer.from('PAR1')), 'content']], 'tiny.parquet: not a readable Parquet file');
  const lying = Buffer.from(readFileSync(fixture('snappy.parquet')));
  lying.writeUInt32LE(0x7fffffff, lying.length - 8); // a footer length past the file
  await fails([scratch('lying.parquet', lying)], 'lying.parquet: not a readable Parquet file');
  const { docs, logs } = await read([[join(dir, 'cut'), 'content']], 'skip');
  assert.equal(docs.length, TEXTS.length);
  assert.match(logs[0]!, /skipped .*cut\.parquet: not a readable Parquet file/);
});

test('a truncated or corrupt .gz / .zst stream: named after its last good line; under skip the lines before it are kept', async () => {
  for (const ext of ['gz', 'zst']) {
    const whole = readFileSync(fixture(`docs.jsonl.${ext}`));
    const cut = scratch(`cut.jsonl.${ext}`, whole.subarray(0, whole.length - 20));
    await fails([cut], `${cut} after line`, `corrupt ${ext === 'gz' ? 'gzip' : 'zstd'} data`);
    const { docs, logs } = await read([cut], 'skip');
    assert.ok(docs.length >= 1 && docs.length < TEXTS.length, `${ext}: ${docs.length} lines before the cut`);
    assert.deepEqual(
      docs.map((d) => d.text),
      TEXTS.slice(0, docs.length),
    );
    assert.match(logs[0]!, new RegExp(`skipped the rest of .*cut\\.jsonl\\.${ext} after line ${docs.length}: corrupt`));
    await fails([scratch(`junk.jsonl.${ext}`, Buffer.from('this is not compressed at all\n'))], `junk.jsonl.${ext}: corrupt`);
  }
});

test('empty sources: an empty JSONL file, a source with nothing left after skipping', async () => {
  const empty = scratch('empty.jsonl', Buffer.from('\n  \n'));
  await fails([empty], `${empty}: no records`);
  // Skipping everything is not a silent success: the source yields no documents.
  await fails([fixture('no-text.parquet')], 'no-text.parquet');
  await assert.rejects(read([fixture('no-text.parquet')], 'skip'), (e: unknown) => e instanceof UserError && /corpus source .*no-text\.parquet yields no documents/.test(e.message));
  const bad = scratch('all-bad.jsonl', Buffer.from('{\n{\n'));
  await assert.rejects(read([bad], 'skip'), (e: unknown) => e instanceof UserError && /all-bad\.jsonl yields no documents/.test(e.message));
});
