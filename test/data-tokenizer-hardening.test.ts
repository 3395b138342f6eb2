/**
 * Tokenizer files from untrusted sources: ids that would make us allocate gigabytes, ids that stand
 * for two tokens, Split patterns that would make a backtracking engine hang (they run on a
 * linear-time engine, which must give exactly the ids V8's RegExp and tokenizers.js give), and
 * `adabatch generate` with a tokenizer smaller than the model's vocabulary. Anything that could hang
 * or exhaust memory runs in a worker or child process with a time and memory bound.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { brownDocuments } from '../src/data/brown.js';
import { GPT2_SPLIT_SOURCE } from '../src/data/bytelevel.js';
import type { PieceFinder } from '../src/data/bytelevel.js';
import { LOOKAHEAD_HORIZON, onigurumaToJs, patternFinder } from '../src/data/tokenizer-json.js';
import { Tokenizer, trainTokenizer } from '../src/data/tokenizer.js';
import { hfConfigFromModel } from '../src/io/hf.js';
import { writeSafetensorsFd } from '../src/io/safetensors.js';
import { modelConfig } from '../src/model/config.js';
import { buildLayout } from '../src/model/layout.js';
import { UserError } from '../src/util/errors.js';
import { tempDir } from './helpers/tmp.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(root, 'bin/adabatch.js');
const dir = tempDir('adabatch-tok-hard-');
const tok = trainTokenizer(
  brownDocuments()
    .slice(0, 20)
    .map((d) => d.text),
  { vocab: 300 },
);

type Json = Record<string, any>;
const variant = (edit: (j: Json) => void): Json => {
  const j = structuredClone(tok.toJSON()) as Json;
  edit(j);
  return j;
};
const writeJson = (name: string, json: Json): string => {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(json));
  return path;
};
/** A tokenizer whose pre-tokenizer is one Split step with this (Oniguruma) pattern, then ByteLevel without its regex. */
const withSplit = (regex: string): Json =>
  variant((j) => {
    j.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    };
  });

function refuses(json: Json, ...patterns: Array<RegExp | string>): void {
  assert.throws(
    () => Tokenizer.fromJSON(json, {}, 'bad/tokenizer.json'),
    (e: unknown) => {
      assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
      assert.match(e.message, /^tokenizer bad\/tokenizer\.json: /);
      for (const p of patterns) {
        if (typeof p === 'string') assert.ok(e.message.includes(p), `${e.message}\nlacks ${p}`);
        else assert.match(e.message, p);
      }
      return true;
    },
  );
}

