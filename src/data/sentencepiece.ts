/**
 * SentencePiece-style BPE as Hugging Face runs it (Llama 2, TinyLlama, Mistral): spaces become "▁"
 * (by the Prepend/Replace normalizers, which the Tokenizer applies, or a Metaspace pre-tokenizer),
 * each character is a starting symbol — or, when it is not in the vocabulary, its UTF-8 bytes as
 * <0xNN> tokens (`byte_fallback`) or the unk token (`fuse_unk`: one for a run) — and the merges join
 * them. Decoding runs the file's decoder chain (Replace "▁" → " ", ByteFallback, Fuse, Strip).
 *
 * Without a pre-tokenizer (Llama 2, Mistral) Hugging Face merges a whole text as one word. We cut it
 * before each "▁" that follows another character and merge the parts separately, with a cache, as
 * byte-level BPE does its words: the same ids, because no merge of the file joins a character to a
 * following "▁" (checked when loading; otherwise the text is merged whole, uncached).
 */
import { type BpeFamily, type BpeMerges, WordCache } from './bpe.js';
import { utf8Encoder } from './bytelevel.js';

export interface MetaspaceSpec {
  /** The character spaces become (one code point; "▁" in every file we know). */
  replacement: string;
  /** Whether a replacement is put before the text: always, before the text's first stretch only, or never. */
  prependScheme: 'first' | 'always' | 'never';
  /** Cut the text before each replacement character (each piece is then merged on its own). */
  split: boolean;
}

/** One step of the decoder chain; each maps a list of token strings to another, as in Hugging Face. */
export type DecoderStep =
  | { type: 'Replace'; pattern: string; content: string }
  | { type: 'ByteFallback' }
  | { type: 'Fuse' }
  | { type: 'Strip'; content: string; start: number; stop: number };

/** What a SentencePiece-style BPE does around the merges, as tokenizer-json.ts validated it. */
export interface SentencePieceSpec {
  kind: 'sentencepiece';
  metaspace: MetaspaceSpec | null;
  decoder: DecoderStep[];
  /** Characters outside the vocabulary become their UTF-8 bytes' <0xNN> tokens (all 256 are then in the vocabulary). */
  byteFallback: boolean;
  /** Otherwise they become this token (a run of them one token when fuseUnk). */
  unkToken: string | null;
  fuseUnk: boolean;
}

