/**
 * Reading and writing Hugging Face tokenizer.json for byte-level BPE. Reading accepts the variants
 * found in the wild (GPT-2, RoBERTa, Llama 3 / Qwen-style Split + ByteLevel, merges as "a b" strings
 * or [a, b] pairs, Unicode normalization) and refuses the rest with a message that names the file
 * and the unsupported part, rather than tokenising differently from Hugging Face.
 */
import { BYTE_TO_CHAR, GPT2_SPLIT_SOURCE } from './bytelevel.js';
import { UserError } from '../util/errors.js';

export interface AddedTokenSpec {
  id: number;
  content: string;
  special: boolean;
  /** Swallow whitespace on the left / right of the token when it is matched in text. */
  lstrip: boolean;
  rstrip: boolean;
}

/** One pre-tokenizer step: cut each piece by a regex, keeping matches and gaps, or gaps only. */
export interface SplitStage {
  regex: RegExp;
  keepMatches: boolean;
}

/** What encoding and decoding need, validated. */
export interface TokenizerSpec {
  /** Model vocabulary (byte-level strings → ids), without added tokens that are not in it. */
  vocab: Map<string, number>;
  merges: Array<[string, string]>;
  added: AddedTokenSpec[];
  normalize: ((s: string) => string) | null;
  addPrefixSpace: boolean;
  stages: SplitStage[];
  ignoreMerges: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeName(v: unknown): string {
  return isObject(v) && typeof v.type === 'string' ? v.type : JSON.stringify(v);
}

/** Unicode normalizers are supported (String.prototype.normalize); anything else changes text in ways we do not reproduce. */
function parseNormalizer(n: unknown, fail: (msg: string) => never): ((s: string) => string) | null {
  if (n === null || n === undefined) return null;
  const forms = new Set(['NFC', 'NFD', 'NFKC', 'NFKD']);
  const steps: string[] = [];
  const visit = (x: unknown): void => {
    if (isObject(x) && x.type === 'Sequence' && Array.isArray(x.normalizers)) x.normalizers.forEach(visit);
    else if (isObject(x) && typeof x.type === 'string' && forms.has(x.type)) steps.push(x.type);
    else fail(`unsupported normalizer ${typeName(x)} (supported: NFC, NFD, NFKC, NFKD, or none)`);
  };
  visit(n);
  if (steps.length === 0) return null;
  return (s) => steps.reduce((t, form) => t.normalize(form), s);
}

/**
 * Oniguruma patterns (what tokenizer.json holds) are mostly valid JavaScript; the one common
 * difference in byte-level tokenizers is a case-insensitive group such as Llama 3's
 * (?i:'s|'t|'re|'ve|'m|'ll|'d), rewritten here by spelling out both cases of each ASCII letter.
 */
export function onigurumaToJs(pattern: string): string {
  let out = '';
  let i = 0;
  while (i < pattern.length) {
    if (pattern.startsWith('(?i:', i)) {
      let j = i + 4;
      let body = '';
      while (j < pattern.length && pattern[j] !== ')') {
        const ch = pattern[j]!;
        if ('\\[(?'.includes(ch)) throw new Error(`case-insensitive group with '${ch}' inside is not supported`);
        body += /[a-zA-Z]/.test(ch) ? `[${ch.toLowerCase()}${ch.toUpperCase()}]` : ch;
        j++;
      }
      if (j >= pattern.length) throw new Error('unterminated (?i: group');
      out += `(?:${body})`;
      i = j + 1;
    } else if (pattern[i] === '\\' && i + 1 < pattern.length) {
      out += pattern.slice(i, i + 2);
      i += 2;
    } else {
      out += pattern[i];
      i++;
    }
  }
  return out;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

interface PreTokenizerSpec {
  addPrefixSpace: boolean;
  stages: SplitStage[];
}

function parsePreTokenizer(p: unknown, fail: (msg: string) => never): PreTokenizerSpec {
  if (p === null || p === undefined) fail('no pre_tokenizer (a byte-level BPE needs a ByteLevel pre-tokenizer)');
  const list: unknown[] = isObject(p) && p.type === 'Sequence' ? (Array.isArray(p.pretokenizers) ? p.pretokenizers : fail('pre_tokenizer Sequence without a pretokenizers list')) : [p];
  const stages: SplitStage[] = [];
  let byteLevel: Record<string, unknown> | null = null;
  for (const [i, step] of list.entries()) {
    if (!isObject(step)) fail(`pre_tokenizer step ${i} is not an object`);
    if (step.type === 'ByteLevel') {
      if (i !== list.length - 1) fail('a ByteLevel pre-tokenizer that is not the last step is not supported');
      byteLevel = step;
      if (step.use_regex ?? true) stages.push({ regex: new RegExp(GPT2_SPLIT_SOURCE, 'gu'), keepMatches: true });
    } else if (step.type === 'Split') {
      const pat = step.pattern;
      let source: string;
      if (isObject(pat) && typeof pat.Regex === 'string') {
        try {
          source = onigurumaToJs(pat.Regex);
          new RegExp(source, 'gu');
        } catch (e) {
          fail(`pre_tokenizer Split pattern ${JSON.stringify(pat.Regex)} cannot be run as a JavaScript regex: ${(e as Error).message}`);
        }
      } else if (isObject(pat) && typeof pat.String === 'string') {
        source = escapeRegex(pat.String);
      } else fail(`pre_tokenizer Split step ${i} has no Regex or String pattern`);
      if (step.invert === true) fail('pre_tokenizer Split with invert: true is not supported');
      const behavior = step.behavior ?? 'Isolated';
      if (behavior !== 'Isolated' && behavior !== 'Removed') fail(`pre_tokenizer Split behavior '${String(behavior)}' is not supported (only Isolated and Removed)`);
      stages.push({ regex: new RegExp(source, 'gu'), keepMatches: behavior === 'Isolated' });
    } else {
      fail(`unsupported pre_tokenizer ${typeName(step)} (supported: ByteLevel, optionally after Split steps)`);
    }
  }
  if (byteLevel === null) fail('the pre_tokenizer has no ByteLevel step, so this is not a byte-level BPE tokenizer');
  const addPrefixSpace = byteLevel.add_prefix_space === true;
  // Hugging Face adds the prefix space to each piece the earlier steps produced; we only do it for whole texts.
  if (addPrefixSpace && list.length > 1) fail('ByteLevel add_prefix_space after Split steps is not supported');
  return { addPrefixSpace, stages };
}

function parseDecoder(d: unknown, fail: (msg: string) => never): void {
  const ok = isObject(d) && (d.type === 'ByteLevel' || (d.type === 'Sequence' && Array.isArray(d.decoders) && d.decoders.length === 1 && isObject(d.decoders[0]) && d.decoders[0].type === 'ByteLevel'));
  if (!ok) fail(`unsupported decoder ${d === null || d === undefined ? 'none' : typeName(d)} (only ByteLevel)`);
}

function parseModel(m: unknown, fail: (msg: string) => never): { vocab: Map<string, number>; merges: Array<[string, string]>; ignoreMerges: boolean } {
  if (!isObject(m)) fail("no 'model' object: not a Hugging Face tokenizer.json");
  const type = m.type ?? (Array.isArray(m.vocab) ? 'Unigram' : m.merges !== undefined ? 'BPE' : 'WordPiece');
  if (type === 'Unigram') fail('it holds a Unigram (SentencePiece) model; only byte-level BPE tokenizers are supported');
  if (type !== 'BPE') fail(`it holds a ${String(type)} model; only byte-level BPE tokenizers are supported`);
  if (m.dropout !== undefined && m.dropout !== null && m.dropout !== 0) fail('BPE dropout is not supported (encoding would be random)');
  if (m.byte_fallback === true) fail('BPE byte_fallback is a SentencePiece-style option and is not supported for byte-level BPE');
  for (const field of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    const v = m[field];
    if (v !== undefined && v !== null && v !== '') fail(`BPE ${field} ${JSON.stringify(v)} is not supported`);
  }
  if (!isObject(m.vocab)) fail('model.vocab is not an object of token → id');
  const vocab = new Map<string, number>();
  for (const [tok, id] of Object.entries(m.vocab)) {
    if (!Number.isInteger(id) || (id as number) < 0) fail(`model.vocab[${JSON.stringify(tok)}] is ${JSON.stringify(id)}, not a non-negative integer id`);
    vocab.set(tok, id as number);
  }
  if (!Array.isArray(m.merges)) fail('model.merges is not a list');
  const merges: Array<[string, string]> = m.merges.map((x: unknown, r: number): [string, string] => {
    let pair: unknown[] | null = null;
    if (typeof x === 'string') {
      const parts = x.split(' ');
      pair = parts.length === 2 ? parts : null;
    } else if (Array.isArray(x) && x.length === 2) pair = x;
    if (pair === null || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') fail(`model.merges[${r}] is ${JSON.stringify(x)}, not "a b" or ["a", "b"]`);
    const [a, b] = pair as [string, string];
    for (const t of [a, b, a + b]) if (!vocab.has(t)) fail(`model.merges[${r}] (${JSON.stringify(a)}, ${JSON.stringify(b)}) uses ${JSON.stringify(t)}, which is not in model.vocab`);
    return [a, b];
  });
  for (let b = 0; b < 256; b++) {
    if (!vocab.has(BYTE_TO_CHAR[b]!)) fail(`model.vocab lacks the byte symbol ${JSON.stringify(BYTE_TO_CHAR[b])} (byte 0x${b.toString(16).padStart(2, '0')}); not a byte-level BPE vocabulary`);
  }
  return { vocab, merges, ignoreMerges: m.ignore_merges === true };
}

function parseAdded(list: unknown, fail: (msg: string) => never): AddedTokenSpec[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) fail('added_tokens is not a list');
  return list.map((t: unknown, i: number) => {
    if (!isObject(t) || !Number.isInteger(t.id) || (t.id as number) < 0 || typeof t.content !== 'string' || t.content === '') fail(`added_tokens[${i}] needs an integer id and a non-empty content`);
    return { id: t.id as number, content: t.content, special: t.special === true, lstrip: t.lstrip === true, rstrip: t.rstrip === true };
  });
}

/** Validates a parsed tokenizer.json; `file` names it in errors. */
export function parseTokenizerJson(json: unknown, file: string): TokenizerSpec {
  const fail: (msg: string) => never = (msg) => {
    throw new UserError(`tokenizer ${file}: ${msg}`);
  };
  if (!isObject(json)) fail('not a JSON object, so not a Hugging Face tokenizer.json');
  const j = json as Record<string, unknown>;
  const model = parseModel(j.model, fail);
  const normalize = parseNormalizer(j.normalizer, fail);
  const pre = parsePreTokenizer(j.pre_tokenizer, fail);
  parseDecoder(j.decoder, fail);
  const added = parseAdded(j.added_tokens, fail);
  return { ...model, added, normalize, addPrefixSpace: pre.addPrefixSpace, stages: pre.stages };
}

/**
 * A trained tokenizer as Hugging Face writes a GPT-2-style ByteLevel BPE. Merges are written as
 * "a b" strings, which every version of the tokenizers library reads (byte-level tokens never hold a
 * space). The special tokens are in the model vocabulary too, as Hugging Face's trainer puts them.
 */
export function buildTokenizerJson(idToToken: readonly string[], merges: ReadonlyArray<readonly [string, string]>, special: ReadonlyArray<{ id: number; content: string }>): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  idToToken.forEach((tok, id) => (vocab[tok] = id));
  const byteLevel = (addPrefixSpace: boolean, trimOffsets: boolean) => ({ type: 'ByteLevel', add_prefix_space: addPrefixSpace, trim_offsets: trimOffsets, use_regex: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((s) => ({ id: s.id, content: s.content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: byteLevel(false, true),
    post_processor: byteLevel(true, false),
    decoder: byteLevel(true, true),
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}