function cli(args: string[], opts: { heapMb?: number } = {}) {
  // A small heap and a timeout: a regression must fail fast, not take the machine's memory.
  return spawnSync(process.execPath, [`--max-old-space-size=${opts.heapMb ?? 256}`, BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
}

/** Runs `body` (the text of an async function of workerData) in a worker; rejects after `ms`. */
function inWorker<T>(ms: number, body: string, data: unknown): Promise<T> {
  const code = `const { parentPort, workerData } = require('node:worker_threads');
    (async (workerData) => { ${body} })(workerData).then((r) => parentPort.postMessage({ r }), (e) => parentPort.postMessage({ e: String(e && e.stack || e) }));`;
  const w = new Worker(code, { eval: true, workerData: data });
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      void w.terminate();
      reject(new Error(`still running after ${ms} ms (a hang)`));
    }, ms);
    w.once('message', (m: { r?: T; e?: string }) => {
      clearTimeout(timer);
      void w.terminate();
      if (m.e !== undefined) reject(new Error(m.e));
      else resolve(m.r as T);
    });
    w.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

const TOKENIZER_MODULE = new URL('../src/data/tokenizer.js', import.meta.url).href;
const JSON_MODULE = new URL('../src/data/tokenizer-json.js', import.meta.url).href;

/** Encodes texts with a tokenizer.json in a worker, within `ms`. */
function encodeBounded(json: Json, texts: string[], ms: number): Promise<number[][]> {
  return inWorker(ms, `const { Tokenizer } = await import(workerData.module); const t = Tokenizer.fromJSON(workerData.json, {}, 'w'); return workerData.texts.map((s) => t.encode(s));`, { module: TOKENIZER_MODULE, json, texts });
}

// ---------------------------------------------------------------------------------------------
// Ids

test('a huge id in model.vocab or added_tokens is refused before anything is allocated (tokenizer encode)', () => {
  const cases: Array<[string, Json, RegExp]> = [
    ['vocab-huge.json', variant((j) => (j.model.vocab.foo = 1_000_000_000)), /model\.vocab\["foo"\] is 1000000000, but the file defines only 301 tokens \(ids must be below 2 × 301 \+ 1024 = 1626\)/],
    ['added-huge.json', variant((j) => j.added_tokens.push({ id: 2147483648, content: '<x>', special: true })), /added_tokens\[2\]\.id is 2147483648, but the file defines only 301 tokens/],
  ];
  for (const [name, json, re] of cases) {
    const path = writeJson(name, json);
    const r = cli(['tokenizer', 'encode', '--tokenizer', path, '--text', 'hi']);
    assert.equal(r.status, 2, `${name}: exit ${r.status} ${r.signal ?? ''}\n${r.stderr.slice(-500)}`);
    assert.ok(r.stderr.startsWith(`adabatch: tokenizer ${path}: `), r.stderr);
    assert.match(r.stderr, re);
  }
});

test('ids: negative, non-integer, too sparse, or standing for two tokens are refused; dense files and repeated added tokens load', () => {
  refuses(variant((j) => (j.model.vocab.foo = -1)), /model\.vocab\["foo"\] is -1, not a non-negative integer id/);
  refuses(variant((j) => (j.model.vocab.foo = 2.5)), /model\.vocab\["foo"\] is 2\.5/);
  refuses(variant((j) => (j.model.vocab.foo = '7')), /model\.vocab\["foo"\] is "7"/);
  refuses(variant((j) => (j.model.vocab.foo = 5000)), /model\.vocab\["foo"\] is 5000, but the file defines only 301 tokens/);
  // Two strings, one id: in model.vocab, or an added token on a model token's id, or two added tokens.
  refuses(variant((j) => (j.model.vocab.foo = 100)), /model\.vocab\[".*"\] and model\.vocab\["foo"\] both have id 100/);
  refuses(variant((j) => j.added_tokens.push({ id: 100, content: '<x>', special: true })), /added_tokens\[2\] \("<x>", id 100\): model\.vocab gives id 100 to /);
  refuses(variant((j) => j.added_tokens.push({ id: 300, content: '<x>' }, { id: 300, content: '<y>' })), /added_tokens\[3\] \("<y>", id 300\): added_tokens\[2\] gives id 300 to "<x>"/);
  // One token, two ids.
  refuses(variant((j) => (j.added_tokens[1].id = 5)), /added_tokens\[1\] \("<\|eos\|>", id 5\): model\.vocab gives "<\|eos\|>" id 1/);
  refuses(variant((j) => j.added_tokens.push({ id: 300, content: '<x>' }, { id: 301, content: '<x>' })), /added_tokens\[3\] \("<x>", id 301\): added_tokens\[2\] gives "<x>" id 300/);
  refuses(variant((j) => (j.added_tokens[0].id = 1e21)), /added_tokens\[0\] needs a non-negative integer id/);
  // Hugging Face gives an added token the next id after the vocabulary and the added tokens before it.
  refuses(variant((j) => j.added_tokens.push({ id: 1200, content: '<|far|>' })), /added_tokens\[2\] \("<\|far\|>", id 1200\): Hugging Face gives it id 300, the next after model\.vocab's 300 tokens/);
  refuses(variant((j) => j.added_tokens.push({ id: 301, content: '<|b|>' }, { id: 300, content: '<|a|>' })), /added_tokens\[2\] \("<\|b\|>", id 301\): Hugging Face gives it id 300/);

  // Legitimate: added tokens repeating a model.vocab entry (GPT-2, ours), the same added token twice,
  // added tokens after the model's ids (Llama 3), and a few unused ids.
  const ok = variant((j) => {
    j.model.vocab.foo = 1000;
    j.added_tokens.push({ id: 1, content: '<|eos|>', special: true }, { id: 301, content: '<|a|>', special: true }, { id: 302, content: '<|b|>', special: true });
  });
  const t = Tokenizer.fromJSON(ok, {}, 'ok');
  assert.equal(t.vocabSize, 1001);
  assert.deepEqual(t.encode('x<|b|>', { allowSpecial: true }).slice(-1), [302]);
  assert.equal(t.decode([1000, 302, 1]), 'foo<|b|><|eos|>');
  assert.equal(t.token(700), '');
  assert.equal(t.decode([700]), '');
  // Llama 3's shape: 256 special tokens numbered after the model's tokens.
  const llama = Tokenizer.fromJSON(
    variant((j) => {
      for (let i = 0; i < 256; i++) j.added_tokens.push({ id: 300 + i, content: `<|reserved_special_token_${i}|>`, special: true });
    }),
    {},
    'llama',
  );
  assert.equal(llama.vocabSize, 556);
  assert.equal(llama.tokenId('<|reserved_special_token_255|>'), 555);
});

// ---------------------------------------------------------------------------------------------
// Split patterns

test('a backtracking Split pattern ((a+)+$ on 42 × "a") encodes in linear time, with the ids V8 gives', async () => {
  const json = withSplit('(a+)+$');
  const texts = ['a'.repeat(42) + 'b', 'x ' + 'a'.repeat(100_000) + '!', 'aaa', 'baaa'];
  const ids = await encodeBounded(json, texts, 10_000);
  // The pattern means what it means in JavaScript: a run of a's at the very end is one piece.
  const plain = Tokenizer.fromJSON(withSplit('a$'), {}, 'plain');
  assert.deepEqual(ids[0], plain.encode(texts[0]!));
  const ref = (s: string): number[] => {
    const m = /(a+)+$/u.exec(s);
    return m === null ? tok.encode(s) : [...tok.encode(s.slice(0, m.index)), ...tok.encode(m[0])];
  };
  assert.deepEqual(ids[2], ref('aaa'));
  assert.deepEqual(ids[3], ref('baaa'));
  assert.equal(tok.decode(ids[1]!), texts[1]);
});

test('a Split pattern that scans a whole run before it fails (\\p{L}+\\d|\\p{L}) encodes long runs in bounded time', async () => {
  // Each find used to scan the whole run for a digit: 32k letters took ~20 s, 100k minutes.
  const texts = ['a'.repeat(100_000), ' '.repeat(50_000) + 'a'.repeat(50_000) + '1'];
  const ids = await encodeBounded(withSplit('\\p{L}+\\d|\\p{L}'), texts, 20_000);
  texts.forEach((t, i) => assert.equal(tok.decode(ids[i]!), t));
});

test('the linear engine reads windows of the text: pieces across window boundaries are V8\'s; a decision beyond the horizon is the documented one', () => {
  const same = (pattern: string, text: string): void => assert.equal(cuts(patternFinder(pattern, 'linear'), text), cuts(patternFinder(pattern, 'native'), text), `${pattern} on ${text.length} chars`);
  const H = LOOKAHEAD_HORIZON;
  // Surrogate pairs, \b and lookahead captures at every window start and end; pieces longer than a window.
  same('\\u{1F600}|.', '😀x'.repeat(3 * H) + '😀'.repeat(3 * H));
  same('\\b\\w|\\B.|\\s', 'ab cde '.repeat(2 * H));
  same('\\s+(?!\\S)|\\s+|\\S+', ' '.repeat(5 * H) + 'x' + ' \n'.repeat(3 * H) + 'y'.repeat(9 * H));
  same('\\p{L}+\\d|\\p{L}|\\d', 'a'.repeat(H - 10) + '1' + 'b'.repeat(H - 10) + '2' + 'c'.repeat(H));
  same('x[^y]*y|.', 'x' + 'z'.repeat(H) + 'y');
  same('a+$|a', 'a'.repeat(4 * H));
  // Beyond the horizon a lower-priority alternative wins (V8 would make the whole run one piece).
  const far = 'x' + 'z'.repeat(4 * H) + 'y';
  const linear = patternFinder('x[^y]*y|.', 'linear');
  assert.ok(linear.find(far, 0));
  assert.deepEqual([linear.start, linear.end], [0, 1]);
});

test('patterns no linear-time engine runs are refused, naming the pattern and why', () => {
  const cases: Array<[string, RegExp]> = [
    ['(a)\\1', /backreference/],
    ['(?<=a)b', /lookbehind/],
    ['a(?=b)c', /lookahead/],
    ['\\s+(?!\\S\\S)', /lookahead that is not a single character class/],
    ['(?:a*)*', /can match the empty string/],
    ['(?:|a)+b', /can match the empty string/],
  ];
  for (const [pattern, why] of cases) refuses(withSplit(pattern), `Split pattern ${JSON.stringify(pattern)} cannot be run in linear time`, why);
  refuses(withSplit('(?<x'), /cannot be run as a JavaScript regex/);
});

/**
 * The pieces a finder cuts a text into, as start,end pairs. Empty matches cut nothing and are stepped
 * over, as encoding does (V8 even reports some inside a surrogate pair, e.g. for \B).
 */
function cuts(f: PieceFinder, text: string): string {
  const out: number[] = [];
  let at = 0;
  while (f.find(text, at)) {
    if (f.end > f.start) {
      assert.equal(f.piece, text.slice(f.start, f.end));
      out.push(f.start, f.end);
    }
    at = f.end === f.start ? f.end + ((text.codePointAt(f.end) ?? 0) > 0xffff ? 2 : 1) : f.end;
  }
  return out.join(',');
}

const LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const O200K =
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const NATIVE = [GPT2_SPLIT_SOURCE, LLAMA3, QWEN2, O200K];
const OTHERS = ['\\p{N}{1,3}', "[一-龥぀-ゟ゠-ヿ]+|[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", 'a+?b|\\w+?(?=\\d)|x*y', '.{2}|\\b\\w|^\\S|\\S$|[^]', '\\s+(?=\\p{Lu})|\\u{1F600}|\\uD83D\\uDE00x|\\cJ\\x41\\0?'];

test('the standard patterns run on V8, the rest on the linear-time engine, with identical pieces', () => {
  for (const p of NATIVE) assert.equal(patternFinder(onigurumaToJs(p)).engine, 'native', p);
  for (const p of [...OTHERS, '(a+)+$', LLAMA3.replace('{1,3}', '{1,2}')]) assert.equal(patternFinder(onigurumaToJs(p)).engine, 'linear', p);
  const pieces = fc.constantFrom(' ', '  ', '\n', '\r\n', '\t', '\u00a0', '\u3000', 'a', 'the', 'The', 'IT', "'s", "'LL", "'", '1', '23', '4567', '.', '!?', '/', 'é', 'e\u0301', 'ǅ', 'ʰ', '中文', 'ひら', '😀', '\ud800', '\udc00', '<|eos|>', 'x', 'y', '\u2028');
  const arbs = [fc.array(pieces, { maxLength: 40 }).map((a) => a.join('')), fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 30 })];
  const brown = [brownDocuments()[0]!.text];
  for (const p of [...NATIVE, ...OTHERS]) {
    const src = onigurumaToJs(p);
    const native = patternFinder(src, 'native');
    const linear = patternFinder(src, 'linear');
    for (const t of brown) assert.equal(cuts(linear, t), cuts(native, t), p);
    for (const arb of arbs) fc.assert(fc.property(arb, (s) => cuts(linear, s) === cuts(native, s)), { numRuns: 40 });
  }
});

