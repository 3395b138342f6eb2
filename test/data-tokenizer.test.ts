/**
 * The byte-level BPE tokenizer against an independent implementation, @huggingface/tokenizers
 * (tokenizers.js): the same tokenizer.json must give the same ids. Plus round trips, special tokens,
 * loading other Hugging Face files, and refusing unsupported ones.
 */
import { strict as assert } from 'node:assert';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { brownDocuments } from '../src/data/brown.js';
import { BYTE_TO_CHAR } from '../src/data/bytelevel.js';
import { loadTokenizer, trainTokenizer, Tokenizer } from '../src/data/tokenizer.js';
import { UserError } from '../src/util/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'adabatch-tok-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Some Brown texts plus multilingual text, so merges also join the bytes of multi-byte characters.
const UNICODE_TEXT = [
  'Café, naïve, façade, résumé — “quoted” ‘text’… Ünïcödé ßtraße.',
  '日本語のテキストと中文字符。한국어 텍스트. Ελληνικά κείμενα. Русский текст.',
  'Emoji: 😀😀 🎉🎉 👍🏽 👨‍👩‍👧 🇫🇷 ❤️ ✨',
].map((s) => `${s}\n`.repeat(20));
const TRAIN_TEXTS = [...brownDocuments().slice(0, 40).map((d) => d.text), ...UNICODE_TEXT];
const tok = trainTokenizer(TRAIN_TEXTS, { vocab: 1200 });
const hf = new HfTokenizer(tok.toJSON(), {});

function hfIds(h: HfTokenizer, text: string): number[] {
  return text.length === 0 ? [] : h.encode(text, { add_special_tokens: false }).ids;
}

const SAMPLES = [
  'Hello, world!',
  'The quick brown fox jumps over the lazy dog.',
  "It's what they'll say: we're sure you've 'd been I'm",
  'Punctuation!!! ??? ... ;;; --- ((( ))) [x] {y} <z> @#$%^&*_+=|\\/~`',
  'spaces:  two,   three,    four,\t\ttabs, trailing   ',
  '   leading spaces',
  'line one\nline two\n\nafter a blank line\r\nwindows line\n\n\n',
  'numbers 0 12 345 6789 3.14159 1,000,000 2026-11-22',
  'Café naïve façade — “quotes” ‘single’ … Straße',
  '日本語のテキスト 中文字符 한국어',
  'emoji 😀🎉👍🏽 family 👨‍👩‍👧 flag 🇫🇷 ❤️',
  '\u00a0non-breaking\u2003em space\u200bzero width\ufeffBOM',
  'a',
  ' ',
  '\n',
];

test('ids match @huggingface/tokenizers on sample texts', () => {
  for (const s of SAMPLES) assert.deepEqual(tok.encode(s), hfIds(hf, s), JSON.stringify(s));
});

test('ids match @huggingface/tokenizers on arbitrary strings', () => {
  const pieces = fc.constantFrom(' ', '  ', '\n', '\t', '\r\n', 'a', 'the', 'The', "'s", "'", 'll', '1', '23', '.', ',', '!?', 'é', '😀', '中', '\u00a0', '<|eos|>');
  for (const arb of [fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.array(pieces, { maxLength: 30 }).map((a) => a.join(''))]) {
    fc.assert(
      fc.property(arb, (s) => {
        // tokenizers.js always matches added tokens in text; our default treats them as plain text.
        assert.deepEqual(tok.encode(s, { allowSpecial: true }), hfIds(hf, s));
      }),
      { numRuns: 300 },
    );
  }
});

