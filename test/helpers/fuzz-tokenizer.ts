/**
 * Fuzzing tokenizer.json loading (src/data/tokenizer-json.ts, loadTokenizer / Tokenizer in
 * src/data/tokenizer.ts): byte-level BPE files built from a recipe — the 256 byte symbols plus merges
 * (each adds its concatenation), special tokens, ids assigned densely, shifted, shuffled or with gaps —
 * then edited: huge / negative / fractional / duplicate ids, broken merges, added tokens that collide,
 * pre-tokenizers with Split patterns (realistic, invalid, random, catastrophically backtracking),
 * normalizers and decoders of every kind, arbitrary JSON edits. The texts encoded include the inputs
 * that make a backtracking pattern explode.
 *
 * Loading must return or throw a UserError naming the file, within the sandbox's time and memory
 * bounds; a tokenizer that loads must encode every text to ids inside its vocabulary, and, where
 * Hugging Face's pipeline is lossless (no normalizer, no Removed split, no prefix space, no
 * stripping added token), decode(encode(s)) === s for every well-formed s.
 *
 * A second property compares the two engines of src/data/tokenizer-json.ts's patternFinder (V8's
 * RegExp and the linear-time one) on random patterns without nested quantifiers (so V8 cannot hang)
 * and random texts: both must cut a text into the same pieces.
 */
import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { allows, applyEdit, type CallOutcome, type CaseDirs, callsOf, type Classes, coverage, expectNamedOrOk, extremeNumber, type Json, type JsonEdit, type Sandbox, weirdJson, weirdName } from './fuzz.js';

/** GPT-2's bytes_to_unicode, computed here independently of src/data/bytelevel.ts. */
export const BYTE_CHARS: readonly string[] = (() => {
  const out: string[] = [];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    out.push(String.fromCharCode(printable ? b : 256 + n++));
  }
  return out;
})();

export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
export const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
export const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const REALISTIC_PATTERNS = [GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN, ' ?\\p{L}+|\\p{N}|\\s+', '\\s+', '\\p{N}{1,3}', '[^\\s]+', '\\d', '[\\p{P}\\p{S}]', ' ?[^\\s\\p{L}\\p{N}]+', '.', '(?i:the|a)'];
const INVALID_PATTERNS = ['(', '[', ')', '(?i:a(b))', '(?i:\\d)', '(?i:ab', '\\', 'a{2,1}', '*', '+a', '[z-a]', '(?<=a)b', '(?<!a)b', '(?P<n>x)', '(?<n>x)\\k<n>', '(a)\\1', '(?m)^a', '(?x) a', '\\p{Foo}', '\\Q.\\E', '[[:alpha:]]', '\\h', 'a**', '(?#c)a', '(?>a+)b', 'a++', '\\G', '\\A\\z'];
/** Patterns whose backtracking explodes on a run of a letter followed by a mismatch. */
export const CATASTROPHIC_PATTERNS = ['(a+)+$', '(a|aa)+$', '(\\w+\\s?)+$', '(x+x+)+y', '(.*a){20}', '^(\\s*a)*$', '(a|a)*b', '(\\p{L}+)+!', '([a-z]+)*#', '(a*)*b', '(?:a+){2,}b', '(\\p{L}|\\p{Ll})+\\d'];
/** Texts that make the catastrophic patterns explode (and plain ones). */
export const HARD_TEXTS = ['a'.repeat(34) + '!', 'x'.repeat(34), ' a'.repeat(20) + '!', 'abcdefghijklmnopqrstuvwxyzabcdef#', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1'];

const TEXT_CHARS = ['a', 'b', 'z', 'A', 'S', 's', 't', 'l', 'd', ' ', ' ', '  ', '\u00a0', '\u2003', '\u3000', '\t', '\n', '\r', '\r\n', '\u2028', '\u0085', '\ufeff', '\u200b', '0', '1', '9', '٣', '.', ',', '!', '?', "'", '"', '-', '_', '#', 'é', 'ß', 'ǅ', 'İ', 'ﬁ', 'Ω', '中', '日本', 'ㄱ', '😀', '👍🏽', '\u0301', '<', '|', '>', '<|eos|>', '<|bos|>', '[MASK]', '\\', '$', '^', '😀'.slice(0, 1)];
export const textArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.array(fc.constantFrom(...TEXT_CHARS), { maxLength: 24 }).map((a) => a.join('')) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 16 }) },
  // Any UTF-16 units, lone surrogates included (fc.string's 'binary' unit costs a second to build).
  { weight: 1, arbitrary: fc.array(fc.oneof(fc.integer({ min: 0, max: 0xffff }).map((u) => String.fromCharCode(u)), fc.integer({ min: 0x10000, max: 0x10ffff }).map((c) => String.fromCodePoint(c))), { maxLength: 12 }).map((a) => a.join('')) },
);