test('random patterns: the linear-time engine cuts every text as V8 does, or the pattern is refused as unsupported', () => {
  const parts = fc.constantFrom('a', 'b', 'ab', ' ', '\\n', '\\s', '\\S', '\\d', '\\w', '\\p{L}', '\\P{N}', '[^a-c]', '[\\s\\p{N}]', '.', '😀', '\\u{1F600}', '\\x41', '(?:', '(', ')', '|', '*', '+', '?', '{1,2}', '{2}', '*?', '+?', '^', '$', '\\b', '\\B', '(?=a)', '(?!\\s)');
  // Short texts: V8 itself may need exponential time on a random pattern such as (?:a+)+b.
  const texts = fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'A', ' ', '\n', '1', '😀', 'é', '\ud800', '!'), maxLength: 12 }), { minLength: 4, maxLength: 4 });
  let linear = 0;
  fc.assert(
    fc.property(fc.array(parts, { minLength: 1, maxLength: 10 }), texts, (ps, ts) => {
      const src = ps.join('');
      try {
        new RegExp(src, 'gu');
      } catch {
        return; // not a JavaScript regex
      }
      let f: PieceFinder;
      try {
        f = patternFinder(src, 'linear');
      } catch (e) {
        assert.equal((e as Error).constructor.name, 'Unsupported', `${src}: ${(e as Error).message}`);
        return;
      }
      linear++;
      const native = patternFinder(src, 'native');
      for (const t of ts) assert.equal(cuts(f, t), cuts(native, t), `${JSON.stringify(src)} on ${JSON.stringify(t)}`);
    }),
    { numRuns: 600 },
  );
  assert.ok(linear > 100, `only ${linear} patterns ran on the linear-time engine`);
});

