/**
 * JSONL (plain, .gz or .zst): one document per non-blank line, an object whose `textField` is a
 * string. Streamed line by line; a line is decoded (strict UTF-8) and parsed on its own, so a bad one
 * names its line and, under `skip`, costs only itself.
 */
import type { BadInput } from './bad-input.js';
import type { SourceFile } from './files.js';
import { CorruptStream, fileChunks, lines } from './streams.js';
import type { FileDocument } from './types.js';
import { decodeUtf8, textValue } from './values.js';

export async function* readJsonl(file: SourceFile, textField: string, bad: BadInput): AsyncGenerator<FileDocument> {
  let last = 0;
  let records = 0;
  try {
    for await (const { bytes, number } of lines(fileChunks(file.path, file.compression))) {
      last = number;
      const decoded = decodeUtf8(bytes);
      if (typeof decoded !== 'string') {
        bad.record('line', number, `not UTF-8 (invalid byte sequence at byte ${decoded.at} of the line)`);
        records++;
        continue;
      }
      // trim() also drops a '\r' of Windows line ends and a byte-order mark opening the file.
      const line = decoded.trim();
      if (line === '') continue;
      records++;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        bad.record('line', number, `invalid JSON: ${(e as Error).message}`);
        continue;
      }
      if (typeof rec !== 'object' || rec === null || Array.isArray(rec)) {
        bad.record('line', number, 'not a JSON object');
        continue;
      }
      // Own fields only: a text_field such as 'constructor' must not find Object.prototype's.
      const value = textValue(Object.hasOwn(rec, textField) ? (rec as Record<string, unknown>)[textField] : undefined, textField);
      if ('why' in value) bad.record('line', number, value.why);
      else yield { key: number, locator: `line ${number}`, text: value.text };
    }
  } catch (e) {
    if (!(e instanceof CorruptStream)) throw e;
    bad.unreadable(e.message, last > 0 ? `line ${last}` : undefined);
    return;
  }
  if (records === 0) bad.unreadable('no records (the file is empty or blank)');
}