// ---------------------------------------------------------------------------------------------
// Recipes

export type PreTokenizer =
  | { kind: 'byteLevel'; addPrefixSpace: boolean; useRegex: boolean }
  | { kind: 'split'; splits: Array<{ pattern: { Regex: string } | { String: string } | Json; behavior: Json; invert: boolean }>; useRegex: boolean; addPrefixSpace: boolean }
  | { kind: 'raw'; value: Json };

export interface TokRecipe {
  ids: { scheme: 'sequential' | 'offset' | 'shuffled' | 'gaps'; offset: number; step: number; seed: number };
  /** Each merge joins two existing tokens (indices modulo the current count) into a new one. */
  merges: Array<[number, number]>;
  mergesAsPairs: boolean;
  specials: { names: 'ours' | 'gpt2' | 'llama3' | 'none'; inVocab: boolean };
  added: Array<{ content: string; special: boolean; lstrip: boolean; rstrip: boolean }>;
  pre: PreTokenizer;
  normalizer: Json;
  decoder: Json;
  ignoreMerges: boolean;
  /** Ids given to tokens (by index modulo the count) after assignment: extreme or another token's. */
  idEdits: Array<{ token: number; id: Json | { sameAs: number } }>;
  edits: JsonEdit[];
  texts: string[];
  /** tokenizer_config.json beside tokenizer.json (its text), naming BOS/EOS; null for none. */
  tokenizerConfig: string | null;
  /** Ids given to decode directly (any numbers). */
  decodeIds: number[];
  /** A long run of one piece (`piece` repeated `n` times) encoded as well; only in the 'tokenizer-quadratic-split' class. */
  longText: { piece: string; n: number } | null;
}

/** Ids at or above this are the 'tokenizer-huge-id' class (the recipes' own schemes stay far below). */
export const HUGE_ID = 2 ** 17;

function idValue(c: Classes): fc.Arbitrary<Json | { sameAs: number }> {
  const plain = fc.oneof(
    fc.integer({ min: 0, max: 2000 }),
    fc.constantFrom<Json>(-1, -0, 0.5, 1.5, 1e-300, '5', null, true, [], {}, 2 ** 16),
    extremeNumber.filter((x) => !(Number.isInteger(x) && x >= HUGE_ID)),
  );
  const arbs: Array<fc.Arbitrary<Json | { sameAs: number }>> = [plain];
  if (allows(c, 'tokenizer-huge-id')) arbs.push(fc.constantFrom(2 ** 17, 2 ** 20, 2 ** 24, 2 ** 26, 2 ** 26 + 1, 1e7, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 5, 2 ** 53 - 1, 1e15, 1e300));
  if (allows(c, 'tokenizer-duplicate-id')) arbs.push(fc.record({ sameAs: fc.nat({ max: 400 }) }));
  return fc.oneof(...arbs);
}

const regexAtom = fc.constantFrom('a', 'b', 'x', ' ', '\\s', '\\S', '\\w', '\\W', '\\d', '\\D', '\\p{L}', '\\p{N}', '\\p{Lu}', '\\p{P}', '\\P{L}', '.', '[a-z]', '[^a]', '[\\s\\p{L}]', '[^\\s\\p{L}\\p{N}]', '[\\r\\n]', "'", '\\n', '\\u00e9', '😀', '[😀a]', '\\.', '\\$', "(?i:'s|'t)", '(?i:ab)');
const quant = fc.constantFrom('', '', '', '?', '*', '+', '{1,3}', '{2}', '{0,2}', '??', '*?', '+?');
/** Random patterns without nested quantifiers (V8 stays polynomial on them). */
export const flatPattern: fc.Arbitrary<string> = fc
  .array(
    fc.array(fc.tuple(fc.oneof({ weight: 5, arbitrary: regexAtom }, { weight: 1, arbitrary: fc.array(regexAtom, { minLength: 1, maxLength: 3 }).map((a) => `(?:${a.join('|')})`) }), quant).map(([a, q]) => a + q), { minLength: 1, maxLength: 4 }).map((a) => a.join('')),
    { minLength: 1, maxLength: 4 },
  )
  .chain((alts) => fc.constantFrom('', '(?!\\S)', '(?=\\s)', '$', '(?!a)').map((tail) => (tail ? [...alts.slice(0, -1), alts[alts.length - 1] + tail] : alts).join('|')))
  .chain((p) => fc.constantFrom(p, `^${p}`, p));
