/**
 * Reading and writing Hugging Face tokenizer.json. Reading accepts the two BPE families found in the
 * wild and refuses the rest with a message that names the file and the unsupported part, rather than
 * tokenising differently from Hugging Face:
 *
 * - byte-level BPE (GPT-2, RoBERTa, Llama 3 / Qwen-style Split + ByteLevel): a ByteLevel
 *   pre-tokenizer, every byte a symbol of the vocabulary;
 * - SentencePiece-style BPE (Llama 2, TinyLlama, Mistral): no ByteLevel step; text normalized to
 *   "▁" for spaces (Prepend/Replace normalizers or a Metaspace pre-tokenizer), characters as the
 *   starting symbols, `byte_fallback` to <0xNN> tokens or an unk token for the others, decoded by a
 *   Replace/ByteFallback/Fuse/Strip decoder chain (sentencepiece.ts).
 *
 * Both: merges as "a b" strings or [a, b] pairs, Unicode normalization, added tokens, ignore_merges.
 *
 * Files are untrusted input: ids are checked against the number of tokens the file defines before
 * anything is allocated from them (checkIdRange), each id must stand for one token, and Split patterns
 * run on an engine on which no text can make them hang (patternFinder).
 */
import { RE2JS, type Matcher } from 're2js';
import { MAX_MERGES, MAX_VOCAB } from './bpe.js';
import { BYTE_TO_CHAR, GPT2_SPLIT_SOURCE, type ByteLevelSpec, type PieceFinder, type SplitStage } from './bytelevel.js';
import { byteFallbackToken, type DecoderStep, type MetaspaceSpec, type SentencePieceSpec } from './sentencepiece.js';
import { UserError } from '../util/errors.js';

export interface AddedTokenSpec {
  id: number;
  content: string;
  special: boolean;
  /** Swallow whitespace on the left / right of the token when it is matched in text. */
  lstrip: boolean;
  rstrip: boolean;
}


