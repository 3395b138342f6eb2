/**
 * The tokenizer: BPE as Hugging Face defines it, stored as a Hugging Face tokenizer.json, so a trained
 * model's tokenizer loads in transformers and ids agree exactly. Trained tokenizers are byte-level
 * (GPT-2's scheme); loaded ones may also be SentencePiece-style (Llama 2, Mistral; sentencepiece.ts).
 *
 *   const tok = trainTokenizer(texts, { vocab: 4096 });   // ids 0,1 = <|bos|>, <|eos|>; 2–257 = bytes
 *   tok.encode('Hello world', { eos: true });             // → number[]
 *   tok.decode(ids);                                      // decode(encode(s)) === s for every well-formed string (byte-level)
 *   tok.save('tokenizer.json'); loadTokenizer('tokenizer.json');
 *   tok.hash();                                           // SHA-256 of the canonical JSON: the identity caches use
 *
 * Encoding: text → added-token split → normalizer (if any) → the family's pre-tokenizer and starting
 * symbols (bytes, or characters with byte fallback) → merges applied lowest rank first (leftmost on
 * ties, as Hugging Face; bpe.ts), cached per word.
 *
 * Special tokens in text (e.g. a literal "<|eos|>" in a document) are encoded as plain text unless
 * `allowSpecial` is set, so a document cannot inject a document boundary. Non-special added tokens
 * of a loaded tokenizer are always matched, as Hugging Face does.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type BpeFamily, BpeMerges } from './bpe.js';
import { countWords, learnMerges } from './bpe-train.js';
import { BYTE_TO_CHAR, ByteLevelBpe, symbolsToBytes } from './bytelevel.js';
import { writeFileAtomic } from '../util/files.js';
import { canonicalJson, sha256Hex } from './json.js';
import { SentencePieceBpe } from './sentencepiece.js';
import { buildTokenizerJson, parseTokenizerJson, type AddedTokenSpec, type TokenizerSpec } from './tokenizer-json.js';
import { UserError } from '../util/errors.js';

export const DEFAULT_BOS = '<|bos|>';
export const DEFAULT_EOS = '<|eos|>';

export interface EncodeOptions {
  /** Prepend the beginning-of-sequence token. */
  bos?: boolean;
  /** Append the end-of-sequence token. */
  eos?: boolean;
  /** Recognise special-token strings in the text (default: encode them as plain text). */
  allowSpecial?: boolean;
}

export interface DecodeOptions {
  /** Leave out special tokens (BOS, EOS, …). */
  skipSpecial?: boolean;
}

export interface SpecialTokenNames {
  /** Content of the token that begins a document (default: found by name; the EOS token when there is none). */
  bosToken?: string;
  /** Content of the token that ends a document (default: found by name). */
  eosToken?: string;
}

export interface TrainTokenizerOptions {
  /** Vocabulary size including the 256 bytes and the special tokens. */
  vocab: number;
  /** Pairs seen fewer times are not merged (default 2); a small corpus may then give a smaller vocabulary. */
  minFrequency?: number;
  bosToken?: string;
  eosToken?: string;
}

const BOS_NAMES = [DEFAULT_BOS, '<|begin_of_text|>', '<|startoftext|>', '<s>', '<bos>'];
const EOS_NAMES = [DEFAULT_EOS, '<|end_of_text|>', '<|endoftext|>', '</s>', '<eos>'];

/** Escapes a literal for a u-flag RegExp (which refuses identity escapes such as `\-` outside a class). */
function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

