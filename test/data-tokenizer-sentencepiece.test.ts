/**
 * SentencePiece-style BPE (Llama 2, TinyLlama, Mistral) from real tokenizer.json files shipped in npm
 * devDependencies (test/helpers/real-tokenizers.ts): ids and decoded text equal those of an
 * independent implementation, @huggingface/tokenizers (tokenizers.js), on a varied text set and on
 * random strings; for Llama 2 also those of llama-tokenizer-js. Where tokenizers.js departs from
 * Hugging Face's Rust library, which defines the format (Metaspace `split`, `fuse_unk`, ByteFallback
 * decoding of invalid bytes), the Rust library's documented behaviour is checked instead. Unsupported
 * files are refused naming the part; `adabatch tokenizer` and `init_from` use such a tokenizer.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { brownDocuments } from '../src/data/brown.js';
import { loadTokenizer, Tokenizer } from '../src/data/tokenizer.js';
import { hfConfigFromModel } from '../src/io/hf.js';
import { writeSafetensorsFd } from '../src/io/safetensors.js';
import { modelConfig } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { loadTrainConfig } from '../src/train/config.js';
import { loadResumeConfig } from '../src/train/resume.js';
import { runTrain } from '../src/train/run.js';
import { UserError } from '../src/util/errors.js';
import { type Json, llama2Json, llama2Reference, MISTRAL_DIR, mistralConfigText, mistralJson } from './helpers/real-tokenizers.js';
import { tempDir } from './helpers/tmp.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(root, 'bin/adabatch.js');
const dir = tempDir('adabatch-sp-');

const SHORT_TEXTS = [
  'Hello, world!',
  'The quick brown fox jumps over the lazy dog.',
  // Scripts: Cyrillic, Arabic, Devanagari, CJK, Greek, Latin with diacritics.
  'Съешь же ещё этих мягких французских булок, да выпей чаю.',
  'مرحبا بالعالم! هذه جملة عربية للاختبار.',
  'नमस्ते दुनिया, यह देवनागरी लिपि है।',
  '日本語のテキストと中文字符。한국어 텍스트입니다.',
  'Ελληνικά κείμενα, Türkçe ğüşıöç, Tiếng Việt có dấu, naïve café.',
  // Emoji: skin tones, ZWJ sequences, flags, variation selectors.
  'emoji 😀🎉 👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷 ❤️ 🏳️‍🌈',
  // Code.
  'def f(x):\n    return x ** 2  # square\n\nclass A:\n\tpass\n',
  'const a = [1, 2, 3].map((x) => x * 2); // {}<>&|^~`$@#%',
  '<html><body class="x">&amp; &lt;</body></html>',
  'numbers 0 12 345 6789 3.14159 1,000,000',
  // Whitespace runs, leading and trailing.
  '  leading spaces',
  'trailing spaces   ',
  'tabs\t\tand\ttabs',
  'lines\n\n\nand\r\nwindows\r\n',
  '\n',
  ' ',
  '    ',
  '\t',
  // Characters absent from both vocabularies: byte fallback.
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀 ꧁꧂ \u0000\u0007 \uffff 🦩 𠜎',
  '',
  // "▁" in the text itself.
  '▁ ▁▁x▁',
];
const TEXTS = [
  ...SHORT_TEXTS,
  ...brownDocuments()
    .slice(0, 3)
    .map((d) => d.text),
];
/** Texts holding special-token strings, which tokenizers.js always matches (we do with allowSpecial). */
const WITH_SPECIAL = ['a<s>b</s>c <unk>', '<s>Hello', 'x </s>  ', '</s></s>'];

const hfIds = (h: HfTokenizer, text: string): number[] => (text.length === 0 ? [] : h.encode(text, { add_special_tokens: false }).ids);
/** tokenizers.js's decode as transformers' decode with clean_up_tokenization_spaces off (Llama's and Mistral's config). */
const hfText = (h: HfTokenizer, ids: number[]): string => (ids.length === 0 ? '' : h.decode(ids, { clean_up_tokenization_spaces: false }));

const variant = (base: Json, edit: (j: Json) => void): Json => {
  const j = structuredClone(base);
  edit(j);
  return j;
};