test('a tokenizer whose Split pattern runs on the linear-time engine gives the ids of @huggingface/tokenizers', () => {
  const texts = ['Hello, world! 12345 6789', "IT'S we'LL  you're\r\n\r\n  x", 'spaces:  two,   three    ', '日本語のテキスト 中文 😀🎉', 'a\u00a0b\u3000c\n\n\n', ''];
  for (const p of [LLAMA3.replace('{1,3}', '{1,2}'), OTHERS[1]!]) {
    const json = withSplit(p);
    const ours = Tokenizer.fromJSON(json, {}, 'linear');
    const theirs = new HfTokenizer(json, {});
    for (const s of texts) assert.deepEqual(ours.encode(s, { allowSpecial: true }), s === '' ? [] : theirs.encode(s, { add_special_tokens: false }).ids, `${p}: ${JSON.stringify(s)}`);
  }
});

test('the patterns run on V8 stay linear on adversarial texts (bounded in a worker)', async () => {
  const n = 100_000;
  const runs = [' ', '\n', '\t', '\r\n', ' \n', '\n ', 'a', 'A', 'Ab', 'aB', 'ǅ', 'ʰ', '\u0301', 'a\u0301', '中', '1', '!', ' !', "'", "'s", "'S", '/', '!\n', '\u00a0', '\ud800', '😀'];
  const texts = runs.flatMap((r) => {
    const body = r.repeat(Math.ceil(n / r.length));
    return [body, body + 'x', ' ' + body + '1', '\n' + body + ' \n'];
  });
  // A seeded mixture of everything, in long runs.
  let seed = 7;
  const rand = (k: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % k);
  let mix = '';
  while (mix.length < n) mix += runs[rand(runs.length)]!.repeat(1 + rand(2000));
  texts.push(mix);
  const worst = await inWorker<number>(
    60_000,
    `const { patternFinder, onigurumaToJs } = await import(workerData.module);
     let worst = 0;
     for (const p of workerData.patterns) {
       const f = patternFinder(onigurumaToJs(p));
       for (const t of workerData.texts) {
         const t0 = performance.now();
         let at = 0;
         while (f.find(t, at)) at = f.end > f.start ? f.end : f.end + 1;
         worst = Math.max(worst, performance.now() - t0);
       }
     }
     return worst;`,
    { module: JSON_MODULE, patterns: NATIVE, texts },
  );
  // Linear: a few ms per 100k characters. Quadratic would be ~10¹⁰ steps, far past the worker's bound.
  assert.ok(worst < 2000, `slowest text took ${worst.toFixed(0)} ms`);
});

