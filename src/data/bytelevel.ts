/**
 * GPT-2's byte-level conventions, shared by the BPE trainer, the encoder and the tokenizer.json
 * reader: every byte has a printable stand-in character (so a token is a plain string in
 * tokenizer.json and never contains a space), and text is first cut into "words" by GPT-2's regex.
 */

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
