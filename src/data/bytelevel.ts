/**
 * GPT-2's byte-level conventions, shared by the BPE trainer, the encoder and the tokenizer.json
 * reader: every byte has a printable stand-in character (so a token is a plain string in
 * tokenizer.json and never contains a space), and text is first cut into "words" by GPT-2's regex.
 * And the byte-level BPE family itself (ByteLevelBpe): pre-tokenizer pieces → UTF-8 bytes → merges.
 */
import { type BpeFamily, type BpeMerges, WordCache } from './bpe.js';

/** Finds pre-tokenizer pieces in a text: the leftmost match starting at or after a position. */
export interface PieceFinder {
  /**
   * 'native': V8's backtracking RegExp, only for the built-in patterns known to run in linear time on
   * it; 'linear': re2js (an automaton, linear in the text whatever the pattern); 'literal': indexOf.
   */
  readonly engine: 'native' | 'linear' | 'literal';
  /** The JavaScript pattern (or the literal) it finds. */
  readonly source: string;
  /** The leftmost match starting at or after `from`: true with `start`, `end` and `piece` set, or false. */
  find(text: string, from: number): boolean;
  start: number;
  end: number;
  /** text.slice(start, end), which the native engine has already made. */
  piece: string;
}

/** One pre-tokenizer step: cut each piece by a pattern, keeping matches and gaps, or gaps only. */
export interface SplitStage {
  finder: PieceFinder;
  keepMatches: boolean;
}

/** What a byte-level BPE does between normalization and the merges. */
export interface ByteLevelSpec {
  kind: 'byte-level';
  addPrefixSpace: boolean;
  stages: SplitStage[];
}

/**
 * GPT-2's pre-tokenizer split, exactly as Hugging Face's ByteLevel pre-tokenizer writes it (the same
 * JavaScript translation as @huggingface/tokenizers, so ids match theirs). Every character of the input
 * is matched by some alternative, so the pieces concatenate back to the input.
 */
export const GPT2_SPLIT_SOURCE = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

export function gpt2SplitRegex(): RegExp {
  return new RegExp(GPT2_SPLIT_SOURCE, 'gu');
}

/**
 * bytes_to_unicode() of GPT-2: printable Latin-1 bytes stand for themselves; the other 68 bytes
 * (controls, space, 0x7f–0xa0, 0xad) are shifted to U+0100 onwards, in byte order.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const chars: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    chars[b] = String.fromCharCode(printable ? b : 256 + shifted++);
  }
  return chars;
})();

/** The inverse of BYTE_TO_CHAR, by UTF-16 code unit (all stand-ins are single code units below U+0144). */
export const CHAR_TO_BYTE: ReadonlyMap<number, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c.charCodeAt(0), b]));

/** The byte-level form of some bytes: one stand-in character per byte. */
export function bytesToSymbols(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_CHAR[bytes[i]!];
  return s;
}

/**
 * The bytes a byte-level token string stands for, or null when some character is not a stand-in
 * (added tokens such as "<|bos|>" are then taken as their own UTF-8, as Hugging Face's decoder does).
 */
export function symbolsToBytes(token: string): Uint8Array | null {
  const out = new Uint8Array(token.length);
  for (let i = 0; i < token.length; i++) {
    const b = CHAR_TO_BYTE.get(token.charCodeAt(i));
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}

export const utf8Encoder = new TextEncoder();
/** Lossy, as Hugging Face's ByteLevel decoder: invalid UTF-8 (a token cut mid-character) becomes U+FFFD. */
export const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

/**
 * Byte-level BPE (GPT-2, Llama 3, Qwen): an optional prefix space, the file's Split stages (or GPT-2's
 * regex), then each piece's UTF-8 bytes merged, cached per piece. Decoding concatenates the tokens'
 * bytes (an added token's are its content's UTF-8) and decodes them lossily, as Hugging Face.
 */
export class ByteLevelBpe implements BpeFamily {
  private readonly byteToId: Int32Array;
  private readonly idBytes: Uint8Array[];
  private readonly cache = new WordCache();

  constructor(
    private readonly spec: ByteLevelSpec,
    /** Model vocabulary (byte-level strings → ids), without added tokens that are not in it. */
    private readonly vocab: ReadonlyMap<string, number>,
    private readonly bpe: BpeMerges,
    private readonly ignoreMerges: boolean,
    /** Every id's token string (added tokens' content) and which ids are added tokens, for decoding. */
    idToToken: readonly string[],
    addedIds: ReadonlySet<number>,
  ) {
    this.byteToId = Int32Array.from(BYTE_TO_CHAR, (c) => vocab.get(c)!);
    this.idBytes = idToToken.map((tok, id) => (addedIds.has(id) ? null : symbolsToBytes(tok)) ?? utf8Encoder.encode(tok));
  }

  encode(text: string, _first: boolean, out: number[]): void {
    if (text.length === 0) return;
    // Hugging Face adds the prefix space to every stretch between added tokens.
    if (this.spec.addPrefixSpace && !text.startsWith(' ')) text = ' ' + text;
    this.splitStage(text, 0, out);
  }

  decode(ids: readonly number[]): string {
    let total = 0;
    for (const id of ids) total += this.idBytes[id]!.length;
    const bytes = new Uint8Array(total);
    let at = 0;
    for (const id of ids) {
      const b = this.idBytes[id]!;
      bytes.set(b, at);
      at += b.length;
    }
    return utf8Decoder.decode(bytes);
  }

  /** Cuts `text` by stage `stage` and the ones after it, encoding the final pieces. */
  private splitStage(text: string, stage: number, out: number[]): void {
    const stages = this.spec.stages;
    if (stage === stages.length) {
      const ids = this.pieceIds(text);
      for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
      return;
    }
    const { finder, keepMatches } = stages[stage]!;
    let from = 0;
    let at = 0;
    while (finder.find(text, at)) {
      const start = finder.start;
      const end = finder.end;
      if (end === start) {
        // An empty match cuts nothing; step over one code point and go on.
        at = end + ((text.codePointAt(end) ?? 0) > 0xffff ? 2 : 1);
        continue;
      }
      if (start > from) this.splitStage(text.slice(from, start), stage + 1, out);
      if (keepMatches) this.splitStage(finder.piece, stage + 1, out);
      from = at = end;
    }
    if (from < text.length) this.splitStage(from === 0 ? text : text.slice(from), stage + 1, out);
  }

  /** The ids of one pre-token piece, cached. */
  private pieceIds(piece: string): Int32Array {
    const cached = this.cache.get(piece);
    if (cached !== undefined) return cached;
    const bytes = utf8Encoder.encode(piece);
    let ids: Int32Array | null = null;
    if (this.ignoreMerges) {
      const whole = this.vocab.get(bytesToSymbols(bytes));
      if (whole !== undefined) ids = Int32Array.of(whole);
    }
    if (ids === null) {
      ids = new Int32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) ids[i] = this.byteToId[bytes[i]!]!;
      ids = this.bpe.apply(ids);
    }
    this.cache.set(piece, ids);
    return ids;
  }
}