// ---------------------------------------------------------------------------------------------
// generate

/**
 * A one-layer Hugging Face Llama directory whose next-token logits grow with the id (every embedding
 * is the same vector, the blocks add nothing, lm_head row i is i/vocab), so greedy decoding picks the
 * highest id it may. `tokenizer` is written beside it.
 */
function makeModelDir(name: string, vocab: number, tokenizer: Json): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const config = modelConfig(undefined, { vocab, d_model: 32, n_layers: 1, n_heads: 4, n_kv_heads: 2, ffn_dim: 48, seq_len: 32, tie_embeddings: false });
  const tensors = buildLayout(config).units.flatMap((u) =>
    u.views.map((v) => {
      const data = new Float32Array(v.size);
      if (v.name === 'model.embed_tokens.weight' || v.name.endsWith('norm.weight')) data.fill(1);
      if (v.name === 'lm_head.weight') for (let i = 0; i < data.length; i++) data[i] = Math.floor(i / v.shape[1]!) / vocab;
      return { name: v.name, dtype: 'F32' as const, shape: v.shape, data };
    }),
  );
  const fd = openSync(join(d, 'model.safetensors'), 'w');
  writeSafetensorsFd(fd, tensors, { format: 'pt' });
  closeSync(fd);
  writeFileSync(join(d, 'config.json'), JSON.stringify(hfConfigFromModel(config)));
  writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(tokenizer));
  return d;
}

