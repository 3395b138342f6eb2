/** Corpora (Brown, text folders, JSONL) and the document split. */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { brownDocuments, brownText } from '../src/data/brown.js';
import { openCorpus } from '../src/data/corpus.js';
import { hash32, isValidationDocument } from '../src/data/split.js';
import { UserError } from '../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'adabatch-corpus-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('brownText strips tags and restores quotes, punctuation spacing, paragraphs and headlines', () => {
  const tagged = [
    '',
    '',
    "\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' ,/, however/rb ./.",
    'It/pps ended/vbd (/( finally/rb )/) ./.',
    '',
    '',
    "\tNew/jj paragraph/nn ;/. ;/. the/at Joneses'/nps$ dog/nn --/-- a/at poodle/nn --/-- barked/vbd !/.",
    '',
    'HEADLINE/nn-hl WORDS/nns-hl',
    'Next/ap sentence/nn ?/. ?/.',
    'Wow/uh !/. !/. !/. !/.',
    '',
  ].join('\n');
  assert.equal(
    brownText(tagged),
    'The jury said "no evidence", however. It ended (finally).\n\n' + "New paragraph; the Joneses' dog -- a poodle -- barked!\n\n" + 'HEADLINE WORDS\n\nNext sentence? Wow!!\n',
  );
});

test('Brown: 500 documents ca01 … cr09 of readable, untagged text', () => {
  const docs = brownDocuments();
  assert.equal(docs.length, 500);
  assert.equal(docs[0]!.id, 'ca01');
  assert.equal(docs[499]!.id, 'cr09');
  assert.ok(docs[0]!.text.startsWith('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence" that any irregularities took place.\n\n'));
  const words = docs.reduce((n, d) => n + d.text.split(/\s+/).filter((w) => /\w/.test(w)).length, 0);
  assert.ok(words > 1_000_000 && words < 1_100_000, `Brown has ~1.0M words with letters or digits, got ${words}`);
  for (const d of docs) assert.doesNotMatch(d.text, /\S\/(at|nn|nns|np|in|jj|vb|vbd|vbz|rb|cc|cs)(-[a-z]+)?(\s|$)|``|[?!;] ?[?!;] ?[?!;] ?[?!;]/, `${d.id} still holds tags, TeX quotes or doubled marks`);
});

test('text folders: one document per file, recursively, in name order; hidden and other files skipped', () => {
  const root = join(dir, 'books');
  mkdirSync(join(root, 'b'), { recursive: true });
  mkdirSync(join(root, '.git'), { recursive: true });
  writeFileSync(join(root, 'z.txt'), 'last');
  writeFileSync(join(root, 'a.md'), 'first');
  writeFileSync(join(root, 'b', 'c.text'), 'middle');
  writeFileSync(join(root, 'image.png'), 'not text');
  writeFileSync(join(root, '.hidden.txt'), 'hidden');
  writeFileSync(join(root, '.git', 'x.txt'), 'git');
  writeFileSync(join(root, 'b', 'd.jsonl'), '{"text": "line one"}\n\n{"text": "line three", "id": 3}\n');
  const single = join(dir, 'single.txt');
  writeFileSync(single, 'alone\n');
  const corpus = openCorpus({ paths: [root, single] });
  assert.deepEqual(corpus.documents(), [
    { id: 'books/a.md', text: 'first' },
    { id: 'books/b/c.text', text: 'middle' },
    { id: 'books/b/d.jsonl:1', text: 'line one' },
    { id: 'books/b/d.jsonl:3', text: 'line three' },
    { id: 'books/z.txt', text: 'last' },
    { id: 'single.txt', text: 'alone\n' },
  ]);
  // The fingerprint changes when a file changes (size or modification time), without reading it.
  const before = corpus.fingerprint();
  assert.equal(openCorpus({ paths: [root, single] }).fingerprint(), before);
  utimesSync(join(root, 'z.txt'), new Date(2001, 1, 1), new Date(2001, 1, 1));
  assert.notEqual(openCorpus({ paths: [root, single] }).fingerprint(), before);
  assert.notEqual(openCorpus({ paths: [root, single], text_field: 'body' }).fingerprint(), openCorpus({ paths: [root, single] }).fingerprint());
});

test('JSONL: text_field picks the field; bad lines are UserErrors naming file and line', () => {
  const file = join(dir, 'docs.jsonl');
  writeFileSync(file, '{"body": "one"}\n{"body": "two"}\n');
  assert.deepEqual(openCorpus({ paths: [file], text_field: 'body' }).documents(), [
    { id: 'docs.jsonl:1', text: 'one' },
    { id: 'docs.jsonl:2', text: 'two' },
  ]);
  assert.throws(() => openCorpus({ paths: [file] }).documents(), (e: unknown) => e instanceof UserError && e.message.includes(`${file}:1: no string field 'text'`));
  writeFileSync(file, '{"text": "ok"}\n{"text": \n');
  assert.throws(() => openCorpus({ paths: [file] }).documents(), (e: unknown) => e instanceof UserError && e.message.includes(`${file}:2: invalid JSON`));
});

test('missing paths and empty folders are UserErrors naming the path', () => {
  assert.throws(() => openCorpus({ paths: [join(dir, 'nope')] }), (e: unknown) => e instanceof UserError && e.message.includes('nope does not exist'));
  const empty = join(dir, 'empty');
  mkdirSync(empty, { recursive: true });
  assert.throws(() => openCorpus({ paths: [empty] }), (e: unknown) => e instanceof UserError && /empty holds no/.test(e.message));
});

test('the split: deterministic, seeded, close to val_fraction, and monotone in it', () => {
  const ids = Array.from({ length: 20_000 }, (_, i) => `doc-${i}`);
  const share = (seed: number, f: number): number => ids.filter((id) => isValidationDocument(id, seed, f)).length / ids.length;
  for (const f of [0.01, 0.1, 0.5]) assert.ok(Math.abs(share(0, f) - f) < 0.01, `fraction ${f}: got ${share(0, f)}`);
  assert.equal(share(0, 0), 0);
  // A document held out at fraction f stays held out at any larger fraction.
  for (const id of ids.slice(0, 2000)) if (isValidationDocument(id, 3, 0.05)) assert.ok(isValidationDocument(id, 3, 0.2));
  const a = ids.filter((id) => isValidationDocument(id, 1, 0.1));
  const b = ids.filter((id) => isValidationDocument(id, 2, 0.1));
  assert.notDeepEqual(a, b);
  assert.deepEqual(ids.filter((id) => isValidationDocument(id, 1, 0.1)), a);
  assert.equal(hash32(0, 'abc'), hash32(0, 'abc'));
  assert.notEqual(hash32(0, 'abc'), hash32(0, 'abd'));
});