const REAL: Array<[string, () => Json]> = [
  ['Mistral 7B', mistralJson],
  ['Llama 2 / TinyLlama', llama2Json],
];

/** Ours and tokenizers.js on the same file: the same ids, and the same text back. */
function checkAgainstHf(name: string, json: Json, texts: string[]): Tokenizer {
  const ours = Tokenizer.fromJSON(json, {}, name);
  const theirs = new HfTokenizer(json, {});
  for (const s of texts) {
    const ids = ours.encode(s, { allowSpecial: true });
    assert.deepEqual(ids, hfIds(theirs, s), `${name} encode ${JSON.stringify(s)}`);
    assert.equal(ours.decode(ids), hfText(theirs, ids), `${name} decode ${JSON.stringify(s)}`);
  }
  return ours;
}

test('Mistral 7B and Llama 2 tokenizer.json: ids and decoded text equal tokenizers.js on a varied text set', () => {
  for (const [name, json] of REAL) {
    const tok = checkAgainstHf(name, json(), [...TEXTS, ...WITH_SPECIAL]);
    assert.equal(tok.vocabSize, 32000);
    // Prepend("▁") when encoding and Strip(" ", 1) when decoding cancel: every text without "▁" comes back.
    for (const s of TEXTS.filter((t) => !t.includes('▁'))) assert.equal(tok.decode(tok.encode(s)), s, `${name} round trip ${JSON.stringify(s)}`);
  }
  // The files are what they say: the ids of "Hello world!" that each model's tokenizer gives.
  assert.deepEqual(Tokenizer.fromJSON(mistralJson()).encode('Hello world!'), [22557, 1526, 28808]);
  assert.deepEqual(Tokenizer.fromJSON(llama2Json()).encode('Hello world!'), [15043, 3186, 29991]);
});

test('Llama 2: ids equal a third implementation, llama-tokenizer-js', () => {
  const tok = Tokenizer.fromJSON(llama2Json(), {}, 'llama2');
  for (const s of TEXTS) assert.deepEqual(tok.encode(s), llama2Reference(s), JSON.stringify(s));
});

test('ids and decoded text equal tokenizers.js on random strings', () => {
  const pieces = fc.constantFrom(' ', '  ', '\n', '\t', '\r\n', 'a', 'the', 'The', 'ing', '1', '23', '.', ',', '!?', 'é', 'ß', '😀', '👨‍👩‍👧', '中文', 'ру', 'ع', 'क्ष', '𓀀', '\u0000', '▁', '<s>', '</s>');
  for (const [name, json] of REAL) {
    const j = json();
    const ours = Tokenizer.fromJSON(j, {}, name);
    const theirs = new HfTokenizer(j, {});
    for (const arb of [fc.string({ unit: 'grapheme', maxLength: 30 }), fc.string({ unit: 'binary', maxLength: 30 }), fc.array(pieces, { maxLength: 25 }).map((a) => a.join(''))]) {
      fc.assert(
        fc.property(arb, (s) => {
          const ids = ours.encode(s, { allowSpecial: true });
          assert.deepEqual(ids, hfIds(theirs, s));
          assert.equal(ours.decode(ids), hfText(theirs, ids));
        }),
        { numRuns: 150 },
      );
    }
  }
});

test('characters outside the vocabulary become their UTF-8 bytes as <0xNN> tokens, and decode back', () => {
  const tok = Tokenizer.fromJSON(llama2Json(), {}, 'llama2');
  const byteId = (b: number): number => tok.tokenId(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)!;
  assert.equal(byteId(0), 3);
  assert.equal(byteId(255), 258);
  // U+13000 EGYPTIAN HIEROGLYPH A001 is F0 93 80 80; "▁" comes from the Prepend normalizer.
  assert.deepEqual(tok.encode('𓀀'), [tok.tokenId('▁')!, ...[0xf0, 0x93, 0x80, 0x80].map(byteId)]);
  assert.equal(tok.decode(tok.encode('a𓀀b')), 'a𓀀b');
  // A lone surrogate (not UTF-8) falls back to U+FFFD's bytes, as TextEncoder and tokenizers.js do.
  assert.deepEqual(tok.encode('\ud800').slice(1), [0xef, 0xbf, 0xbd].map(byteId));
});