/** Random strings over the regex alphabet (often invalid; may nest quantifiers). */
const noisePattern = fc.array(fc.constantFrom('(', ')', '[', ']', '{', '}', '?', '*', '+', '|', '\\', '^', '$', '.', 'a', 'A', 'b', '1', ' ', '-', ':', 'i', '<', '=', '!', 'P', 'p', 'L', 's', 'd', ','), { maxLength: 14 }).map((a) => a.join(''));
const nestsQuantifiers = (p: string): boolean => /\)[*+?{]/.test(p) && /[*+{][^)]*\)/.test(p);

function splitPattern(c: Classes): fc.Arbitrary<Json> {
  const arbs: Array<fc.WeightedArbitrary<Json>> = [
    { weight: 4, arbitrary: fc.constantFrom(...REALISTIC_PATTERNS).map((Regex) => ({ Regex })) },
    { weight: 4, arbitrary: flatPattern.map((Regex) => ({ Regex })) },
    { weight: 1, arbitrary: fc.constantFrom(...INVALID_PATTERNS).map((Regex) => ({ Regex })) },
    { weight: 1, arbitrary: (allows(c, 'tokenizer-backtracking') ? noisePattern : noisePattern.filter((p) => !nestsQuantifiers(p))).map((Regex) => ({ Regex })) },
    { weight: 2, arbitrary: fc.oneof(fc.string({ maxLength: 4 }), fc.constantFrom(' ', '.', '(', '\\', '$&', '-', '<|eos|>')).map((String) => ({ String })) },
    { weight: 1, arbitrary: weirdJson },
  ];
  if (allows(c, 'tokenizer-backtracking')) arbs.push({ weight: 1, arbitrary: fc.constantFrom(...CATASTROPHIC_PATTERNS).map((Regex) => ({ Regex })) });
  return fc.oneof(...arbs);
}

function preTokenizer(c: Classes): fc.Arbitrary<PreTokenizer> {
  return fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('byteLevel' as const), addPrefixSpace: fc.boolean(), useRegex: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }) }) },
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant('split' as const),
        splits: fc.array(
          fc.record({
            pattern: splitPattern(c),
            behavior: fc.oneof({ weight: 8, arbitrary: fc.constant<Json>('Isolated') }, { weight: 2, arbitrary: fc.constant<Json>('Removed') }, { weight: 1, arbitrary: fc.constantFrom<Json>('MergedWithPrevious', 'Contiguous', null) }, { weight: 1, arbitrary: weirdJson }),
            invert: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
          }),
          { minLength: 1, maxLength: 2 },
        ),
        useRegex: fc.boolean(),
        addPrefixSpace: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('raw' as const), value: weirdJson }) },
  );
}