test('generate with a tokenizer smaller than the model never samples ids the tokenizer lacks', () => {
  const model = makeModelDir('padded', 512, tok.toJSON());
  const greedy = cli(['generate', '--ckpt', model, '--prompt', 'The', '--max-tokens', '4', '--temperature', '0']);
  assert.equal(greedy.status, 0, greedy.stderr);
  assert.match(greedy.stderr, /note: the model has 512 token ids and the tokenizer 300: ids 300–511 are never sampled/);
  // Greedy takes the highest id the tokenizer has, 299, four times.
  assert.equal(greedy.stdout, 'The' + tok.decode([299, 299, 299, 299]) + '\n');
  const sampled = cli(['generate', '--ckpt', model, '--prompt', 'The', '--max-tokens', '20', '--temperature', '5', '--top-k', '0', '--seed', '3']);
  assert.equal(sampled.status, 0, sampled.stderr);
  // A model with exactly the tokenizer's ids is not told anything.
  const exact = cli(['generate', '--ckpt', makeModelDir('exact', 300, tok.toJSON()), '--prompt', 'The', '--max-tokens', '2', '--temperature', '0']);
  assert.equal(exact.status, 0, exact.stderr);
  assert.equal(exact.stderr, '');
  assert.equal(exact.stdout, 'The' + tok.decode([299, 299]) + '\n');
});

test('generate refuses a tokenizer.json with a huge id up front, in the model directory or given with --tokenizer', () => {
  const huge = variant((j) => (j.model.vocab.foo = 1_000_000_000));
  const model = makeModelDir('huge', 512, huge);
  const inDir = cli(['generate', '--ckpt', model, '--prompt', 'x']);
  assert.equal(inDir.status, 2, `exit ${inDir.status} ${inDir.signal ?? ''}\n${inDir.stderr.slice(-500)}`);
  assert.match(inDir.stderr, /^adabatch: tokenizer .*huge\/tokenizer\.json: model\.vocab\["foo"\] is 1000000000, but the file defines only 301 tokens/);
  const given = cli(['generate', '--ckpt', makeModelDir('fine', 512, tok.toJSON()), '--prompt', 'x', '--tokenizer', writeJson('gen-huge.json', huge)]);
  assert.equal(given.status, 2, given.stderr.slice(-500));
  assert.match(given.stderr, /gen-huge\.json: model\.vocab\["foo"\] is 1000000000/);
});

test("an added token with regex characters, '-' included, is matched literally (the u-flag RegExp refused an escaped '-')", () => {
  const n = tok.vocabSize;
  const added = ['<|im-start|>', '<a.b*c+?(d)|[e]{f}^$\\/>'];
  const t = Tokenizer.fromJSON(variant((j) => added.forEach((content, k) => j.added_tokens.push({ id: n + k, content, special: true }))));
  const ids = t.encode(`x${added[0]}y${added[1]}z`, { allowSpecial: true });
  assert.ok(ids.includes(n) && ids.includes(n + 1), `both added tokens are single ids: ${ids.join(' ')}`);
  assert.equal(t.decode(ids), `x${added[0]}y${added[1]}z`);
});
