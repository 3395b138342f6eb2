/**
 * From raw record values to document text. UTF-8 is decoded strictly: a replacement character
 * silently standing in for bad bytes would be a silent change of the data, so a non-UTF-8 sequence
 * is reported with its position instead. A byte-order mark is kept as text (U+FEFF), as a non-strict
 * read would keep it.
 */

const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Bytes that are not UTF-8, found where a string was expected (a Parquet value). */
export class InvalidUtf8 {
  constructor(readonly at: number) {}
}

/** The text of `bytes`, or where its first invalid UTF-8 sequence starts. */
export function decodeUtf8(bytes: Uint8Array): string | InvalidUtf8 {
  try {
    return strict.decode(bytes);
  } catch {
    return new InvalidUtf8(invalidUtf8At(bytes));
  }
}

/** Offset of the first byte that does not start or continue a well-formed UTF-8 sequence (Unicode table 3-7). */
export function invalidUtf8At(b: Uint8Array): number {
  let i = 0;
  while (i < b.length) {
    const c = b[i]!;
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c < 0x80) n = 0;
    else if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) [n, lo, hi] = [2, c === 0xe0 ? 0xa0 : 0x80, c === 0xed ? 0x9f : 0xbf];
    else if (c >= 0xf0 && c <= 0xf4) [n, lo, hi] = [3, c === 0xf0 ? 0x90 : 0x80, c === 0xf4 ? 0x8f : 0xbf];
    else return i;
    for (let k = 1; k <= n; k++) {
      const d = b[i + k];
      if (d === undefined || d < (k === 1 ? lo : 0x80) || d > (k === 1 ? hi : 0xbf)) return i;
    }
    i += n + 1;
  }
  return -1;
}

/** The document text a record's `field` holds, or why it holds none. */
export function textValue(value: unknown, field: string): { text: string } | { why: string } {
  if (typeof value === 'string') return { text: value };
  if (value instanceof InvalidUtf8) return { why: `'${field}' is not UTF-8 (invalid byte sequence at byte ${value.at} of the text)` };
  if (value === undefined) return { why: `no field '${field}' (set text_field to the field holding the text)` };
  if (value === null) return { why: `'${field}' is null` };
  const kind = Array.isArray(value) ? 'a list' : typeof value === 'object' ? 'an object' : `a ${typeof value}`;
  return { why: `'${field}' is ${kind}, not a string` };
}
