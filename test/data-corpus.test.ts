/** Corpora (Brown, text folders, JSONL, sources with their own text field) and the document split. */
import { strict as assert } from 'node:assert';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { brownDocuments, brownText } from '../src/data/brown.js';
import { openCorpus, readAll } from '../src/data/corpus.js';
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

test('text folders: one document per file, recursively, in name order; hidden and other files skipped', async () => {
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
  assert.deepEqual(await readAll(corpus), [
    { id: 'books/a.md', text: 'first' },
    { id: 'books/b/c.text', text: 'middle' },
    { id: 'books/b/d.jsonl:1', text: 'line one' },
    { id: 'books/b/d.jsonl:3', text: 'line three' },
    { id: 'books/z.txt', text: 'last' },
    { id: 'single.txt', text: 'alone\n' },
  ]);
  // The fingerprint is the content: a new modification time alone keeps it, new bytes of the same
  // size under the old modification time change it; so do the text field and the bad-record policy.
  const fingerprint = (opts: Parameters<typeof openCorpus>[1] = {}, textField?: string): Promise<string> =>
    openCorpus(textField === undefined ? { paths: [root, single] } : { paths: [root, single], text_field: textField }, opts).fingerprint();
  const before = await corpus.fingerprint();
  assert.equal(await fingerprint(), before);
  const z = join(root, 'z.txt');
  utimesSync(z, new Date(2001, 1, 1), new Date(2001, 1, 1));
  assert.equal(await fingerprint(), before);
  writeFileSync(z, 'LAST');
  utimesSync(z, new Date(2001, 1, 1), new Date(2001, 1, 1));
  assert.notEqual(await fingerprint(), before);
  writeFileSync(z, 'last');
  assert.equal(await fingerprint(), before);
  assert.notEqual(await fingerprint({}, 'body'), before);
  assert.notEqual(await fingerprint({ onBadRecord: 'skip' }), before);
});

test('each source may name its own text field; ids do not depend on where the corpus lives', async () => {
  const a = join(dir, 'fields', 'a.jsonl');
  const b = join(dir, 'fields', 'b.jsonl');
  mkdirSync(join(dir, 'fields'), { recursive: true });
  writeFileSync(a, '{"text": "from a"}\n');
  writeFileSync(b, '{"body": "from b", "text": 5}\n');
  const corpus = openCorpus({ paths: [a, { path: b, text_field: 'body' }] });
  assert.deepEqual(await readAll(corpus), [
    { id: 'a.jsonl:1', text: 'from a' },
    { id: 'b.jsonl:1', text: 'from b' },
  ]);
  assert.equal(corpus.description, `${a}, ${b} (2 files)`);
});

test('JSONL: text_field picks the field; bad lines are UserErrors naming file and line', async () => {
  const file = join(dir, 'docs.jsonl');
  writeFileSync(file, '{"body": "one"}\n{"body": "two"}\n');
  assert.deepEqual(await readAll(openCorpus({ paths: [file], text_field: 'body' })), [
    { id: 'docs.jsonl:1', text: 'one' },
    { id: 'docs.jsonl:2', text: 'two' },
  ]);
  await assert.rejects(readAll(openCorpus({ paths: [file] })), (e: unknown) => e instanceof UserError && e.message.includes(`${file}:1: no field 'text'`));
  writeFileSync(file, '{"text": "ok"}\n{"text": \n');
  await assert.rejects(readAll(openCorpus({ paths: [file] })), (e: unknown) => e instanceof UserError && e.message.includes(`${file}:2: invalid JSON`));
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