/** What encoding and decoding need, validated. */
export interface TokenizerSpec {
  /** Model vocabulary (byte-level strings → ids), without added tokens that are not in it. */
  vocab: Map<string, number>;
  merges: Array<[string, string]>;
  added: AddedTokenSpec[];
  /** Applied to each stretch of text between added tokens, before the family's pre-tokenizer. */
  normalize: ((s: string) => string) | null;
  ignoreMerges: boolean;
  family: ByteLevelSpec | SentencePieceSpec;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function typeName(v: unknown): string {
  return isObject(v) && typeof v.type === 'string' ? v.type : JSON.stringify(v);
}

/**
 * Normalizers, applied by Hugging Face to each stretch of text between added tokens: the Unicode forms
 * (String.prototype.normalize), Prepend (to non-empty text only, as Hugging Face) and Replace of a
 * literal string — Llama 2's and Mistral's `Prepend("▁")` then `Replace(" ", "▁")`. Anything else
 * changes text in ways we do not reproduce.
 */
function parseNormalizer(n: unknown, fail: (msg: string) => never): ((s: string) => string) | null {
  if (n === null || n === undefined) return null;
  const forms = new Set(['NFC', 'NFD', 'NFKC', 'NFKD']);
  const steps: Array<(s: string) => string> = [];
  const visit = (x: unknown): void => {
    if (isObject(x) && x.type === 'Sequence' && Array.isArray(x.normalizers)) x.normalizers.forEach(visit);
    else if (isObject(x) && typeof x.type === 'string' && forms.has(x.type)) {
      const form = x.type;
      steps.push((s) => s.normalize(form));
    } else if (isObject(x) && x.type === 'Prepend') {
      if (typeof x.prepend !== 'string') fail('normalizer Prepend without a prepend string');
      const prefix = x.prepend;
      steps.push((s) => (s.length === 0 ? s : prefix + s));
    } else if (isObject(x) && x.type === 'Replace') {
      const { pattern, content } = parseReplace(x, 'normalizer', fail);
      steps.push((s) => s.replaceAll(pattern, content));
    } else fail(`unsupported normalizer ${typeName(x)} (supported: NFC, NFD, NFKC, NFKD, Prepend, Replace of a string, or none)`);
  };
  visit(n);
  if (steps.length === 0) return null;
  return steps.length === 1 ? steps[0]! : (s) => steps.reduce((t, step) => step(t), s);
}

/** A Replace normalizer's or decoder's literal pattern and content (a Regex pattern is refused). */
function parseReplace(x: Record<string, unknown>, where: string, fail: (msg: string) => never): { pattern: string; content: string } {
  const p = x.pattern;
  if (!isObject(p) || typeof p.String !== 'string' || p.String === '') fail(`${where} Replace with pattern ${JSON.stringify(p)} is not supported (only a non-empty {"String": …})`);
  if (typeof x.content !== 'string') fail(`${where} Replace without a content string`);
  return { pattern: p.String, content: x.content };
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

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer patterns: which engine runs them, so that no pattern in a file can hang encoding.


class NativeFinder implements PieceFinder {
  readonly engine = 'native';
  start = 0;
  end = 0;
  piece = '';
  private readonly regex: RegExp;
  constructor(readonly source: string) {
    this.regex = new RegExp(source, 'gu');
  }
  find(text: string, from: number): boolean {
    const re = this.regex;
    re.lastIndex = from;
    const m = re.exec(text);
    if (m === null) return false;
    this.piece = m[0];
    this.start = m.index;
    this.end = m.index + m[0].length;
    return true;
  }
}

class LiteralFinder implements PieceFinder {
  readonly engine = 'literal';
  start = 0;
  end = 0;
  constructor(readonly source: string) {}
  get piece(): string {
    return this.source;
  }
  find(text: string, from: number): boolean {
    if (from > text.length) return false;
    const i = text.indexOf(this.source, from);
    if (i < 0) return false;
    this.start = i;
    this.end = i + this.source.length;
    return true;
  }
}

/**
 * How far past a search position the linear engine looks (UTF-16 code units): a search reads a
 * window of text of at least this many code units after its position. A find that no match decides
 * inside that window (none found, or the match reaches the window's end) is repeated on a window twice
 * as long, up to the whole text, so every piece that ends inside the window is the piece the full text
 * gives — except where a higher-priority alternative was still undecided at the window's end: then the
 * lower-priority match wins. Without the window, a pattern such as `\p{L}+\d|\p{L}` makes each find
 * scan a whole run of letters, and a run of n letters costs n²; with it a find costs at most
 * LOOKAHEAD_WINDOW plus the length it consumes, so encoding is linear in the text whatever the pattern.
 */
export const LOOKAHEAD_HORIZON = 256;
const LOOKAHEAD_WINDOW = 2 * LOOKAHEAD_HORIZON;

/**
 * A pattern translated for re2js. A trailing one-character lookahead of a top-level alternative
 * (GPT-2's `\s+(?!\S)`) is run as a capture group that consumes that character (`\s+(?:$|(\s))`);
 * when the group took part in the match, the match ends where the group starts. Searches run on
 * windows of the text (LOOKAHEAD_HORIZON above).
 */
class LinearFinder implements PieceFinder {
  readonly engine = 'linear';
  start = 0;
  end = 0;
  private text = '';
  private matcher: Matcher | null = null;
  /** The window the matcher reads: text.slice(windowStart, windowEnd), from two code units before the search position it was opened for (context for `\b`). */
  private windowStart = 0;
  private windowEnd = 0;
  /** The search position the window was opened for. */
  private windowBase = 0;
  constructor(
    readonly source: string,
    private readonly re: RE2JS,
    /** For each capture group (1, 2, …): the code points it can consume, as sorted [lo, hi] pairs. */
    private readonly lookaheads: readonly number[][],
  ) {}
  private openWindow(text: string, from: number, length: number): Matcher {
    this.text = text;
    this.windowBase = from;
    this.windowStart = Math.max(0, from - 2);
    this.windowEnd = Math.min(text.length, from + length);
    const whole = this.windowStart === 0 && this.windowEnd === text.length;
    this.matcher = this.re.matcher(whole ? text : text.slice(this.windowStart, this.windowEnd));
    return this.matcher;
  }
  find(text: string, from: number): boolean {
    if (from > text.length) return false;
    let m = this.matcher;
    // The open window serves a search that has at least the horizon (or the text's end) ahead of it
    // and not much more, so that no search scans far beyond what it consumes.
    const ahead = this.windowEnd - from;
    const reusable = m !== null && this.text === text && from >= this.windowBase && ahead <= LOOKAHEAD_WINDOW && (ahead >= LOOKAHEAD_HORIZON || this.windowEnd === text.length);
    let length = LOOKAHEAD_WINDOW;
    if (!reusable) m = this.openWindow(text, from, length);
    for (;;) {
      const found = m!.find(from - this.windowStart);
      if (this.windowEnd === text.length) {
        if (!found) return false;
        break;
      }
      // Undecided inside the window: no match, or one that the text past the window could change.
      if (found && m!.end() + this.windowStart < this.windowEnd) break;
      length = 2 * Math.max(length, this.windowEnd - from);
      m = this.openWindow(text, from, length);
    }
    const offset = this.windowStart;
    this.start = m!.start() + offset;
    this.end = m!.end() + offset;
    if (this.lookaheads.length > 0 && this.end > this.start) {
      // A group can only have consumed the match's last code point: ask for groups only when that could be.
      let p = this.end - 1;
      if (p > this.start && isSurrogate(text.charCodeAt(p), 0xdc00) && isSurrogate(text.charCodeAt(p - 1), 0xd800)) p--;
      const last = text.codePointAt(p)!;
      for (let g = 0; g < this.lookaheads.length; g++) {
        if (!inRanges(this.lookaheads[g]!, last)) continue;
        const s = m!.start(g + 1);
        if (s >= 0) {
          this.end = s + offset;
          break;
        }
      }
    }
    return true;
  }
  get piece(): string {
    return this.text.slice(this.start, this.end);
  }
}

/** A lead (base 0xd800) or trail (base 0xdc00) surrogate. */
const isSurrogate = (u: number, base: number): boolean => u >= base && u < base + 0x400;

function inRanges(r: readonly number[], cp: number): boolean {
  let lo = 0;
  let hi = r.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < r[2 * mid]!) hi = mid - 1;
    else if (cp > r[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * Patterns run on V8's own RegExp (backtracking, ~20× faster than re2js): the standard byte-level
 * pre-tokenizers, exactly as tokenizer.json holds them. Each runs in time linear in the text even on a
 * backtracking engine: (1) every character is matched by some alternative, so the search never fails
 * at a position and retries at the next one; (2) an alternative fails after O(1) steps or succeeds in
 * O(its match), except `\s*[\r\n]+` and `\s+(?!\S)`, which cost O(w) on a whitespace run of length w —
 * and then `\s*[\r\n]+` consumes the run up to its last newline or, when it holds none, `\s+(?!\S)` or
 * `\s+` consumes all of it but at most one character: each run is scanned O(1) times. o200k's letter
 * alternatives cost O(r) on a run of r letters and marks: the first either fails (the run is all
 * capitals; the second then consumes it whole) or ends at the run's last non-capital, and the second
 * consumes the capitals left. The tests time each on adversarial texts. Every other pattern runs on
 * the linear-time engine.
 */
const NATIVE_PATTERNS: readonly string[] = [
  // GPT-2 (the ByteLevel pre-tokenizer's own regex, also found as a Split pattern).
  GPT2_SPLIT_SOURCE,
  // Llama 3 and GPT-4's cl100k_base.
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  // Qwen2 / Qwen2.5 / Qwen3.
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  // GPT-4o's o200k_base.
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
].map(onigurumaToJs);

/** Why a pattern cannot be run by the linear-time engine. */
class Unsupported extends Error {}

/** A code point set as sorted, disjoint, non-adjacent inclusive ranges [lo0, hi0, lo1, hi1, …]. */
type Ranges = number[];

type Node =
  | { t: 'set'; r: Ranges }
  | { t: 'seq'; items: Node[] }
  | { t: 'alt'; alts: Node[] }
  | { t: 'rep'; body: Node; min: number; max: number; lazy: boolean }
  | { t: 'assert'; kind: '^' | '$' | '\\b' | '\\B' }
  | { t: 'look'; negative: boolean; body: Node };

const MAX_CP = 0x10ffff;

function normalizeRanges(pairs: Array<[number, number]>): Ranges {
  pairs.sort((a, b) => a[0] - b[0]);
  const out: Ranges = [];
  for (const [lo, hi] of pairs) {
    const n = out.length;
    if (n > 0 && lo <= out[n - 1]! + 1) out[n - 1] = Math.max(out[n - 1]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

function complement(r: Ranges): Ranges {
  const out: Ranges = [];
  let next = 0;
  for (let i = 0; i < r.length; i += 2) {
    if (r[i]! > next) out.push(next, r[i]! - 1);
    next = r[i + 1]! + 1;
  }
  if (next <= MAX_CP) out.push(next, MAX_CP);
  return out;
}

let allCodePointsRef: WeakRef<{ text: string }> | null = null;

/**
 * Every code point except the surrogates, in order, as one string (4 MB): built when a translation
 * needs it, held weakly, so it is shared by the translations of one load and then collected.
 */
function allCodePoints(): string {
  const held = allCodePointsRef?.deref();
  if (held !== undefined) return held.text;
  const units = new Uint16Array(0xf800 + 2 * 0x100000);
  for (let i = 0; i < 0xd800; i++) units[i] = i;
  for (let i = 0; i < 0x2000; i++) units[0xd800 + i] = 0xe000 + i;
  for (let c = 0; c < 0x100000; c++) {
    units[0xf800 + 2 * c] = 0xd800 + (c >> 10);
    units[0xf800 + 2 * c + 1] = 0xdc00 + (c & 0x3ff);
  }
  const text = new TextDecoder('utf-16le').decode(units);
  allCodePointsRef = new WeakRef({ text });
  return text;
}

const classCache = new Map<string, Ranges>();

/**
 * The code points a JavaScript character class (`[…]`, `\s`, `\p{L}`, `.`) matches, asked of V8
 * itself, so the translated pattern means exactly what the JavaScript one means (same Unicode version).
 */
function classRanges(src: string, all: () => string): Ranges {
  const cached = classCache.get(src);
  if (cached !== undefined) return cached;
  // V8 walks every character of a run: negated classes (long runs) are asked as their positive form.
  if (src.startsWith('[^')) return complement(classRanges('[' + src.slice(2), all));
  if (/^\\[SDWP]/.test(src)) return complement(classRanges('\\' + src[1]!.toLowerCase() + src.slice(2), all));
  if (src === '.') return complement(classRanges('[\\n\\r\\u2028\\u2029]', all));
  const text = all();
  const cpAt = (i: number): number => (i < 0xd800 ? i : i < 0xf800 ? i + 0x800 : 0x10000 + ((i - 0xf800) >> 1));
  const pairs: Array<[number, number]> = [];
  const runs = new RegExp(`(?:${src})+`, 'gu');
  let m: RegExpExecArray | null;
  while ((m = runs.exec(text)) !== null) {
    const lo = cpAt(m.index);
    const hi = cpAt(m.index + m[0].length - 1);
    // The string skips the surrogates: a run across that gap is two ranges.
    if (lo < 0xd800 && hi >= 0xe000) pairs.push([lo, 0xd7ff], [0xe000, hi]);
    else pairs.push([lo, hi]);
  }
  const one = new RegExp(`^(?:${src})$`, 'u');
  for (let s = 0xd800; s <= 0xdfff; s++) if (one.test(String.fromCharCode(s))) pairs.push([s, s]);
  const r = normalizeRanges(pairs);
  classCache.set(src, r);
  return r;
}

/** Parses a JavaScript (u-mode, already validated by V8) pattern into the subset re2js can run. */
class PatternParser {
  private i = 0;
  private allText: string | null = null;
  constructor(private readonly src: string) {}

  /** The string of all code points, kept while this pattern is being parsed. */
  private readonly all = (): string => (this.allText ??= allCodePoints());

  parse(): Node {
    const n = this.alternation();
    if (this.i < this.src.length) throw new Unsupported(`unexpected '${this.src[this.i]}' at offset ${this.i}`);
    return n;
  }

  private alternation(): Node {
    const alts = [this.sequence()];
    while (this.src[this.i] === '|') {
      this.i++;
      alts.push(this.sequence());
    }
    return alts.length === 1 ? alts[0]! : { t: 'alt', alts };
  }

  private sequence(): Node {
    const items: Node[] = [];
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') items.push(this.term());
    return items.length === 1 ? items[0]! : { t: 'seq', items };
  }

  private term(): Node {
    const s = this.src;
    const c = s[this.i]!;
    let atom: Node;
    if (c === '^' || c === '$') {
      this.i++;
      return { t: 'assert', kind: c };
    } else if (c === '(') {
      if (s.startsWith('(?<=', this.i) || s.startsWith('(?<!', this.i)) throw new Unsupported('it has a lookbehind');
      const look = s.startsWith('(?=', this.i) ? 'pos' : s.startsWith('(?!', this.i) ? 'neg' : null;
      if (look !== null) this.i += 3;
      else if (s.startsWith('(?:', this.i)) this.i += 3;
      else if (s.startsWith('(?<', this.i)) this.i = s.indexOf('>', this.i) + 1;
      else this.i++;
      const body = this.alternation();
      this.i++; // ')'
      if (look !== null) return { t: 'look', negative: look === 'neg', body };
      atom = body;
    } else if (c === '[') {
      const start = this.i;
      this.i++;
      if (s[this.i] === '^') this.i++;
      while (s[this.i] !== ']') this.i += s[this.i] === '\\' ? 2 : 1;
      this.i++;
      atom = { t: 'set', r: classRanges(s.slice(start, this.i), this.all) };
    } else if (c === '.') {
      this.i++;
      atom = { t: 'set', r: classRanges('.', this.all) };
    } else if (c === '\\') {
      const e = s[this.i + 1]!;
      if (e === 'b' || e === 'B') {
        this.i += 2;
        return { t: 'assert', kind: e === 'b' ? '\\b' : '\\B' };
      }
      if (/[1-9k]/.test(e)) throw new Unsupported('it has a backreference');
      if ('dDsSwW'.includes(e)) {
        this.i += 2;
        atom = { t: 'set', r: classRanges('\\' + e, this.all) };
      } else if (e === 'p' || e === 'P') {
        const end = s.indexOf('}', this.i) + 1;
        atom = { t: 'set', r: classRanges(s.slice(this.i, end), this.all) };
        this.i = end;
      } else {
        const cp = this.charEscape();
        atom = { t: 'set', r: [cp, cp] };
      }
    } else {
      const cp = s.codePointAt(this.i)!;
      this.i += cp > 0xffff ? 2 : 1;
      atom = { t: 'set', r: [cp, cp] };
    }
    return this.quantified(atom);
  }

  /** The code point of a character escape at `this.i` (the backslash), moving past it. */
  private charEscape(): number {
    const s = this.src;
    const e = s[this.i + 1]!;
    this.i += 2;
    const hex = (n: number): number => {
      const v = parseInt(s.slice(this.i, this.i + n), 16);
      this.i += n;
      return v;
    };
    switch (e) {
      case 't':
        return 9;
      case 'n':
        return 10;
      case 'v':
        return 11;
      case 'f':
        return 12;
      case 'r':
        return 13;
      case '0':
        return 0;
      case 'c':
        return s.charCodeAt(this.i++) % 32;
      case 'x':
        return hex(2);
      case 'u': {
        if (s[this.i] === '{') {
          const end = s.indexOf('}', this.i);
          const v = parseInt(s.slice(this.i + 1, end), 16);
          this.i = end + 1;
          return v;
        }
        const v = hex(4);
        // In u-mode an escaped surrogate pair is one code point.
        if (v >= 0xd800 && v <= 0xdbff && s.startsWith('\\u', this.i) && /^[dD][c-fC-F][0-9a-fA-F]{2}$/.test(s.slice(this.i + 2, this.i + 6))) {
          this.i += 2;
          const lo = hex(4);
          return 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
        }
        return v;
      }
      default:
        return s.codePointAt(this.i - 1)!; // an escaped syntax character stands for itself
    }
  }

  private quantified(atom: Node): Node {
    const s = this.src;
    let min: number;
    let max: number;
    const c = s[this.i];
    if (c === '*') [min, max] = [0, Infinity];
    else if (c === '+') [min, max] = [1, Infinity];
    else if (c === '?') [min, max] = [0, 1];
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(s.slice(this.i))!;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      this.i += m[0].length - 1;
    } else return atom;
    this.i++;
    const lazy = s[this.i] === '?';
    if (lazy) this.i++;
    if (nullable(atom)) throw new Unsupported('a repeated part of it can match the empty string (backtracking and automata disagree on those)');
    return { t: 'rep', body: atom, min, max, lazy };
  }
}

function nullable(n: Node): boolean {
  switch (n.t) {
    case 'set':
      return false;
    case 'seq':
      return n.items.every(nullable);
    case 'alt':
      return n.alts.some(nullable);
    case 'rep':
      return n.min === 0 || nullable(n.body);
    case 'assert':
    case 'look':
      return true;
  }
}

const hexCp = (cp: number): string => `\\x{${cp.toString(16).toUpperCase()}}`;

function emitSet(r: Ranges): string {
  if (r.length === 0) return `[^\\x{0}-\\x{10FFFF}]`;
  if (r.length === 2 && r[0] === r[1]) return hexCp(r[0]!);
  let out = '[';
  for (let i = 0; i < r.length; i += 2) out += r[i] === r[i + 1] ? hexCp(r[i]!) : `${hexCp(r[i]!)}-${hexCp(r[i + 1]!)}`;
  return out + ']';
}

function emit(n: Node): string {
  switch (n.t) {
    case 'set':
      return emitSet(n.r);
    case 'seq':
      return n.items.map(emit).join('');
    case 'alt':
      return `(?:${n.alts.map(emit).join('|')})`;
    case 'rep': {
      const body = n.body.t === 'set' ? emit(n.body) : `(?:${emit(n.body)})`;
      const q = n.min === 0 && n.max === Infinity ? '*' : n.min === 1 && n.max === Infinity ? '+' : n.min === 0 && n.max === 1 ? '?' : n.max === Infinity ? `{${n.min},}` : n.min === n.max ? `{${n.min}}` : `{${n.min},${n.max}}`;
      return body + q + (n.lazy ? '?' : '');
    }
    case 'assert':
      return n.kind;
    case 'look':
      throw new Unsupported('it has a lookahead that is not a single character class at the end of a top-level alternative');
  }
}

/** The code points a lookahead body stands for, when it is one character class. */
function lookSet(body: Node): Ranges | null {
  if (body.t === 'set') return body.r;
  if (body.t === 'seq' && body.items.length === 1) return lookSet(body.items[0]!);
  return null;
}

/** Translates a JavaScript pattern for re2js; throws Unsupported with the reason when it cannot. */
function translateForLinear(source: string): { re2: string; lookaheads: Ranges[] } {
  const tree = new PatternParser(source).parse();
  const alts = tree.t === 'alt' ? tree.alts : [tree];
  const lookaheads: Ranges[] = [];
  const parts = alts.map((a) => {
    const items = a.t === 'seq' ? a.items : [a];
    const last = items[items.length - 1];
    if (last?.t !== 'look') return items.map(emit).join('');
    const set = lookSet(last.body);
    if (set === null) throw new Unsupported('it has a lookahead that is not a single character class');
    // (?!C) holds at the end of the text or before a character outside C; (?=C) before one in C.
    const consumed = last.negative ? complement(set) : set;
    lookaheads.push(consumed);
    const tail = last.negative ? `(?:$|(${emitSet(consumed)}))` : `(${emitSet(consumed)})`;
    return items.slice(0, -1).map(emit).join('') + tail;
  });
  return { re2: parts.join('|'), lookaheads };
}

/**
 * The finder for a JavaScript pattern (as onigurumaToJs gives it): V8 for the standard patterns,
 * re2js for the rest. Throws Unsupported, naming the construct, for patterns no linear-time engine
 * here runs (backreferences, lookbehinds, other lookaheads). `engine` forces one (tests).
 */
export function patternFinder(source: string, engine?: 'native' | 'linear'): PieceFinder {
  new RegExp(source, 'gu'); // a syntax error is reported as JavaScript words it
  if (engine === 'native' || (engine === undefined && NATIVE_PATTERNS.includes(source))) return new NativeFinder(source);
  const { re2, lookaheads } = translateForLinear(source);
  let re: RE2JS;
  try {
    re = RE2JS.compile(re2);
  } catch (e) {
    throw new Unsupported((e as Error).message);
  }
  return new LinearFinder(source, re, lookaheads);
}

/** A finder for a literal (a Split step's String pattern). */
export function literalFinder(literal: string): PieceFinder {
  return new LiteralFinder(literal);
}

function parseByteLevelPreTokenizer(p: unknown, fail: (msg: string) => never): ByteLevelSpec {
  const list: unknown[] = isObject(p) && p.type === 'Sequence' ? (Array.isArray(p.pretokenizers) ? p.pretokenizers : fail('pre_tokenizer Sequence without a pretokenizers list')) : [p];
  const stages: SplitStage[] = [];
  let byteLevel: Record<string, unknown> | null = null;
  for (const [i, step] of list.entries()) {
    if (!isObject(step)) fail(`pre_tokenizer step ${i} is not an object`);
    if (step.type === 'ByteLevel') {
      if (i !== list.length - 1) fail('a ByteLevel pre-tokenizer that is not the last step is not supported');
      byteLevel = step;
      if (step.use_regex ?? true) stages.push({ finder: patternFinder(GPT2_SPLIT_SOURCE), keepMatches: true });
    } else if (step.type === 'Split') {
      const pat = step.pattern;
      let finder: PieceFinder;
      if (isObject(pat) && typeof pat.Regex === 'string') {
        let source: string;
        try {
          source = onigurumaToJs(pat.Regex);
          new RegExp(source, 'gu');
        } catch (e) {
          fail(`pre_tokenizer Split pattern ${JSON.stringify(pat.Regex)} cannot be run as a JavaScript regex: ${(e as Error).message}`);
        }
        try {
          finder = patternFinder(source);
        } catch (e) {
          if (!(e instanceof Unsupported)) throw e;
          fail(`pre_tokenizer Split pattern ${JSON.stringify(pat.Regex)} cannot be run in linear time, so a text could make encoding hang: ${e.message}`);
        }
      } else if (isObject(pat) && typeof pat.String === 'string') {
        finder = literalFinder(pat.String);
      } else fail(`pre_tokenizer Split step ${i} has no Regex or String pattern`);
      if (step.invert === true) fail('pre_tokenizer Split with invert: true is not supported');
      const behavior = step.behavior ?? 'Isolated';
      if (behavior !== 'Isolated' && behavior !== 'Removed') fail(`pre_tokenizer Split behavior '${String(behavior)}' is not supported (only Isolated and Removed)`);
      stages.push({ finder, keepMatches: behavior === 'Isolated' });
    } else {
      fail(`unsupported pre_tokenizer ${typeName(step)} in a byte-level BPE (supported: ByteLevel, optionally after Split steps)`);
    }
  }
  if (byteLevel === null) fail('the pre_tokenizer has no ByteLevel step, so this is not a byte-level BPE tokenizer');
  const addPrefixSpace = byteLevel.add_prefix_space === true;
  // Hugging Face adds the prefix space to each piece the earlier steps produced; we only do it for whole texts.
  if (addPrefixSpace && list.length > 1) fail('ByteLevel add_prefix_space after Split steps is not supported');
  return { kind: 'byte-level', addPrefixSpace, stages };
}

function parseByteLevelDecoder(d: unknown, fail: (msg: string) => never): void {
  const ok = isObject(d) && (d.type === 'ByteLevel' || (d.type === 'Sequence' && Array.isArray(d.decoders) && d.decoders.length === 1 && isObject(d.decoders[0]) && d.decoders[0].type === 'ByteLevel'));
  if (!ok) fail(`unsupported decoder ${d === null || d === undefined ? 'none' : typeName(d)} (only ByteLevel)`);
}

/** A BPE model's vocabulary and merges, and the raw model object for the family-specific fields. */
interface BpeModelSpec {
  vocab: Map<string, number>;
  merges: Array<[string, string]>;
  ignoreMerges: boolean;
  raw: Record<string, unknown>;
}

function parseModel(m: unknown, fail: (msg: string) => never): BpeModelSpec {
  if (!isObject(m)) fail("no 'model' object: not a Hugging Face tokenizer.json");
  const type = m.type ?? (Array.isArray(m.vocab) ? 'Unigram' : m.merges !== undefined ? 'BPE' : 'WordPiece');
  const onlyBpe = 'only BPE models are supported (byte-level, or SentencePiece-style with byte_fallback)';
  if (type === 'Unigram') fail(`it holds a Unigram (SentencePiece) model; ${onlyBpe}`);
  if (type !== 'BPE') fail(`it holds a ${String(type)} model; ${onlyBpe}`);
  if (m.dropout !== undefined && m.dropout !== null && m.dropout !== 0) fail('BPE dropout is not supported (encoding would be random)');
  for (const field of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    const v = m[field];
    if (v !== undefined && v !== null && v !== '') fail(`BPE ${field} ${JSON.stringify(v)} is not supported`);
  }
  if (!isObject(m.vocab)) fail('model.vocab is not an object of token → id');
  const vocab = new Map<string, number>();
  const owner = new Map<number, string>();
  for (const [tok, id] of Object.entries(m.vocab)) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) fail(`model.vocab[${JSON.stringify(tok)}] is ${JSON.stringify(id)}, not a non-negative integer id`);
    const other = owner.get(id as number);
    if (other !== undefined) fail(`model.vocab[${JSON.stringify(other)}] and model.vocab[${JSON.stringify(tok)}] both have id ${id as number} (an id must stand for one token)`);
    owner.set(id as number, tok);
    vocab.set(tok, id as number);
  }
  if (!Array.isArray(m.merges)) fail('model.merges is not a list');
  if (m.merges.length > MAX_MERGES) fail(`model.merges has ${m.merges.length} entries; at most ${MAX_MERGES} are supported`);
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
  return { vocab, merges, ignoreMerges: m.ignore_merges === true, raw: m };
}

/** True when the pre-tokenizer has a ByteLevel step: the file is a byte-level BPE (GPT-2, Llama 3, Qwen). */
function isByteLevel(p: unknown): boolean {
  if (!isObject(p)) return false;
  if (p.type === 'ByteLevel') return true;
  return p.type === 'Sequence' && Array.isArray(p.pretokenizers) && p.pretokenizers.some((s) => isObject(s) && s.type === 'ByteLevel');
}

function parseByteLevel(j: Record<string, unknown>, model: BpeModelSpec, fail: (msg: string) => never): ByteLevelSpec {
  if (model.raw.byte_fallback === true) fail('BPE byte_fallback is a SentencePiece-style option and is not supported for byte-level BPE');
  for (let b = 0; b < 256; b++) {
    if (!model.vocab.has(BYTE_TO_CHAR[b]!)) fail(`model.vocab lacks the byte symbol ${JSON.stringify(BYTE_TO_CHAR[b])} (byte 0x${b.toString(16).padStart(2, '0')}); not a byte-level BPE vocabulary`);
  }
  const spec = parseByteLevelPreTokenizer(j.pre_tokenizer, fail);
  parseByteLevelDecoder(j.decoder, fail);
  return spec;
}

/** One character (code point), as Metaspace's replacement and Strip's content are. */
const isOneChar = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && [...v].length === 1;

/** The pre-tokenizer of a SentencePiece-style BPE: none, or Metaspace (alone or the one step of a Sequence). */
function parseMetaspace(p: unknown, fail: (msg: string) => never): MetaspaceSpec | null {
  if (p === null || p === undefined) return null;
  const supported = '(supported without a ByteLevel step: Metaspace, or none)';
  let step = p;
  if (isObject(p) && p.type === 'Sequence') {
    const list = Array.isArray(p.pretokenizers) ? p.pretokenizers : fail('pre_tokenizer Sequence without a pretokenizers list');
    const other = list.find((x) => !isObject(x) || x.type !== 'Metaspace');
    if (other !== undefined) fail(`unsupported pre_tokenizer ${typeName(other)} ${supported}`);
    if (list.length !== 1) fail(`a pre_tokenizer Sequence of ${list.length} Metaspace steps is not supported (one at most)`);
    step = list[0];
  }
  if (!isObject(step) || step.type !== 'Metaspace') fail(`unsupported pre_tokenizer ${typeName(step)} ${supported}`);
  if (!isOneChar(step.replacement)) fail(`pre_tokenizer Metaspace replacement ${JSON.stringify(step.replacement)} is not one character`);
  // Older files say add_prefix_space instead of prepend_scheme; Hugging Face refuses a contradiction.
  const scheme = step.prepend_scheme ?? (step.add_prefix_space === false ? 'never' : 'always');
  if (scheme !== 'first' && scheme !== 'always' && scheme !== 'never') fail(`pre_tokenizer Metaspace prepend_scheme ${JSON.stringify(scheme)} is not first, always or never`);
  if (step.add_prefix_space === false && scheme !== 'never') fail(`pre_tokenizer Metaspace add_prefix_space: false contradicts prepend_scheme ${JSON.stringify(scheme)}`);
  const split = step.split ?? true;
  if (typeof split !== 'boolean') fail(`pre_tokenizer Metaspace split ${JSON.stringify(split)} is not true or false`);
  return { replacement: step.replacement, prependScheme: scheme, split };
}

/** A SentencePiece-style decoder: Replace, ByteFallback, Fuse and Strip steps (alone or in a Sequence). */
function parseDecoderSteps(d: unknown, fail: (msg: string) => never): DecoderStep[] {
  const supported = '(supported without a ByteLevel pre-tokenizer: Replace, ByteFallback, Fuse and Strip, alone or in a Sequence)';
  if (d === null || d === undefined) fail(`no decoder ${supported}`);
  const list: unknown[] = isObject(d) && d.type === 'Sequence' ? (Array.isArray(d.decoders) ? d.decoders : fail('decoder Sequence without a decoders list')) : [d];
  return list.map((x): DecoderStep => {
    if (isObject(x) && x.type === 'Replace') return { type: 'Replace', ...parseReplace(x, 'decoder', fail) };
    if (isObject(x) && (x.type === 'ByteFallback' || x.type === 'Fuse')) return { type: x.type };
    if (isObject(x) && x.type === 'Strip') {
      const count = (v: unknown): number => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : fail(`decoder Strip start/stop ${JSON.stringify(v)} is not a non-negative integer`));
      if (!isOneChar(x.content)) fail(`decoder Strip content ${JSON.stringify(x.content)} is not one character`);
      return { type: 'Strip', content: x.content, start: count(x.start ?? 0), stop: count(x.stop ?? 0) };
    }
    return fail(`unsupported decoder ${typeName(x)} ${supported}`);
  });
}

function parseSentencePiece(j: Record<string, unknown>, model: BpeModelSpec, fail: (msg: string) => never): SentencePieceSpec {
  const metaspace = parseMetaspace(j.pre_tokenizer, fail);
  const decoder = parseDecoderSteps(j.decoder, fail);
  const m = model.raw;
  const byteFallback = m.byte_fallback === true;
  if (byteFallback) {
    const missing: string[] = [];
    for (let b = 0; b < 256; b++) if (!model.vocab.has(byteFallbackToken(b))) missing.push(byteFallbackToken(b));
    // Without every byte token, a character would fall back to the unk token, in an order Hugging Face gets wrong.
    if (missing.length > 0) fail(`BPE byte_fallback needs the 256 byte tokens <0x00> … <0xFF> in model.vocab; ${missing.length} are missing (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''})`);
  }
  const unk = m.unk_token ?? null;
  if (unk !== null && typeof unk !== 'string') fail(`BPE unk_token ${JSON.stringify(unk)} is not a string`);
  if (unk !== null && !model.vocab.has(unk)) fail(`BPE unk_token ${JSON.stringify(unk)} is not in model.vocab`);
  if (!byteFallback && unk === null) fail('the BPE model has neither byte_fallback nor an unk_token, so characters outside its vocabulary would be dropped without a trace');
  return { kind: 'sentencepiece', metaspace, decoder, byteFallback, unkToken: unk, fuseUnk: m.fuse_unk === true };
}

/** An added token and its index in the file's added_tokens, for messages. */
interface AddedEntry {
  token: AddedTokenSpec;
  index: number;
}

function parseAdded(list: unknown, vocab: ReadonlyMap<string, number>, fail: (msg: string) => never): AddedEntry[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) fail('added_tokens is not a list');
  const vocabOwner = new Map<number, string>();
  for (const [tok, id] of vocab) vocabOwner.set(id, tok);
  const byContent = new Map<string, AddedEntry>();
  const byId = new Map<number, AddedEntry>();
  const out: AddedEntry[] = [];
  list.forEach((t: unknown, index: number) => {
    if (!isObject(t) || !Number.isSafeInteger(t.id) || (t.id as number) < 0 || typeof t.content !== 'string' || t.content === '') fail(`added_tokens[${index}] needs a non-negative integer id and a non-empty content`);
    const id = t.id as number;
    const content = t.content;
    const what = `added_tokens[${index}] (${JSON.stringify(content)}, id ${id})`;
    const inVocab = vocab.get(content);
    if (inVocab !== undefined && inVocab !== id) fail(`${what}: model.vocab gives ${JSON.stringify(content)} id ${inVocab}`);
    const other = vocabOwner.get(id);
    if (inVocab === undefined && other !== undefined) fail(`${what}: model.vocab gives id ${id} to ${JSON.stringify(other)} (an id must stand for one token)`);
    const same = byContent.get(content);
    if (same !== undefined && same.token.id !== id) fail(`${what}: added_tokens[${same.index}] gives ${JSON.stringify(content)} id ${same.token.id}`);
    const sameId = byId.get(id);
    if (sameId !== undefined && sameId.token.content !== content) fail(`${what}: added_tokens[${sameId.index}] gives id ${id} to ${JSON.stringify(sameId.token.content)} (an id must stand for one token)`);
    if (same !== undefined) return; // the same token twice: Hugging Face keeps one
    const entry = { token: { id, content, special: t.special === true, lstrip: t.lstrip === true, rstrip: t.rstrip === true }, index };
    byContent.set(content, entry);
    byId.set(id, entry);
    out.push(entry);
  });
  return out;
}

/** Unused ids allowed below the largest one, beyond one per defined token (see checkIdRange). */
export const ID_SLACK = 1024;

/**
 * Arrays indexed by id are allocated from the largest id, so a file must not name ids far beyond the
 * tokens it defines: the largest id must be below 2 × (distinct tokens) + ID_SLACK, i.e. at most as
 * many unused ids as used ones, plus 1024. Real files are dense (GPT-2, Llama 3, Qwen and ours have no
 * unused id at all), and a file naming N tokens is at least ~8N bytes long, so this bounds the memory
 * by the file's own size. Checked before anything is allocated from an id.
 */
function checkIdRange(vocab: ReadonlyMap<string, number>, added: readonly AddedEntry[], fail: (msg: string) => never): void {
  let defined = vocab.size;
  for (const a of added) if (!vocab.has(a.token.content)) defined++;
  const limit = Math.min(MAX_VOCAB, 2 * defined + ID_SLACK);
  const refuse = (field: string, id: number): never =>
    fail(`${field} is ${id}, but the file defines only ${defined} tokens (ids must be below ${limit === MAX_VOCAB ? `${MAX_VOCAB}, the most supported` : `2 × ${defined} + ${ID_SLACK} = ${limit}`})`);
  for (const [tok, id] of vocab) if (id >= limit) refuse(`model.vocab[${JSON.stringify(tok)}]`, id);
  for (const a of added) if (a.token.id >= limit) refuse(`added_tokens[${a.index}].id`, a.token.id);
}

/**
 * Hugging Face ignores an added token's id when it loads a file: it gives the token its model.vocab
 * id, else the next id after the vocabulary's size and the added tokens before it (and warns when that
 * differs from the file). A file whose ids differ would encode and decode differently there: refused.
 * Files Hugging Face writes always agree (Llama 3's 256 special tokens follow its 128000 tokens).
 */
function checkAddedIds(vocab: ReadonlyMap<string, number>, added: readonly AddedEntry[], fail: (msg: string) => never): void {
  const size = vocab.size;
  let max = -1;
  for (const { token, index } of added) {
    const expected = vocab.get(token.content) ?? (max < 0 ? size : max >= size ? max + 1 : size);
    if (token.id !== expected) fail(`added_tokens[${index}] (${JSON.stringify(token.content)}, id ${token.id}): Hugging Face gives it id ${expected}, the next after model.vocab's ${size} tokens and the added tokens before it`);
    max = Math.max(max, token.id);
  }
}

/**
 * Hugging Face matches an added token marked `normalized: true` in the normalized text, as the
 * normalizer rewrites its content (Llama 2's would look for "▁<tok>"); we match added tokens in the
 * text as given, which is the same only without a normalizer. Such files are refused.
 */
function checkAddedNotNormalized(list: unknown, normalize: unknown, fail: (msg: string) => never): void {
  if (normalize === null || !Array.isArray(list)) return;
  list.forEach((t: unknown, index: number) => {
    if (isObject(t) && t.normalized === true) fail(`added_tokens[${index}] (${JSON.stringify(t.content)}) has normalized: true, which is not supported in a file with a normalizer (only normalized: false)`);
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
  const entries = parseAdded(j.added_tokens, model.vocab, fail);
  checkIdRange(model.vocab, entries, fail);
  checkAddedIds(model.vocab, entries, fail);
  const added = entries.map((e) => e.token);
  const normalize = parseNormalizer(j.normalizer, fail);
  checkAddedNotNormalized(j.added_tokens, normalize, fail);
  const family = isByteLevel(j.pre_tokenizer) ? parseByteLevel(j, model, fail) : parseSentencePiece(j, model, fail);
  return { vocab: model.vocab, merges: model.merges, ignoreMerges: model.ignoreMerges, added, normalize, family };
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