/** A regex matching any of the tokens, longest first (so leftmost-longest, like Hugging Face), or null for none. */
function addedTokenRegex(tokens: readonly AddedTokenSpec[]): RegExp | null {
  if (tokens.length === 0) return null;
  const sorted = [...tokens].sort((a, b) => b.content.length - a.content.length);
  return new RegExp(sorted.map((t) => escapeRegex(t.content)).join('|'), 'gu');
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly bos: number;
  readonly eos: number;
  /** Where it came from (a path, or "trained"), for messages. */
  readonly source: string;

  private readonly json: Record<string, unknown>;
  private readonly idToToken: string[];
  private readonly tokenToId: Map<string, number>;
  private readonly specialIds: Set<number>;
  private readonly addedByContent: Map<string, AddedTokenSpec>;
  private readonly plainAddedRegex: RegExp | null;
  private readonly allAddedRegex: RegExp | null;
  private readonly normalize: ((s: string) => string) | null;
  private readonly family: BpeFamily;
  private cachedHash: string | null = null;

  private constructor(json: Record<string, unknown>, spec: TokenizerSpec, names: SpecialTokenNames, source: string) {
    this.json = json;
    this.source = source;
    this.tokenToId = new Map(spec.vocab);
    for (const a of spec.added) this.tokenToId.set(a.content, a.id);
    let maxId = -1;
    for (const id of this.tokenToId.values()) maxId = Math.max(maxId, id);
    // Bounded by parseTokenizerJson: below 2 × (tokens defined) + 1024, so the arrays below fit the file.
    this.vocabSize = maxId + 1;
    this.idToToken = new Array<string>(this.vocabSize).fill('');
    for (const [tok, id] of spec.vocab) this.idToToken[id] = tok;
    for (const a of spec.added) this.idToToken[a.id] = a.content;

    this.specialIds = new Set(spec.added.filter((a) => a.special).map((a) => a.id));
    this.addedByContent = new Map(spec.added.map((a) => [a.content, a]));
    this.plainAddedRegex = addedTokenRegex(spec.added.filter((a) => !a.special));
    this.allAddedRegex = addedTokenRegex(spec.added);
    this.normalize = spec.normalize;
    const bpe = new BpeMerges(spec.vocab, spec.merges, this.vocabSize);
    const f = spec.family;
    this.family =
      f.kind === 'byte-level'
        ? new ByteLevelBpe(f, spec.vocab, bpe, spec.ignoreMerges, this.idToToken, new Set(spec.added.map((a) => a.id)))
        : new SentencePieceBpe(f, spec.vocab, spec.merges, bpe, spec.ignoreMerges, this.idToToken);

    const find = (given: string | undefined, candidates: string[], what: string): number | null => {
      if (given !== undefined) {
        const id = this.tokenToId.get(given);
        if (id === undefined) throw new UserError(`tokenizer ${source}: the ${what} token ${JSON.stringify(given)} is not in its vocabulary`);
        return id;
      }
      for (const c of candidates) {
        const id = this.tokenToId.get(c);
        if (id !== undefined) return id;
      }
      return null;
    };
    const eos = find(names.eosToken, EOS_NAMES, 'end-of-sequence');
    if (eos === null) throw new UserError(`tokenizer ${source}: no end-of-sequence token found (looked for ${EOS_NAMES.join(', ')}); name it (eos_token)`);
    this.eos = eos;
    this.bos = find(names.bosToken, BOS_NAMES, 'beginning-of-sequence') ?? eos;
  }

  /** A tokenizer from a parsed tokenizer.json object (validated; `source` names it in errors). */
  static fromJSON(json: unknown, names: SpecialTokenNames = {}, source = 'tokenizer.json'): Tokenizer {
    const spec = parseTokenizerJson(json, source);
    // Keep our own copy: toJSON() and hash() must not change if the caller edits its object.
    return new Tokenizer(structuredClone(json) as Record<string, unknown>, spec, names, source);
  }

  /** @internal Used by loadTokenizer, which owns its freshly parsed object. */
  static fromOwnedJSON(json: unknown, names: SpecialTokenNames, source: string): Tokenizer {
    return new Tokenizer(json as Record<string, unknown>, parseTokenizerJson(json, source), names, source);
  }

  /** The token string of an id (as the file writes it, e.g. "Ġthe" or "▁the"), or undefined. */
  token(id: number): string | undefined {
    return id >= 0 && id < this.vocabSize ? this.idToToken[id] : undefined;
  }

  /** The id of a token string (as the file writes it), or undefined. */
  tokenId(token: string): number | undefined {
    return this.tokenToId.get(token);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.bos) out.push(this.bos);
    const added = opts.allowSpecial ? this.allAddedRegex : this.plainAddedRegex;
    if (added === null) this.encodeText(text, true, out);
    else this.encodeWithAdded(text, added, out);
    if (opts.eos) out.push(this.eos);
    return out;
  }

  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    const kept: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new UserError(`token id ${id} is outside the vocabulary (0–${this.vocabSize - 1})`);
      if (!(opts.skipSpecial && this.specialIds.has(id))) kept.push(id);
    }
    return this.family.decode(kept);
  }

  /** The Hugging Face tokenizer.json object (do not modify it). */
  toJSON(): Record<string, unknown> {
    return this.json;
  }

  /** SHA-256 (hex) of the canonical JSON: equal for equal tokenizers, whatever the file's formatting. */
  hash(): string {
    this.cachedHash ??= sha256Hex(canonicalJson(this.json));
    return this.cachedHash;
  }

  /** Writes tokenizer.json atomically (temporary file, then rename). */
  save(path: string): void {
    writeFileAtomic(path, JSON.stringify(this.json, null, 2) + '\n');
  }

  private encodeWithAdded(text: string, added: RegExp, out: number[]): void {
    // Sections alternate: plain text, added token, plain text, …; then lstrip/rstrip trim the neighbours.
    const sections: Array<string | AddedTokenSpec> = [];
    added.lastIndex = 0;
    let from = 0;
    let m: RegExpExecArray | null;
    while ((m = added.exec(text)) !== null) {
      sections.push(text.slice(from, m.index), this.addedByContent.get(m[0])!);
      from = m.index + m[0].length;
    }
    sections.push(text.slice(from));
    for (let i = 1; i < sections.length; i += 2) {
      const tok = sections[i] as AddedTokenSpec;
      if (tok.lstrip) sections[i - 1] = (sections[i - 1] as string).trimEnd();
      if (tok.rstrip) sections[i + 1] = (sections[i + 1] as string).trimStart();
    }
    for (let i = 0; i < sections.length; i++) {
      if (i % 2 === 1) out.push((sections[i] as AddedTokenSpec).id);
      // Only the first section starts the text (Metaspace's prepend_scheme "first" looks at that).
      else this.encodeText(sections[i] as string, i === 0, out);
    }
  }

  private encodeText(text: string, first: boolean, out: number[]): void {
    if (text.length === 0) return;
    this.family.encode(this.normalize === null ? text : this.normalize(text), first, out);
  }
}