test('decode(encode(s)) === s for arbitrary well-formed strings', () => {
  for (const arb of [fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary-ascii' })]) {
    fc.assert(
      fc.property(arb, (s) => {
        assert.equal(tok.decode(tok.encode(s)), s);
        assert.equal(tok.decode(tok.encode(s, { bos: true, eos: true }), { skipSpecial: true }), s);
      }),
      { numRuns: 500 },
    );
  }
});

test('decode matches @huggingface/tokenizers, including ids that split a character', () => {
  const decoder = new HfTokenizer(tok.toJSON(), { clean_up_tokenization_spaces: false });
  for (const s of SAMPLES) {
    const ids = tok.encode(s);
    assert.equal(tok.decode(ids), decoder.decode(ids));
  }
  // Byte tokens that cut "é" (C3 A9) and "😀" (F0 9F 98 80) apart: invalid UTF-8 becomes U+FFFD in both.
  const byteId = (b: number): number => tok.tokenId(BYTE_TO_CHAR[b]!)!;
  for (const cut of [[0xc3], [0xc3, 0x41], [0xf0, 0x9f, 0x98], [0x98, 0x80, 0x41], [0xc3, 0xa9]]) {
    const ids = cut.map(byteId);
    assert.equal(tok.decode(ids), decoder.decode(ids));
  }
  assert.equal(tok.decode([byteId(0xc3)]), '\ufffd');
});

test('BOS and EOS are special tokens 0 and 1; encode adds them on request', () => {
  assert.equal(tok.bos, 0);
  assert.equal(tok.eos, 1);
  assert.equal(tok.vocabSize, 1200);
  assert.equal(tok.token(0), '<|bos|>');
  assert.equal(tok.token(1), '<|eos|>');
  const plain = tok.encode('hi there');
  assert.deepEqual(tok.encode('hi there', { bos: true, eos: true }), [0, ...plain, 1]);
  assert.equal(tok.decode([0, ...plain, 1]), '<|bos|>hi there<|eos|>');
  assert.equal(tok.decode([0, ...plain, 1], { skipSpecial: true }), 'hi there');
  // A literal "<|eos|>" in a document stays text unless special tokens are allowed.
  assert.ok(!tok.encode('a<|eos|>b').includes(1));
  assert.deepEqual(tok.encode('a<|eos|>b', { allowSpecial: true }), [...tok.encode('a'), 1, ...tok.encode('b')]);
  assert.equal(tok.decode(tok.encode('a<|eos|>b')), 'a<|eos|>b');
});

test('save writes a tokenizer.json that loads (here and in tokenizers.js) with the same ids and hash', () => {
  const path = join(dir, 'tok.json');
  tok.save(path);
  const loaded = loadTokenizer(path);
  assert.equal(loaded.hash(), tok.hash());
  assert.equal(loaded.vocabSize, tok.vocabSize);
  const fromFile = new HfTokenizer(JSON.parse(readFileSync(path, 'utf8')) as object, {});
  for (const s of SAMPLES) {
    assert.deepEqual(loaded.encode(s), tok.encode(s));
    assert.deepEqual(hfIds(fromFile, s), tok.encode(s));
  }
  // The hash is of the content, not the formatting.
  const compact = join(dir, 'compact.json');
  writeFileSync(compact, JSON.stringify(tok.toJSON()));
  assert.equal(loadTokenizer(compact).hash(), tok.hash());
  assert.match(tok.hash(), /^[0-9a-f]{64}$/);
  // A different tokenizer has a different hash.
  assert.notEqual(trainTokenizer(TRAIN_TEXTS, { vocab: 1100 }).hash(), tok.hash());
});

// Other Hugging Face byte-level BPE files: built from our trained one, checked against tokenizers.js.
type Json = Record<string, any>;
const variant = (edit: (j: Json) => void): Json => {
  const j = structuredClone(tok.toJSON()) as Json;
  edit(j);
  return j;
};
const LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function checkVariant(name: string, json: Json, texts: string[]): Tokenizer {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(json));
  const ours = loadTokenizer(path);
  const theirs = new HfTokenizer(json, {});
  for (const s of texts) assert.deepEqual(ours.encode(s, { allowSpecial: true }), hfIds(theirs, s), `${name}: ${JSON.stringify(s)}`);
  return ours;
}

test('loads GPT-2-style files: <|endoftext|> only (BOS = EOS), merges as [a, b] pairs', () => {
  const json = variant((j) => {
    const vocab = j.model.vocab as Record<string, number>;
    delete vocab['<|bos|>'];
    delete vocab['<|eos|>'];
    // Shift ids down by two and put <|endoftext|> last, as GPT-2 does.
    for (const k of Object.keys(vocab)) vocab[k] = vocab[k]! - 2;
    const eot = Object.keys(vocab).length;
    vocab['<|endoftext|>'] = eot;
    j.added_tokens = [{ id: eot, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }];
    j.model.merges = (j.model.merges as string[]).map((m) => m.split(' '));
  });
  const t = checkVariant('gpt2', json, [...SAMPLES, 'end<|endoftext|>start']);
  assert.equal(t.eos, t.vocabSize - 1);
  assert.equal(t.bos, t.eos);
});

test('loads Llama 3 / Qwen-style files: Split regex (with (?i:…)) then ByteLevel without regex, ignore_merges', () => {
  const json = variant((j) => {
    j.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: LLAMA3_SPLIT }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    };
    j.model.ignore_merges = true;
  });
  checkVariant('llama3', json, [...SAMPLES, "IT'S WE'LL You'RE 1234567 tokens\r\n\r\n  x"]);
});