export function tokRecipe(c: Classes): fc.Arbitrary<TokRecipe> {
  const rarely = <T>(normal: fc.Arbitrary<T>, odd: fc.Arbitrary<T>, oddWeight = 1, normalWeight = 8): fc.Arbitrary<T> => fc.oneof({ weight: normalWeight, arbitrary: normal }, { weight: oddWeight, arbitrary: odd });
  return fc.record({
    ids: fc.record({
      scheme: fc.oneof({ weight: 5, arbitrary: fc.constant('sequential' as const) }, { weight: 3, arbitrary: fc.constant('shuffled' as const) }, { weight: 1, arbitrary: fc.constantFrom('offset' as const, 'gaps' as const) }),
      offset: fc.integer({ min: 1, max: 5000 }),
      step: fc.integer({ min: 2, max: 40 }),
      seed: fc.nat(),
    }),
    merges: fc.array(fc.tuple(fc.nat({ max: 300 }), fc.nat({ max: 300 })), { maxLength: 40 }),
    mergesAsPairs: fc.boolean(),
    specials: fc.record({ names: fc.oneof({ weight: 4, arbitrary: fc.constant('ours' as const) }, { weight: 3, arbitrary: fc.constantFrom('gpt2' as const, 'llama3' as const) }, { weight: 1, arbitrary: fc.constant('none' as const) }), inVocab: fc.boolean() }),
    added: rarely(fc.constant([]), fc.array(fc.record({ content: fc.oneof(fc.constantFrom('[MASK]', '<x>', ' ', 'a', 'ab', '.*', '(', '$&', '\\', '<|eos|>', '-', '--', 'a-b'), weirdName), special: fc.boolean(), lstrip: fc.boolean(), rstrip: fc.boolean() }), { minLength: 1, maxLength: 3 }), 1, 2),
    pre: preTokenizer(c),
    normalizer: rarely(fc.constant<Json>(null), fc.oneof(fc.constantFrom<Json>({ type: 'NFC' }, { type: 'NFKC' }, { type: 'Sequence', normalizers: [{ type: 'NFD' }] }, { type: 'Lowercase' }, { type: 'Sequence', normalizers: [] }, { type: 'Sequence', normalizers: null }), weirdJson)),
    decoder: rarely(fc.constant<Json>({ type: 'ByteLevel' }), fc.oneof(fc.constantFrom<Json>({ type: 'Sequence', decoders: [{ type: 'ByteLevel' }] }, { type: 'WordPiece' }, null), weirdJson), 1, 10),
    ignoreMerges: fc.boolean(),
    idEdits: rarely(fc.constant([] as TokRecipe['idEdits']), fc.array(fc.record({ token: fc.nat({ max: 400 }), id: idValue(c) }), { minLength: 1, maxLength: 2 }), 1, 5),
    edits: rarely(
      fc.constant([] as JsonEdit[]),
      fc.array<JsonEdit>(
        fc.oneof(
          fc.record({ op: fc.constant('set' as const), path: fc.array(fc.oneof(fc.constantFrom('model', 'vocab', 'merges', 'added_tokens', 'pre_tokenizer', 'type', 'pretokenizers', 'pattern', 'Regex', 'id', 'content', 'dropout', 'byte_fallback', 'ignore_merges', 'continuing_subword_prefix', 'version'), fc.nat({ max: 3 })), { maxLength: 3 }), value: weirdJson }),
          fc.record({ op: fc.constant('delete' as const), path: fc.array(fc.oneof(fc.constantFrom('model', 'vocab', 'merges', 'added_tokens', 'pre_tokenizer', 'decoder', 'type'), fc.nat({ max: 3 })), { minLength: 1, maxLength: 3 }) }),
        ),
        { minLength: 1, maxLength: 2 },
      ),
    ),
    texts: fc.tuple(fc.array(textArb, { minLength: 1, maxLength: 3 }), fc.subarray(HARD_TEXTS, { maxLength: 2 })).map(([a, b]) => [...a, ...b]),
    tokenizerConfig: rarely(
      fc.constant(null),
      fc.oneof(
        fc.record({ bos_token: fc.oneof(fc.constantFrom<Json>('<|bos|>', '<|eos|>', '<|endoftext|>', 'a', 'Ġ', '', '__proto__', null, 5), fc.record({ content: weirdJson })), eos_token: fc.oneof(fc.constantFrom<Json>('<|eos|>', '<|bos|>', '<|end_of_text|>', 'zz', '', 'constructor', null, []), fc.record({ content: weirdJson })) }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
        fc.constantFrom('', '{', 'null', '[]', '5', '"x"', '{"eos_token": {"content": {"content": "<|eos|>"}}}'),
      ),
      1,
      5,
    ),
    decodeIds: fc.array(fc.oneof(fc.nat({ max: 400 }), extremeNumber), { maxLength: 6 }),
    longText: allows(c, 'tokenizer-quadratic-split') ? fc.option(longText, { freq: 4, nil: null }) : fc.constant(null),
  });
}

const longText = fc.record({ piece: fc.constantFrom('a', 'ab', '1', ' ', 'é', '😀', '\n', 'a '), n: fc.constantFrom(20_000, 60_000) });
/** Patterns whose first alternative scans a whole run and fails, so that each piece costs the run's length. */
export const QUADRATIC_PATTERNS = ['\\p{L}+\\d|\\p{L}', '\\w+!|\\w', '[a-z]+A|[a-z]', '\\s+x|\\s', '\\p{N}+\\p{L}|\\p{N}', 'a+$|a', '.+\\n\\n|.'];

/** Inputs of one known (or fixed) failure class only, or null when the class is not this module's. */
export function tokClassRecipe(id: string): fc.Arbitrary<TokRecipe> | null {
  const plain = (r: TokRecipe): TokRecipe => ({ ...r, longText: null, tokenizerConfig: null, edits: [], idEdits: [], added: [], normalizer: null, decoder: { type: 'ByteLevel' }, pre: { kind: 'byteLevel', addPrefixSpace: false, useRegex: true } });
  const base = tokRecipe({ exclude: new Set() }).map(plain);
  if (id === 'tokenizer-huge-id') return fc.tuple(base, fc.record({ token: fc.nat({ max: 400 }), id: fc.constantFrom(2 ** 24, 2 ** 26, 1e7, 2 ** 31, 2 ** 32 + 5, 1e15) })).map(([r, e]) => ({ ...r, idEdits: [e] }));
  if (id === 'tokenizer-duplicate-id') {
    return fc.tuple(base, fc.record({ token: fc.integer({ min: 3, max: 200 }), id: fc.record({ sameAs: fc.integer({ min: 3, max: 200 }) }) }).filter((e) => e.token !== e.id.sameAs)).map(([r, e]) => ({ ...r, idEdits: [e], texts: [BYTE_CHARS.slice(33, 127).join('')] }));
  }
  if (id === 'tokenizer-backtracking') return fc.tuple(base, fc.constantFrom(...CATASTROPHIC_PATTERNS)).map(([r, Regex]) => ({ ...r, pre: { kind: 'split' as const, splits: [{ pattern: { Regex }, behavior: 'Isolated', invert: false }], useRegex: false, addPrefixSpace: false }, texts: HARD_TEXTS }));
  if (id === 'tokenizer-quadratic-split') {
    const pattern = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...QUADRATIC_PATTERNS) }, { weight: 1, arbitrary: flatPattern });
    return fc.tuple(base, pattern, longText).map(([r, Regex, long]) => ({ ...r, pre: { kind: 'split' as const, splits: [{ pattern: { Regex }, behavior: 'Isolated', invert: false }], useRegex: false, addPrefixSpace: false }, longText: long }));
  }
  if (id === 'tokenizer-added-dash') return fc.tuple(base, fc.constantFrom('-', 'a-b', '<|im-start|>', '--'), fc.boolean()).map(([r, content, special]) => ({ ...r, added: [{ content, special, lstrip: false, rstrip: false }], texts: [...r.texts, `x ${content} y`] }));
  return null;
}

