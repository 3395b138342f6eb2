/**
 * Tokenizer speed on the Brown corpus: BPE training time at a given vocabulary, and encode/decode
 * throughput on one core, ours next to @huggingface/tokenizers (same tokenizer.json, same run, so a
 * busy machine slows both). Also checks that both give the same ids for every Brown document.
 *
 *   npm run bench -- tokenizer [--vocab 4096] [--repeats 3]
 */
import { parseArgs } from 'node:util';
import { countWords } from '../src/data/bpe-train.js';
import { brownDocuments } from '../src/data/brown.js';
import { Tokenizer, trainTokenizerFromCounts } from '../src/data/tokenizer.js';

export const summary = 'BPE training time and encode/decode MB/s on Brown (ours and @huggingface/tokenizers)';

const seconds = (t0: number): number => (performance.now() - t0) / 1000;

interface HfTokenizer {
  encode(text: string, opts: { add_special_tokens: boolean }): { ids: number[] };
}

/** Llama 3's pre-tokenizer pattern with one change, so that it is not a standard pattern run on V8. */
const LINEAR_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,2}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

export async function run(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { vocab: { type: 'string', default: '4096' }, repeats: { type: 'string', default: '3' } } });
  const vocab = Number(values.vocab);
  const repeats = Math.max(1, Number(values.repeats));

  let t0 = performance.now();
  const docs = brownDocuments();
  const texts = docs.map((d) => d.text);
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, 'utf8'), 0);
  const readS = seconds(t0);

  t0 = performance.now();
  const counts = countWords(texts);
  const countS = seconds(t0);
  t0 = performance.now();
  const tok = trainTokenizerFromCounts(counts, { vocab });
  const mergeS = seconds(t0);

  // Cold: a fresh tokenizer with an empty word cache; warm: the same one again.
  const fresh = Tokenizer.fromJSON(tok.toJSON(), {}, 'bench');
  t0 = performance.now();
  let tokens = 0;
  for (const t of texts) tokens += fresh.encode(t).length;
  const coldS = seconds(t0);
  let warmS = Infinity;
  for (let r = 0; r < repeats; r++) {
    t0 = performance.now();
    for (const t of texts) fresh.encode(t);
    warmS = Math.min(warmS, seconds(t0));
  }
  const encoded = texts.map((t) => fresh.encode(t));
  let decodeS = Infinity;
  for (let r = 0; r < repeats; r++) {
    t0 = performance.now();
    for (const ids of encoded) fresh.decode(ids);
    decodeS = Math.min(decodeS, seconds(t0));
  }

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
  let linearS = Infinity;
  for (let r = 0; r < repeats; r++) {
    t0 = performance.now();
    for (const t of texts) linear.encode(t);
    linearS = Math.min(linearS, seconds(t0));
  }

  const { Tokenizer: HF } = (await import('@huggingface/tokenizers')) as unknown as { Tokenizer: new (json: object, config: object) => HfTokenizer };
  const hf = new HF(tok.toJSON(), {});
  let hfS = Infinity;
  let mismatches = 0;
  for (let r = 0; r < Math.min(repeats, 2); r++) {
    t0 = performance.now();
    const hfIds = texts.map((t) => hf.encode(t, { add_special_tokens: false }).ids);
    hfS = Math.min(hfS, seconds(t0));
    if (r === 0) mismatches = hfIds.filter((ids, i) => ids.length !== encoded[i]!.length || ids.some((id, j) => id !== encoded[i]![j])).length;
  }

  const mb = bytes / 1e6;
  const rows: Array<[string, string]> = [
    ['corpus', `Brown, ${docs.length} documents, ${mb.toFixed(2)} MB UTF-8, read in ${readS.toFixed(2)} s`],
    ['train (vocab ' + tok.vocabSize + ')', `${(countS + mergeS).toFixed(2)} s (word counts ${countS.toFixed(2)} s, ${tok.vocabSize - 258} merges ${mergeS.toFixed(2)} s)`],
    ['tokens', `${tokens} (${(bytes / tokens).toFixed(2)} bytes/token)`],
    ['encode, cold cache', `${(mb / coldS).toFixed(1)} MB/s`],
    ['encode, warm cache', `${(mb / warmS).toFixed(1)} MB/s`],
    ['encode, non-standard pattern', `${(mb / linearS).toFixed(1)} MB/s (warm; Llama 3's pattern with \\p{N}{1,2}, on the linear-time engine)`],
    ['decode', `${(mb / decodeS).toFixed(1)} MB/s`],
    ['@huggingface/tokenizers encode', `${(mb / hfS).toFixed(1)} MB/s`],
    ['ids equal to @huggingface/tokenizers', mismatches === 0 ? `yes, all ${docs.length} documents` : `NO: ${mismatches} documents differ`],
  ];
  console.log(`tokenizer bench (node ${process.version}, one thread, ${new Date().toISOString().slice(0, 10)})`);
  for (const [k, v] of rows) console.log(`  ${k.padEnd(38)}${v}`);
  if (mismatches > 0) process.exitCode = 1;
}
