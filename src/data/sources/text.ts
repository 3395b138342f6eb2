/** A text file (plain, .gz or .zst) is one document: its whole content, strictly UTF-8. */
import type { BadInput } from './bad-input.js';
import type { SourceFile } from './files.js';
import { CorruptStream, fileChunks } from './streams.js';
import type { FileDocument } from './types.js';
import { decodeUtf8 } from './values.js';

export async function* readText(file: SourceFile, _textField: string, bad: BadInput): AsyncGenerator<FileDocument> {
  const chunks: Uint8Array[] = [];
  try {
    for await (const chunk of fileChunks(file.path, file.compression)) chunks.push(chunk);
  } catch (e) {
    if (!(e instanceof CorruptStream)) throw e;
    bad.unreadable(e.message);
    return;
  }
  const bytes = Buffer.concat(chunks);
  const text = decodeUtf8(bytes);
  if (typeof text !== 'string') {
    const line = bytes.subarray(0, text.at).reduce((n, b) => n + (b === 10 ? 1 : 0), 1);
    bad.record('line', line, `not UTF-8 (invalid byte sequence at byte ${text.at} of the file, which is one document)`);
    return;
  }
  yield { key: null, locator: 'file', text };
}
