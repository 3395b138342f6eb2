/**
 * Parquet (🤗 datasets' format): one document per row, the string in column `textField`. Read with
 * hyparquet (pure JavaScript, no native build) and hyparquet-compressors (snappy, gzip, zstd, brotli,
 * lz4 pages) one row group at a time through positioned reads of the file, so memory holds the footer
 * and one row group of one column, whatever the file's size.
 *
 * A footer that does not parse, a missing or non-text column, or a file without rows makes the whole
 * file unreadable; a row group that does not decode is bad for all its rows; a null or non-UTF-8 value
 * is one bad row. Rows are numbered from 0 across the file, as in 🤗 datasets.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { parquetMetadataAsync, parquetRead, parquetSchema, type AsyncBuffer, type FileMetaData, type SchemaTree } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import type { BadInput } from './bad-input.js';
import type { SourceFile } from './files.js';
import type { FileDocument } from './types.js';
import { decodeUtf8, textValue } from './values.js';

/** A file as hyparquet's AsyncBuffer: each slice is one positioned read. */
async function fileBuffer(path: string): Promise<AsyncBuffer & { close(): Promise<void> }> {
  const handle: FileHandle = await open(path, 'r');
  const { size } = await handle.stat();
  return {
    byteLength: size,
    async slice(start: number, end = size): Promise<ArrayBuffer> {
      // A corrupt footer can point anywhere: refuse rather than read past the file.
      if (!(start >= 0 && start <= end && end <= size)) throw new Error(`byte range ${start}–${end} lies outside the file (${size} bytes)`);
      const bytes = new Uint8Array(end - start);
      for (let at = 0; at < bytes.length; ) {
        const { bytesRead } = await handle.read(bytes, at, bytes.length - at, start + at);
        if (bytesRead === 0) throw new Error(`the file shrank while being read (${size} bytes before)`);
        at += bytesRead;
      }
      return bytes.buffer;
    },
    close: () => handle.close(),
  };
}

/** Why a column cannot hold document text, or null when it can (a flat, non-repeated byte-array column). */
function notText(column: SchemaTree): string | null {
  const e = column.element;
  if (column.children.length > 0) return `column '${e.name}' is nested (${e.logical_type?.type ?? e.converted_type ?? 'a struct'}), not text`;
  if (e.repetition_type === 'REPEATED') return `column '${e.name}' is a repeated field (a list), not text`;
  if (e.type !== 'BYTE_ARRAY') return `column '${e.name}' holds ${e.type ?? 'no values'}, not text`;
  return null;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export async function* readParquet(file: SourceFile, textField: string, bad: BadInput): AsyncGenerator<FileDocument> {
  const buffer = await fileBuffer(file.path);
  try {
    let metadata: FileMetaData;
    try {
      metadata = await parquetMetadataAsync(buffer);
    } catch (e) {
      bad.unreadable(`not a readable Parquet file (${message(e)})`);
      return;
    }
    const columns = parquetSchema(metadata).children;
    const column = columns.find((c) => c.element.name === textField);
    const problem = column === undefined ? `no column '${textField}' (it has ${columns.map((c) => `'${c.element.name}'`).join(', ')}; set text_field to the column holding the text)` : notText(column);
    if (problem !== null) {
      bad.unreadable(problem);
      return;
    }
    if (metadata.num_rows === 0n) {
      bad.unreadable('no rows');
      return;
    }
    let rowStart = 0;
    for (const [g, group] of metadata.row_groups.entries()) {
      const rowEnd = rowStart + Number(group.num_rows);
      if (rowEnd === rowStart) continue;
      let values: unknown[] | null = null;
      try {
        values = await readRowGroup(buffer, metadata, textField, rowStart, rowEnd);
      } catch (e) {
        bad.record('row', rowStart, `row group ${g} cannot be decoded (${message(e)})`, rowEnd - 1);
      }
      for (let i = 0; values !== null && i < values.length; i++) {
        const row = rowStart + i;
        const value = textValue(values[i], textField);
        if ('why' in value) bad.record('row', row, value.why);
        else yield { key: row, locator: `row ${row}`, text: value.text };
      }
      rowStart = rowEnd;
    }
  } finally {
    await buffer.close();
  }
}

/** The values of one column in one row group; strings are decoded strictly (InvalidUtf8 where they are not UTF-8). */
async function readRowGroup(file: AsyncBuffer, metadata: FileMetaData, column: string, rowStart: number, rowEnd: number): Promise<unknown[]> {
  let rows: unknown[][] = [];
  await parquetRead({
    file,
    metadata,
    columns: [column],
    rowStart,
    rowEnd,
    compressors,
    parsers: { stringFromBytes: decodeUtf8 },
    onComplete: (r) => (rows = r),
  });
  if (rows.length !== rowEnd - rowStart) throw new Error(`${rows.length} values for ${rowEnd - rowStart} rows`);
  return rows.map((r) => r[0]);
}
