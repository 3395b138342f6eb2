/** `adabatch tokenizer train | encode | decode` as a user runs it: exit codes, output, errors. */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { loadTokenizer } from '../src/data/tokenizer.js';

const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'adabatch-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [main, 'tokenizer', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

const corpus = join(dir, 'texts');
mkdirSync(corpus);
writeFileSync(join(corpus, 'a.txt'), 'The cat sat on the mat. The dog sat on the log.\n'.repeat(30));
writeFileSync(join(dir, 'extra.jsonl'), '{"body": "Cats and dogs, mats and logs."}\n'.repeat(10));
const tokPath = join(dir, 'tokenizer.json');

test('train writes a tokenizer.json that Hugging Face reads; encode and decode round-trip', () => {
  const r = cli('train', '--vocab', '300', '--input', corpus, join(dir, 'extra.jsonl'), '--text-field', 'body', '--out', tokPath);
  assert.equal(r.code, 0, r.stderr);
  // A corpus this small runs out of pairs before 300 tokens, and says so.
  assert.match(r.stderr, /trained a \d+-token tokenizer on 11 documents/);
  const tok = loadTokenizer(tokPath);
  assert.ok(tok.vocabSize > 258 && tok.vocabSize <= 300);
  assert.match(r.stderr, new RegExp(`supports only ${tok.vocabSize} of the 300 tokens`));
  const hf = new HfTokenizer(JSON.parse(readFileSync(tokPath, 'utf8')) as object, {});
  const text = 'The cat sat on the log, 😀!';
  const enc = cli('encode', '--tokenizer', tokPath, '--text', text, '--eos');
  assert.equal(enc.code, 0, enc.stderr);
  const ids = JSON.parse(enc.stdout) as number[];
  assert.deepEqual(ids, [...hf.encode(text, { add_special_tokens: false }).ids, tok.eos]);
  const dec = cli('decode', '--tokenizer', tokPath, '--ids', JSON.stringify(ids), '--skip-special');
  assert.equal(dec.code, 0, dec.stderr);
  assert.equal(dec.stdout, text);
  const file = join(dir, 'input.txt');
  writeFileSync(file, 'line one\nline two\n');
  assert.deepEqual(JSON.parse(cli('encode', '-t', tokPath, '--file', file).stdout), tok.encode('line one\nline two\n'));
});

test('train reads Parquet and compressed JSONL through glob patterns; bad records fail or are skipped with a count', () => {
  const fixtures = fileURLToPath(new URL('../../test/fixtures/data/', import.meta.url));
  const input = [join(fixtures, '{nulls,snappy}.parquet'), join(fixtures, 'docs.jsonl.zst')];
  const out = join(dir, 'parquet-tok.json');
  const failed = cli('train', '--vocab', '300', '--input', ...input, '--out', out);
  assert.equal(failed.code, 2);
  assert.match(failed.stderr, /nulls\.parquet: row 2: 'text' is null/);
  const r = cli('train', '--vocab', '300', '--input', ...input, '--on-bad-record', 'skip', '--out', out);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /skipped 1 malformed record in .*nulls\.parquet \(row 2\)/);
  assert.match(r.stderr, /trained a \d+-token tokenizer on 17 documents/);
});

test('--help for each subcommand exits 0; mistakes exit 2 with a message naming the problem', () => {
  for (const sub of ['train', 'encode', 'decode']) {
    const r = cli(sub, '--help');
    assert.equal(r.code, 0);
    assert.match(r.stdout, new RegExp(`usage: adabatch tokenizer ${sub}`));
  }
  const cases: Array<[string[], RegExp]> = [
    [['frobnicate'], /unknown subcommand 'frobnicate'/],
    [['train', '--vocab', '300', '--out', join(dir, 'x.json')], /--input is required/],
    [['train', '--vocab', 'many', '--input', corpus, '--out', join(dir, 'x.json')], /--vocab must be a positive integer/],
    [['train', '--vocab', '100', '--input', corpus, '--out', join(dir, 'x.json')], /vocab must be an integer ≥ 258/],
    [['train', '--input', join(dir, 'nope'), '--out', join(dir, 'x.json')], /nope does not exist/],
    [['train', '--input', corpus, '--on-bad-record', 'ignore', '--out', join(dir, 'x.json')], /--on-bad-record must be fail or skip, got 'ignore'/],
    [['train', '--colour', 'red'], /Unknown option '--colour'/],
    [['encode', '--tokenizer', join(dir, 'missing.json'), '--text', 'x'], /missing\.json does not exist/],
    [['encode', '--tokenizer', tokPath], /exactly one of --text and --file/],
    [['decode', '--tokenizer', tokPath, '--ids', '[1, "a"]'], /--ids must be a JSON list of integers/],
    [['decode', '--tokenizer', tokPath, '--ids', '[100000]'], /token id 100000 is outside the vocabulary/],
  ];
  for (const [args, pattern] of cases) {
    const r = cli(...args);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
    assert.match(r.stderr, pattern, args.join(' '));
  }
});