test('long runs with no "▁" to cut at (spaces, CJK, byte fallback) encode without a quadratic blow-up', () => {
  // Each is one word of 100k symbols for the merges; a quadratic merge loop would take minutes.
  const tok = Tokenizer.fromJSON(mistralJson(), {}, 'mistral');
  for (const s of [' '.repeat(100_000), '中'.repeat(100_000), 'ab'.repeat(50_000), '𓀀'.repeat(25_000)]) assert.equal(tok.decode(tok.encode(s)), s);
});

test('ByteFallback decoding follows Hugging Face: a run of byte tokens that is not UTF-8 gives one U+FFFD per byte', () => {
  // Hugging Face's own cases (tokenizers/src/decoders/byte_fallback.rs). tokenizers.js decodes such runs
  // with TextDecoder, one U+FFFD per invalid sequence ("\ufffda" for the first case).
  const tok = Tokenizer.fromJSON(mistralJson(), {}, 'mistral');
  const ids = (...tokens: string[]): number[] => tokens.map((t) => tok.tokenId(t)!);
  assert.equal(tok.decode(ids('<0xE5>', '<0x8F>', 'a')), '\ufffd\ufffda');
  assert.equal(tok.decode(ids('<0xE5>')), '\ufffd');
  assert.equal(tok.decode(ids('<0xE5>', '<0x8F>', '<0xAB>', 'a')), '叫a');
  // Special tokens go through the decoder as their text, as in Hugging Face.
  assert.equal(tok.decode([1, ...tok.encode('Hello')]), '<s> Hello');
  assert.equal(tok.decode([1, ...tok.encode('Hello'), 2], { skipSpecial: true }), 'Hello');
});

test('BOS and EOS come from tokenizer_config.json; adabatch tokenizer encode/decode use a model folder', () => {
  const tok = loadTokenizer(MISTRAL_DIR);
  assert.equal(tok.bos, 1);
  assert.equal(tok.eos, 2);
  assert.deepEqual(tok.encode('Hello world!', { bos: true, eos: true }), [1, 22557, 1526, 28808, 2]);
  // A config naming other tokens wins over the well-known names.
  const sub = join(dir, 'named');
  mkdirSync(sub, { recursive: true });
  writeFileSync(join(sub, 'tokenizer.json'), JSON.stringify(mistralJson()));
  writeFileSync(join(sub, 'tokenizer_config.json'), JSON.stringify({ ...JSON.parse(mistralConfigText()), bos_token: { content: '</s>' }, eos_token: '<unk>' }));
  assert.deepEqual([loadTokenizer(sub).bos, loadTokenizer(sub).eos], [2, 0]);

  const enc = spawnSync(process.execPath, [BIN, 'tokenizer', 'encode', '--tokenizer', MISTRAL_DIR, '--text', 'Hello world! 日本', '--bos'], { encoding: 'utf8' });
  assert.equal(enc.status, 0, enc.stderr);
  const ids = JSON.parse(enc.stdout) as number[];
  assert.deepEqual(ids, [1, ...hfIds(new HfTokenizer(mistralJson(), {}), 'Hello world! 日本')]);
  const dec = spawnSync(process.execPath, [BIN, 'tokenizer', 'decode', '--tokenizer', join(MISTRAL_DIR, 'tokenizer.json'), '--ids', JSON.stringify(ids), '--skip-special'], { encoding: 'utf8' });
  assert.equal(dec.status, 0, dec.stderr);
  assert.equal(dec.stdout, 'Hello world! 日本');
});

/** A Metaspace pre-tokenizer instead of the Prepend/Replace normalizer (how newer conversions write Llama's). */
const metaspace = (base: Json, ms: Json): Json =>
  variant(base, (j) => {
    j.normalizer = null;
    j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', ...ms };
  });