// ---------------------------------------------------------------------------------------------
// Building tokenizer.json

const SPECIALS = { ours: ['<|bos|>', '<|eos|>'], gpt2: ['<|endoftext|>'], llama3: ['<|begin_of_text|>', '<|end_of_text|>'], none: [] as string[] } as const;

function shuffle<T>(a: T[], seed: number): T[] {
  let x = seed | 1;
  for (let i = a.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

export interface BuiltTokenizer {
  json: Json;
  /** decode(encode(s)) === s is required (nothing in the pipeline is lossy). */
  lossless: boolean;
}

export function buildTokenizer(r: TokRecipe, c: Classes): BuiltTokenizer {
  const specials = [...SPECIALS[r.specials.names]];
  const tokens: string[] = [...(r.specials.inVocab ? specials : []), ...BYTE_CHARS];
  const merges: Array<[string, string]> = [];
  const seen = new Set(tokens);
  for (const [i, j] of r.merges) {
    const a = tokens[i % tokens.length]!;
    const b = tokens[j % tokens.length]!;
    // Special tokens are not byte-level symbols: merging them is not a byte-level BPE.
    if (specials.includes(a) || specials.includes(b) || a.includes(' ') || b.includes(' ')) continue;
    if (seen.has(a + b)) continue;
    seen.add(a + b);
    merges.push([a, b]);
    tokens.push(a + b);
  }
  const n = tokens.length;
  let ids: Json[];
  switch (r.ids.scheme) {
    case 'sequential':
      ids = tokens.map((_, i) => i);
      break;
    case 'offset':
      ids = tokens.map((_, i) => i + r.ids.offset);
      break;
    case 'shuffled':
      ids = shuffle(tokens.map((_, i) => i), r.ids.seed);
      break;
    case 'gaps':
      ids = tokens.map((_, i) => i * r.ids.step);
      break;
  }
  for (const e of r.idEdits) {
    const t = e.token % n;
    ids[t] = e.id !== null && typeof e.id === 'object' && 'sameAs' in e.id && typeof e.id.sameAs === 'number' ? ids[e.id.sameAs % n]! : (e.id as Json);
  }
  const vocab: Record<string, Json> = {};
  tokens.forEach((t, i) => Object.defineProperty(vocab, t, { value: ids[i], enumerable: true, writable: true, configurable: true }));
  // Added tokens: the specials (with their vocab id, or the next ids), then the extra ones.
  let next = Math.max(-1, ...ids.filter((x): x is number => typeof x === 'number' && Number.isFinite(x))) + 1;
  const added: Json[] = [];
  const addedContents = new Set<string>();
  for (const s of specials) {
    const id = r.specials.inVocab ? vocab[s]! : next++;
    added.push({ id, content: s, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    addedContents.add(s);
  }
  for (const a of r.added) {
    if (addedContents.has(a.content)) continue;
    addedContents.add(a.content);
    const id = Object.hasOwn(vocab, a.content) ? vocab[a.content]! : next++;
    added.push({ id, content: a.content, single_word: false, lstrip: a.lstrip, rstrip: a.rstrip, normalized: false, special: a.special });
  }
  const byteLevel = (addPrefixSpace: boolean, useRegex: boolean): Json => ({ type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: true, use_regex: useRegex });
  let pre: Json;
  if (r.pre.kind === 'byteLevel') pre = byteLevel(r.pre.addPrefixSpace, r.pre.useRegex);
  else if (r.pre.kind === 'split') pre = { type: 'Sequence', pretokenizers: [...r.pre.splits.map((s) => ({ type: 'Split', pattern: s.pattern, behavior: s.behavior, invert: s.invert })), byteLevel(r.pre.addPrefixSpace, r.pre.useRegex)] };
  else pre = r.pre.value;
  let json: Json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: r.normalizer,
    pre_tokenizer: pre,
    post_processor: null,
    decoder: r.decoder,
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: r.ignoreMerges, vocab, merges: merges.map(([a, b]) => (r.mergesAsPairs ? [a, b] : `${a} ${b}`)) },
  };
  for (const e of r.edits) json = applyEdit(json, e);
  if (!allows(c, 'tokenizer-added-dash')) {
    const list = json !== null && typeof json === 'object' && !Array.isArray(json) ? json.added_tokens : null;
    if (Array.isArray(list)) for (const t of list) if (t !== null && typeof t === 'object' && !Array.isArray(t) && typeof t.content === 'string') t.content = t.content.replaceAll('-', '_');
  }
  const lossless =
    r.edits.length === 0 &&
    r.normalizer === null &&
    r.pre.kind !== 'raw' &&
    !(r.pre.kind === 'byteLevel' && r.pre.addPrefixSpace) &&
    !(r.pre.kind === 'split' && (r.pre.addPrefixSpace || r.pre.splits.some((s) => s.behavior !== 'Isolated'))) &&
    !r.added.some((a) => a.lstrip || a.rstrip);
  return { json, lossless };
}

// ---------------------------------------------------------------------------------------------
// The property

interface Loaded {
  vocabSize: number;
  bos: number;
  eos: number;
}

/** No lone surrogate (String.prototype.isWellFormed, which this project's lib setting does not type). */
const isWellFormed = (s: string): boolean => !/[\uD800-\uDFFF]/.test(s.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''));

export function checkTokenizerOutcome(path: string, built: BuiltTokenizer, r: Pick<TokRecipe, 'texts' | 'decodeIds'>, calls: CallOutcome[]): void {
  const { texts } = r;
  const DECODE = 'decode of arbitrary ids';
  // A problem in tokenizer_config.json beside it names that file.
  for (const c of calls) expectNamedOrOk(c, 'tokenizer', c.call === DECODE ? /token id/ : [path, join(dirname(path), 'tokenizer_config.json')]);
  const load = calls[0]!;
  if (load.kind !== 'ok') return;
  const { vocabSize } = load.value as Loaded;
  const decode = calls.find((c) => c.call === DECODE);
  if (decode && r.decodeIds.every((id) => Number.isInteger(id) && id >= 0 && id < vocabSize)) assert.equal(decode.kind, 'ok', `decode refused ids inside the vocabulary ${JSON.stringify(r.decodeIds)}: ${decode.kind !== 'ok' ? decode.message : ''}`);
  calls.filter((c) => c.call !== DECODE).slice(1).forEach((c, k) => {
    if (c.kind !== 'ok') assert.fail(`${c.call} threw on a text (encode/decode must not throw for ids they made): ${c.kind === 'rejected' ? c.message : ''}`);
    const text = texts[Math.floor(k / 2)]!;
    const { ids, decoded, bosText, eosText } = c.value as { ids: number[]; decoded: string; bosText?: string; eosText?: string };
    for (const id of ids) assert.ok(Number.isInteger(id) && id >= 0 && id < vocabSize, `${c.call}: id ${id} outside the vocabulary [0, ${vocabSize}) for ${JSON.stringify(text)}`);
    if (built.lossless && isWellFormed(text)) {
      const want = k % 2 === 0 ? text : `${bosText}${text}${eosText}`;
      assert.equal(decoded, want, `${c.call}: decode(encode(s)) !== s for s = ${JSON.stringify(text)} (ids ${JSON.stringify(ids)})`);
    }
  });
}

export async function tokenizerCase(sandbox: Sandbox, dirs: CaseDirs, r: TokRecipe, c: Classes): Promise<void> {
  const built = buildTokenizer(r, c);
  await dirs.with(async (dir) => {
    const path = join(dir, 'tokenizer.json');
    writeFileSync(path, JSON.stringify(built.json));
    if (r.tokenizerConfig !== null) writeFileSync(join(dir, 'tokenizer_config.json'), r.tokenizerConfig);
    const texts = r.longText ? [...r.texts, r.longText.piece.repeat(r.longText.n)] : r.texts;
    const o = await sandbox.run('tokenizer', { path, texts, ids: r.decodeIds });
    const calls = callsOf(o, 'tokenizer');
    coverage.note(`loadTokenizer: ${calls[0]!.kind}${calls[0]!.kind === 'ok' && built.lossless ? ' (lossless: round trip checked)' : ''}`);
    checkTokenizerOutcome(path, built, { texts, decodeIds: r.decodeIds }, calls);
  });
}

// ---------------------------------------------------------------------------------------------
// The engines of patternFinder against each other

export interface EngineCase {
  pattern: string;
  texts: string[];
}

export const engineCase: fc.Arbitrary<EngineCase> = fc.record({
  pattern: fc.oneof({ weight: 4, arbitrary: flatPattern }, { weight: 1, arbitrary: fc.constantFrom(...REALISTIC_PATTERNS) }),
  texts: fc.array(textArb, { minLength: 1, maxLength: 4 }),
});

/** Both engines must give the same pieces (or the linear one refuse the pattern with a UserError-free 'unsupported'). */
export function checkEngineOutcome(e: EngineCase, calls: CallOutcome[]): void {
  const [native, linear] = calls as [CallOutcome, CallOutcome];
  if (native.kind === 'crash' && native.name !== 'SyntaxError') assert.fail(`patternFinder(…, 'native') threw ${native.name} on /${e.pattern}/: ${native.message}`);
  if (native.kind !== 'ok') return; // not a pattern V8 runs: nothing to compare
  if (linear.kind === 'crash' && linear.name === 'Unsupported') return; // refused by name: parseTokenizerJson turns it into a UserError
  if (linear.kind !== 'ok') assert.fail(`linear engine threw ${linear.name} on /${e.pattern}/: ${linear.message}\n${linear.stack ?? ''}`);
  const a = native.value as Array<Array<[number, number]>>;
  const b = linear.value as Array<Array<[number, number]>>;
  e.texts.forEach((t, i) => assert.deepEqual(b[i], a[i], `pattern /${e.pattern}/ on ${JSON.stringify(t)}: linear engine pieces ${JSON.stringify(b[i])} ≠ V8's ${JSON.stringify(a[i])}`));
}

export async function engineCaseRun(sandbox: Sandbox, e: EngineCase): Promise<void> {
  const o = await sandbox.run('pattern-engines', e);
  const calls = callsOf(o, 'pattern engines');
  coverage.noteCalls('engine ', calls);
  checkEngineOutcome(e, calls);
}