test('loads files with add_prefix_space, a Unicode normalizer and a non-special added token', () => {
  checkVariant('prefix', variant((j) => (j.pre_tokenizer.add_prefix_space = true)), SAMPLES);
  checkVariant('nfkc', variant((j) => (j.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }] })), [...SAMPLES, 'ﬁ ① ｆｕｌｌ']);
  const added = variant((j) => {
    const id = Object.keys(j.model.vocab).length;
    j.added_tokens.push({ id, content: '[MASK]', single_word: false, lstrip: true, rstrip: false, normalized: false, special: false });
  });
  const t = checkVariant('added', added, ['a [MASK] b', '[MASK][MASK]', 'x   [MASK]']);
  // Non-special added tokens are matched even without allowSpecial, as in Hugging Face.
  assert.ok(t.encode('a [MASK] b').includes(t.vocabSize - 1));
});

test('tokenizer_config.json beside the file names BOS and EOS', () => {
  const sub = join(dir, 'model');
  rmSync(sub, { recursive: true, force: true });
  tok.save(join(sub, 'tokenizer.json'));
  writeFileSync(join(sub, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|eos|>', eos_token: { content: '<|bos|>' } }));
  const t = loadTokenizer(sub);
  assert.equal(t.bos, 1);
  assert.equal(t.eos, 0);
  assert.equal(loadTokenizer(join(sub, 'tokenizer.json'), { bosToken: '<|bos|>', eosToken: '<|eos|>' }).eos, 1);
});

function refuses(name: string, content: string | Json, pattern: RegExp): void {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  assert.throws(
    () => loadTokenizer(path),
    (e: unknown) => e instanceof UserError && e.message.includes(path) && pattern.test(e.message),
    name,
  );
}

test('bad or unsupported files are refused with a UserError naming the file and the problem', () => {
  assert.throws(() => loadTokenizer(join(dir, 'missing.json')), (e: unknown) => e instanceof UserError && /missing\.json does not exist/.test(e.message));
  refuses('invalid', '{"model": ', /invalid JSON/);
  refuses('array', '[1, 2]', /not a JSON object/);
  refuses('nomodel', { version: '1.0' }, /no 'model' object/);
  refuses('unigram', { model: { type: 'Unigram', vocab: [['a', -1]] }, pre_tokenizer: { type: 'Metaspace' } }, /Unigram \(SentencePiece\) model; only BPE models are supported/);
  refuses('wordpiece', { model: { type: 'WordPiece', vocab: { a: 0 } } }, /WordPiece model/);
  // A Metaspace step makes it a SentencePiece-style file, whose decoder cannot be ByteLevel; and the reverse.
  refuses('metaspace', variant((j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '▁' })), /unsupported decoder ByteLevel/);
  refuses('metaspace-split', variant((j) => (j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Metaspace', replacement: '▁' }, j.pre_tokenizer] })), /unsupported pre_tokenizer Metaspace in a byte-level BPE/);
  refuses('bytefallback', variant((j) => (j.model.byte_fallback = true)), /byte_fallback/);
  refuses('decoder', variant((j) => (j.decoder = { type: 'WordPiece' })), /unsupported decoder WordPiece/);
  refuses('normalizer', variant((j) => (j.normalizer = { type: 'Lowercase' })), /unsupported normalizer Lowercase/);
  refuses('badmerge', variant((j) => j.model.merges.push('Ġzzz qqq')), /merges\[\d+\].*not in model.vocab/);
  refuses('nobytes', variant((j) => delete j.model.vocab['Ā']), /lacks the byte symbol/);
  refuses('noeos', variant((j) => {
    delete j.model.vocab['<|eos|>'];
    j.added_tokens = j.added_tokens.filter((t: Json) => t.content !== '<|eos|>');
  }), /no end-of-sequence token/);
});

test('trainTokenizer rejects a vocabulary smaller than the bytes plus special tokens', () => {
  assert.throws(() => trainTokenizer(['abc'], { vocab: 257 }), (e: unknown) => e instanceof UserError && /vocab must be an integer ≥ 258/.test(e.message));
  // A tiny corpus runs out of pairs: the vocabulary is smaller than asked, never padded with junk.
  const small = trainTokenizer(['ab ab ab'], { vocab: 1000 });
  assert.ok(small.vocabSize < 1000 && small.vocabSize > 258);
  assert.equal(small.decode(small.encode('ab ab ab')), 'ab ab ab');
});

test('encoding is linear-ish on a long piece without spaces (no quadratic blow-up)', () => {
  // 200k characters of one "word" and of one whitespace run: a quadratic merge loop would take minutes.
  const word = 'abcdefghij'.repeat(20_000);
  assert.equal(tok.decode(tok.encode(word)), word);
  const spaces = ' '.repeat(200_000);
  assert.equal(tok.decode(tok.encode(spaces)), spaces);
});