/** The vocabulary token of byte b under byte_fallback: "<0x0A>" (upper-case hex, as Hugging Face formats it). */
export function byteFallbackToken(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** The byte a ByteFallback decoder reads from a token: six characters "<0x" hex hex ">", either case. */
function fallbackByte(token: string): number {
  if (token.length !== 6 || !token.startsWith('<0x') || token[5] !== '>') return -1;
  const hex = token.slice(3, 5);
  return /^[0-9a-fA-F]{2}$/.test(hex) ? parseInt(hex, 16) : -1;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Hugging Face's ByteFallback decoder: each run of byte tokens becomes the text its bytes spell, or,
 * when they are not valid UTF-8, one U+FFFD per byte (not per invalid sequence, as TextDecoder would).
 */
function byteFallbackDecode(tokens: string[]): string[] {
  const out: string[] = [];
  const run: number[] = [];
  const flush = (): void => {
    if (run.length === 0) return;
    try {
      out.push(strictUtf8.decode(Uint8Array.from(run)));
    } catch {
      for (let i = 0; i < run.length; i++) out.push('\ufffd');
    }
    run.length = 0;
  };
  for (const t of tokens) {
    const b = fallbackByte(t);
    if (b >= 0) run.push(b);
    else {
      flush();
      out.push(t);
    }
  }
  flush();
  return out;
}

/** Strip: up to `start` copies of `content` (one character) off the front of each token, and up to `stop` off its end. */
function strip(token: string, content: string, start: number, stop: number): string {
  const w = content.length;
  let from = 0;
  for (let k = 0; k < start && token.startsWith(content, from); k++) from += w;
  let to = token.length;
  for (let k = 0; k < stop && to - w >= from && token.startsWith(content, to - w); k++) to -= w;
  return token.slice(from, to);
}

function decodeStep(step: DecoderStep, tokens: string[]): string[] {
  switch (step.type) {
    case 'Replace':
      return tokens.map((t) => t.replaceAll(step.pattern, step.content));
    case 'ByteFallback':
      return byteFallbackDecode(tokens);
    case 'Fuse':
      return [tokens.join('')];
    case 'Strip':
      return tokens.map((t) => strip(t, step.content, step.start, step.stop));
  }
}

/** The character the cut points are found by: the text's "▁". */
const CUT_CHAR = '▁';
/** A token holding a character then "▁": a merge that crosses a cut point makes one. */
const JOINS_CUT = new RegExp(`[^${CUT_CHAR}]${CUT_CHAR}`, 'u');

export class SentencePieceBpe implements BpeFamily {
  /** Id of each BMP character that is a token, else -1 (most lookups; the rest go through the Map). */
  private readonly charIds = new Int32Array(0x10000).fill(-1);
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly unkId: number;
  private readonly cutCode: number;
  private readonly cache = new WordCache();
  private scratch = new Int32Array(64);

  constructor(
    private readonly spec: SentencePieceSpec,
    /** Model vocabulary (token → id), without added tokens that are not in it. */
    private readonly vocab: ReadonlyMap<string, number>,
    merges: ReadonlyArray<readonly [string, string]>,
    private readonly bpe: BpeMerges,
    private readonly ignoreMerges: boolean,
    /** Every id's token string (added tokens' content), for decoding. */
    private readonly idToToken: readonly string[],
  ) {
    for (const [tok, id] of vocab) if (tok.length === 1) this.charIds[tok.charCodeAt(0)] = id;
    if (spec.byteFallback) for (let b = 0; b < 256; b++) this.byteIds[b] = vocab.get(byteFallbackToken(b))!;
    this.unkId = spec.unkToken === null ? -1 : vocab.get(spec.unkToken)!;
    // Cutting before "▁" keeps the ids only if no merge joins something to a following "▁" (an unknown "▁" could fuse too).
    const joinsCut = merges.some(([a, b]) => JOINS_CUT.test(a + b));
    this.cutCode = vocab.has(CUT_CHAR) && !joinsCut ? CUT_CHAR.charCodeAt(0) : -1;
  }

  encode(text: string, first: boolean, out: number[]): void {
    if (text.length === 0) return;
    const ms = this.spec.metaspace;
    if (ms === null) {
      this.word(text, out);
      return;
    }
    const r = ms.replacement;
    text = text.replaceAll(' ', r);
    if ((ms.prependScheme === 'always' || (ms.prependScheme === 'first' && first)) && !text.startsWith(r)) text = r + text;
    if (!ms.split) {
      this.word(text, out);
      return;
    }
    // Each replacement character starts a new piece (Hugging Face's MergedWithNext).
    let from = 0;
    for (let at = text.indexOf(r, 1); at >= 0; at = text.indexOf(r, at + r.length)) {
      this.word(text.slice(from, at), out);
      from = at;
    }
    this.word(from === 0 ? text : text.slice(from), out);
  }

  decode(ids: readonly number[]): string {
    let tokens = ids.map((id) => this.idToToken[id]!);
    for (const step of this.spec.decoder) tokens = decodeStep(step, tokens);
    return tokens.join('');
  }

  /** One pre-tokenizer word: whole when ignore_merges finds it in the vocabulary, else merged part by part. */
  private word(w: string, out: number[]): void {
    if (w.length === 0) return;
    if (this.ignoreMerges) {
      const id = this.vocab.get(w);
      if (id !== undefined) {
        out.push(id);
        return;
      }
    }
    const cut = this.cutCode;
    if (cut < 0) {
      this.part(w, out);
      return;
    }
    let from = 0;
    for (let i = 1; i < w.length; i++) {
      if (w.charCodeAt(i) === cut && w.charCodeAt(i - 1) !== cut) {
        this.part(w.slice(from, i), out);
        from = i;
      }
    }
    this.part(from === 0 ? w : w.slice(from), out);
  }

  /** The ids of a part no merge crosses, cached. */
  private part(p: string, out: number[]): void {
    let ids = this.cache.get(p);
    if (ids === undefined) {
      ids = this.bpe.apply(this.symbols(p));
      this.cache.set(p, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
  }

  /** The starting symbols of a part: characters, byte-fallback tokens, unk tokens (fused runs when fuse_unk). */
  private symbols(p: string): Int32Array {
    // At most three symbols per UTF-16 code unit: a BMP character has at most three UTF-8 bytes, a pair four.
    if (this.scratch.length < 3 * p.length) this.scratch = new Int32Array(3 * p.length);
    const sym = this.scratch;
    let n = 0;
    let inUnk = false;
    for (let i = 0; i < p.length; ) {
      const c = p.charCodeAt(i);
      let len = 1;
      let id: number;
      if (c < 0xd800 || c >= 0xe000) id = this.charIds[c]!;
      else {
        // A surrogate pair is one character; a lone surrogate is its own (not in any real vocabulary).
        if (c < 0xdc00 && i + 1 < p.length && (p.charCodeAt(i + 1) & 0xfc00) === 0xdc00) len = 2;
        id = this.vocab.get(p.slice(i, i + len)) ?? -1;
      }
      if (id >= 0) {
        sym[n++] = id;
        inUnk = false;
      } else if (this.spec.byteFallback) {
        // A lone surrogate encodes as U+FFFD's bytes, as TextEncoder (and tokenizers.js) do.
        for (const b of utf8Encoder.encode(p.slice(i, i + len))) sym[n++] = this.byteIds[b]!;
        inUnk = false;
      } else if (!(inUnk && this.spec.fuseUnk)) {
        sym[n++] = this.unkId;
        inUnk = true;
      }
      i += len;
    }
    return sym.slice(0, n);
  }
}