/** Trains from word counts (see countWords), for callers that stream their texts. */
export function trainTokenizerFromCounts(wordCounts: ReadonlyMap<string, number>, opts: TrainTokenizerOptions): Tokenizer {
  const bosToken = opts.bosToken ?? DEFAULT_BOS;
  const eosToken = opts.eosToken ?? DEFAULT_EOS;
  const specials = bosToken === eosToken ? [eosToken] : [bosToken, eosToken];
  const base = specials.length + 256;
  if (!Number.isInteger(opts.vocab) || opts.vocab < base) throw new UserError(`tokenizer vocab must be an integer ≥ ${base} (${specials.length} special tokens + 256 bytes), got ${opts.vocab}`);
  for (const s of specials) if (symbolsToBytes(s) !== null && [...s].length === 1) throw new UserError(`special token ${JSON.stringify(s)} would collide with a byte symbol`);

  const merges = learnMerges(wordCounts, opts.vocab - base, opts.minFrequency ?? 2);
  // Trainer ids (byte b, merge r → 256 + r) shifted past the special tokens.
  const idToToken: string[] = [...specials, ...BYTE_TO_CHAR];
  const trainerToken = (t: number): string => idToToken[specials.length + t]!;
  const mergeTokens: Array<[string, string]> = [];
  for (const [a, b] of merges) {
    const pair: [string, string] = [trainerToken(a), trainerToken(b)];
    mergeTokens.push(pair);
    idToToken.push(pair[0] + pair[1]);
  }
  for (let id = base; id < idToToken.length; id++) {
    if (specials.includes(idToToken[id]!)) throw new UserError(`special token ${JSON.stringify(idToToken[id])} was also learned as a merge; choose another name for it`);
  }
  const json = buildTokenizerJson(
    idToToken,
    mergeTokens,
    specials.map((content, id) => ({ id, content })),
  );
  return Tokenizer.fromOwnedJSON(json, { bosToken, eosToken }, 'trained');
}

/** Trains a byte-level BPE tokenizer with BOS/EOS special tokens (ids 0 and 1). */
export function trainTokenizer(texts: Iterable<string>, opts: TrainTokenizerOptions): Tokenizer {
  return trainTokenizerFromCounts(countWords(texts), opts);
}

/**
 * BOS/EOS names from the text of a tokenizer_config.json (`path` names it in errors), as Hugging Face
 * model folders have: `bos_token` / `eos_token`, a string or an object with a `content`.
 */
export function specialTokenNames(configText: string, path: string): SpecialTokenNames {
  let cfg: unknown;
  try {
    cfg = JSON.parse(configText);
  } catch (e) {
    throw new UserError(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  const name = (v: unknown): string | undefined => (typeof v === 'string' ? v : typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string' ? (v as { content: string }).content : undefined);
  const c = (typeof cfg === 'object' && cfg !== null ? cfg : {}) as Record<string, unknown>;
  const out: SpecialTokenNames = {};
  const bos = name(c.bos_token);
  const eos = name(c.eos_token);
  if (bos !== undefined) out.bosToken = bos;
  if (eos !== undefined) out.eosToken = eos;
  return out;
}

/** BOS/EOS names from a tokenizer_config.json in `dir`, if there is one. */
function namesFromConfig(dir: string): SpecialTokenNames {
  const path = join(dir, 'tokenizer_config.json');
  return existsSync(path) ? specialTokenNames(readFileSync(path, 'utf8'), path) : {};
}

/**
 * Loads a Hugging Face tokenizer.json (or a folder holding one). BOS/EOS come from `names`, else from a
 * tokenizer_config.json beside it, else from well-known token names.
 */
export function loadTokenizer(path: string, names: SpecialTokenNames = {}): Tokenizer {
  let file = path;
  let text: string;
  try {
    if (statSync(path).isDirectory()) file = join(path, 'tokenizer.json');
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`tokenizer file ${file} does not exist`);
    throw new UserError(`cannot read tokenizer file ${file}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`tokenizer ${file}: invalid JSON: ${(e as Error).message}`);
  }
  const fromConfig = names.bosToken !== undefined && names.eosToken !== undefined ? {} : namesFromConfig(dirname(file));
  return Tokenizer.fromOwnedJSON(json, { ...fromConfig, ...names }, file);
}