test('Metaspace pre-tokenizer: prepend_scheme first, always and never equal tokenizers.js', () => {
  const base = llama2Json();
  const texts = [...SHORT_TEXTS, ...WITH_SPECIAL];
  for (const prepend_scheme of ['first', 'always', 'never']) checkAgainstHf(`metaspace-${prepend_scheme}`, metaspace(base, { prepend_scheme, split: false }), texts);
  // Older files: add_prefix_space instead of prepend_scheme.
  checkAgainstHf('metaspace-legacy', metaspace(base, { add_prefix_space: true, str_rep: '▁' }), ['Hello world', 'a b c']);
  // "first": only the text's first stretch gets the "▁", not one after a special token.
  const first = Tokenizer.fromJSON(metaspace(base, { prepend_scheme: 'first', split: false }));
  const hello = first.tokenId('▁Hello')!;
  assert.deepEqual(first.encode('Hello<s>Hello', { allowSpecial: true }), [hello, 1, first.tokenId('Hello')!]);
});

test('Metaspace split: true cuts before every "▁" as Hugging Face does (tokenizers.js does not split)', () => {
  const base = llama2Json();
  // The oracle: Hugging Face's MergedWithNext pieces, each encoded by tokenizers.js on its own.
  const plain = new HfTokenizer(variant(base, (j) => (j.normalizer = null)), {});
  const pieces = (s: string, prepend: boolean): string[] => {
    let t = s.replaceAll(' ', '▁');
    if (prepend && t.length > 0 && !t.startsWith('▁')) t = '▁' + t;
    return t.split(/(?=▁)/u).filter((p) => p.length > 0);
  };
  // Hugging Face's own case (pre_tokenizers/metaspace.rs).
  assert.deepEqual(pieces('Hey   friend!', true), ['▁Hey', '▁', '▁', '▁friend!']);
  for (const scheme of ['always', 'never'] as const) {
    const ours = Tokenizer.fromJSON(metaspace(base, { prepend_scheme: scheme, split: true }));
    for (const s of TEXTS) assert.deepEqual(ours.encode(s), pieces(s, scheme === 'always').flatMap((p) => hfIds(plain, p)), `${scheme}: ${JSON.stringify(s)}`);
  }
});

/** A small SentencePiece-style file: characters, "▁", merges, no byte tokens. */
function tinyJson(model: Json): Json {
  const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2, '▁': 3, a: 4, b: 5, '▁a': 6, ab: 7, '▁ab': 8, '▁ba': 9 };
  return {
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: { type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, vocab, merges: ['▁ a', 'a b', '▁a b'], ...model },
  };
}

test('unk_token and fuse_unk without byte fallback; ignore_merges', () => {
  // Unfused unk tokens: tokenizers.js agrees (it does not implement fuse_unk).
  const unfused = checkAgainstHf('unk', tinyJson({}), ['aéèb', 'ab ba', 'é', 'a é è b', 'ééé']);
  assert.deepEqual(unfused.encode('aéèb'), [6, 0, 0, 5]);
  // fuse_unk: a run of unknown characters is one unk token (Hugging Face's BPE::merge_word).
  const fused = Tokenizer.fromJSON(tinyJson({ fuse_unk: true }));
  assert.deepEqual(fused.encode('aéèb'), [6, 0, 5]);
  assert.deepEqual(fused.encode('éa é'), [3, 0, 4, 3, 0]);
  assert.equal(fused.decode(fused.encode('aéèb')), 'a<unk>b');
  // ignore_merges: a word in the vocabulary is taken whole though no merge makes it ("▁ba").
  assert.deepEqual(Tokenizer.fromJSON(tinyJson({})).encode('ba'), [3, 5, 4]);
  checkAgainstHf('ignore_merges', tinyJson({ ignore_merges: true }), ['ba', 'ab', 'ba ba', 'bab']);
  assert.deepEqual(Tokenizer.fromJSON(tinyJson({ ignore_merges: true })).encode('ba'), [9]);
  // A merge that joins a character to a following "▁" makes the text one word again (no cutting): still equal.
  const joined = tinyJson({ vocab: { ...tinyJson({}).model.vocab, 'b▁': 10 }, merges: ['▁ a', 'a b', '▁a b', 'b ▁'] });
  checkAgainstHf('joined', joined, ['ab ab', 'b a', 'bb  a']);
});

function refuses(name: string, json: Json, pattern: RegExp): void {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(json));
  assert.throws(
    () => loadTokenizer(path),
    (e: unknown) => {
      assert.ok(e instanceof UserError, `${name}: expected a UserError, got ${String(e)}`);
      assert.ok(e.message.startsWith(`tokenizer ${path}: `), e.message);
      assert.match(e.message, pattern, name);
      return true;
    },
  );
}

