/** What the source readers produce. */
import type { BadInput } from './bad-input.js';
import type { SourceFile } from './files.js';

/** A document as read from a source, with where it came from. */
export interface SourceDocument {
  /** Stable id (it decides the train/validation split): `<file id>` or `<file id>:<line or row>`. */
  id: string;
  text: string;
  /** The source as configured: a file, folder or pattern. */
  source: string;
  /** Absolute path of the file holding it. */
  file: string;
  /** Where in the file: `line 12` (1-based), `row 7` (0-based, as in 🤗 datasets) or `file` (the whole file). */
  locator: string;
}

/** What a format's reader yields for one document of a file: `key` is its line or row (null: the whole file). */
export interface FileDocument {
  key: number | null;
  locator: string;
  text: string;
}

/** Reads one file, in order, sending bad records and unreadable parts to `bad`. */
export type FormatReader = (file: SourceFile, textField: string, bad: BadInput) => AsyncGenerator<FileDocument>;