test('what is not supported is refused, naming it', () => {
  const base = tinyJson({ byte_fallback: false });
  const edit = (e: (j: Json) => void): Json => variant(base, e);
  refuses('unigram', edit((j) => (j.model = { type: 'Unigram', unk_id: 0, vocab: [['<unk>', 0], ['▁a', -1]] })), /it holds a Unigram \(SentencePiece\) model; only BPE models are supported \(byte-level, or SentencePiece-style with byte_fallback\)/);
  refuses('wordpiece', edit((j) => (j.model = { type: 'WordPiece', unk_token: '[UNK]', vocab: { a: 0 } })), /it holds a WordPiece model; only BPE models/);
  refuses('wordlevel', edit((j) => (j.model = { type: 'WordLevel', unk_token: '<unk>', vocab: { a: 0 } })), /it holds a WordLevel model; only BPE models/);
  refuses('lowercase', edit((j) => j.normalizer.normalizers.push({ type: 'Lowercase' })), /unsupported normalizer Lowercase \(supported: NFC, NFD, NFKC, NFKD, Prepend, Replace of a string, or none\)/);
  refuses('precompiled', edit((j) => (j.normalizer = { type: 'Precompiled', precompiled_charsmap: 'AA==' })), /unsupported normalizer Precompiled/);
  refuses('replace-regex', edit((j) => (j.normalizer.normalizers[1].pattern = { Regex: ' {2,}' })), /normalizer Replace with pattern \{"Regex":" \{2,\}"\} is not supported \(only a non-empty \{"String": …\}\)/);
  refuses('whitespace', edit((j) => (j.pre_tokenizer = { type: 'Whitespace' })), /unsupported pre_tokenizer Whitespace \(supported without a ByteLevel step: Metaspace, or none\)/);
  refuses('split', edit((j) => (j.pre_tokenizer = { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithPrevious', invert: false })), /unsupported pre_tokenizer Split \(supported without a ByteLevel step/);
  refuses('digits', edit((j) => (j.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Metaspace', replacement: '▁' }, { type: 'Digits', individual_digits: true }] })), /unsupported pre_tokenizer Digits/);
  refuses('ms-replacement', edit((j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '__' })), /pre_tokenizer Metaspace replacement "__" is not one character/);
  refuses('ms-scheme', edit((j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'sometimes' })), /prepend_scheme "sometimes" is not first, always or never/);
  refuses('ms-contradiction', edit((j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '▁', add_prefix_space: false, prepend_scheme: 'always' })), /add_prefix_space: false contradicts prepend_scheme "always"/);
  refuses('metaspace-decoder', edit((j) => (j.decoder = { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always' })), /unsupported decoder Metaspace \(supported without a ByteLevel pre-tokenizer: Replace, ByteFallback, Fuse and Strip/);
  refuses('ctc-decoder', edit((j) => j.decoder.decoders.push({ type: 'CTC' })), /unsupported decoder CTC/);
  refuses('bytelevel-decoder', edit((j) => (j.decoder = { type: 'ByteLevel' })), /unsupported decoder ByteLevel/);
  refuses('no-decoder', edit((j) => (j.decoder = null)), /no decoder \(supported without a ByteLevel pre-tokenizer/);
  refuses('strip', edit((j) => (j.decoder.decoders[3].content = '  ')), /decoder Strip content "  " is not one character/);
  refuses('no-unk', edit((j) => (j.model.unk_token = null)), /neither byte_fallback nor an unk_token, so characters outside its vocabulary would be dropped/);
  refuses('unk-missing', edit((j) => (j.model.unk_token = '<UNK>')), /BPE unk_token "<UNK>" is not in model.vocab/);
  refuses('dropout', edit((j) => (j.model.dropout = 0.1)), /BPE dropout is not supported/);
  refuses('prefix', edit((j) => (j.model.continuing_subword_prefix = '##')), /BPE continuing_subword_prefix "##" is not supported/);
  refuses('normalized', edit((j) => (j.added_tokens[1].normalized = true)), /added_tokens\[1\] \("<s>"\) has normalized: true, which is not supported in a file with a normalizer/);
  const noByte = variant(mistralJson(), (j) => delete j.model.vocab['<0x41>']);
  refuses('byte-missing', noByte, /BPE byte_fallback needs the 256 byte tokens <0x00> … <0xFF> in model\.vocab; 1 are missing \(<0x41>\)/);
});

/**
 * A one-layer Hugging Face Llama directory with TinyLlama's tokenizer (Llama 2's) and a
 * tokenizer_config.json naming BOS and EOS: "<s>", and "<unk>" for EOS, so that the test sees the config
 * being read (the well-known names would give "</s>").
 */
function tinyLlamaDir(): string {
  const d = join(dir, 'tinyllama');
  mkdirSync(d, { recursive: true });
  const config = modelConfig(undefined, { vocab: 32000, d_model: 16, n_layers: 1, n_heads: 2, n_kv_heads: 1, ffn_dim: 32, seq_len: 16, tie_embeddings: true });
  let seed = 1;
  const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.04;
  const tensors = buildLayout(config).units.flatMap((u) =>
    u.views.map((v) => {
      const data = new Float32Array(v.size);
      for (let i = 0; i < data.length; i++) data[i] = v.name.endsWith('norm.weight') ? 1 : rand();
      return { name: v.name, dtype: 'F32' as const, shape: v.shape, data };
    }),
  );
  const fd = openSync(join(d, 'model.safetensors'), 'w');
  writeSafetensorsFd(fd, tensors, { format: 'pt' });
  closeSync(fd);
  writeFileSync(join(d, 'config.json'), JSON.stringify(hfConfigFromModel(config)));
  writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(llama2Json()));
  writeFileSync(join(d, 'tokenizer_config.json'), JSON.stringify({ ...JSON.parse(mistralConfigText()), bos_token: '<s>', eos_token: { content: '<unk>' } }));
  return d;
}

test('init_from a Hugging Face directory with a SentencePiece tokenizer trains on text with it, and resumes', async () => {
  const hf = tinyLlamaDir();
  const corpus = join(dir, 'corpus.txt');
  writeFileSync(corpus, SHORT_TEXTS.join('\n').repeat(3));
  const run = join(dir, 'run');
  const quiet = { log: () => {} };
  const cfg = loadTrainConfig(undefined, [`run_dir=${run}`, `init_from=${hf}`, `data={corpus: {paths: [${JSON.stringify(corpus)}]}, val_fraction: 0, cache_dir: ${JSON.stringify(join(dir, 'cache'))}}`, 'batch={schedule: constant, batch: 2, max_micro: 2}', 'budget.samples=4', 'eval.every_samples=0', 'threads=1', 'seed=1']);
  await runTrain(cfg, quiet);
  // The run's tokenizer is the directory's, with its BOS/EOS (checkpoints record their ids).
  assert.equal(loadTokenizer(join(run, 'tokenizer.json')).hash(), loadTokenizer(hf).hash());
  const checkpoints = (): string[] => readdirSync(join(run, 'checkpoints')).sort();
  const ckConfig = (name: string): Json => JSON.parse(readFileSync(join(run, 'checkpoints', name, 'config.json'), 'utf8')) as Json;
  const first = checkpoints().at(-1)!;
  assert.deepEqual([ckConfig(first).bos_token_id, ckConfig(first).eos_token_id, ckConfig(first).vocab_size], [1, 0, 32000]);
  // A resumed run does not read init_from again: it finds the same tokenizer in the run directory.
  await runTrain(loadResumeConfig(run, undefined, ['budget.samples=8']), { ...quiet, resume: true });
  const last = checkpoints().at(-1)!;
  assert.notEqual(last, first);
  assert.equal(ckConfig(last).eos_token_id, 0);
  assert.ok(existsSync(join(run, 'init-tokenizer', 'tokenizer_config.json')));
  // generate reads the directory's tokenizer and decodes SentencePiece text.
  const gen = spawnSync(process.execPath, [BIN, 'generate', '--ckpt', hf, '--prompt', 'Hello world', '--max-tokens', '3', '--temperature', '0'], { encoding: 'utf8' });
  assert.equal(gen.status, 0, gen.stderr);
  assert.ok(gen.stdout.startsWith('Hello world'), gen.stdout);
});
