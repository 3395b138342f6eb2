/**
 * `adabatch tokenizer train | encode | decode`: train a byte-level BPE tokenizer into a Hugging Face
 * tokenizer.json, and inspect what it does to text.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { countWords } from '../../data/bpe-train.js';
import { openCorpus, type CorpusSpec } from '../../data/corpus.js';
import { loadTokenizer, trainTokenizerFromCounts } from '../../data/tokenizer.js';
import { UserError } from '../../util/errors.js';
import { runSubcommand } from '../subcommands.js';

export const summary = 'train a byte-level BPE tokenizer (tokenizer.json); encode and decode text with one';

const USAGE = `usage: adabatch tokenizer <subcommand> [options]

subcommands:
  train    train a tokenizer on a corpus and write a Hugging Face tokenizer.json
  encode   print the token ids of a text as JSON
  decode   print the text of a JSON list of token ids

Run \`adabatch tokenizer <subcommand> --help\` for its options.`;

const TRAIN_USAGE = `usage: adabatch tokenizer train --vocab N --input PATH... --out FILE [options]

  --vocab N           vocabulary size, 256 bytes and the <|bos|>/<|eos|> tokens included (default 4096)
  --input PATH...     'brown' (the embedded Brown corpus), or files, folders and quoted glob patterns
                      ('data/*.parquet'): text (*.txt, *.md, *.text: one document per file), JSONL
                      (*.jsonl, *.ndjson: one per line) and Parquet (*.parquet: one per row); text
                      and JSONL may be .gz or .zst
  --text-field NAME   the JSONL field or Parquet column holding the text (default text)
  --on-bad-record P   fail (default: stop at a malformed record, naming file and line or row) or
                      skip (leave such records out and report how many per file)
  --min-frequency N   do not merge pairs seen fewer than N times (default 2)
  --out FILE          where to write tokenizer.json (atomically)`;

const ENCODE_USAGE = `usage: adabatch tokenizer encode --tokenizer FILE (--text TEXT | --file FILE) [--bos] [--eos]

  --tokenizer FILE    a Hugging Face tokenizer.json, or a model folder holding one (byte-level
                      or SentencePiece-style BPE; BOS/EOS from tokenizer_config.json beside it)
  --text TEXT         the text to encode
  --file FILE         or a file whose whole content is encoded
  --bos, --eos        add the beginning / end-of-sequence token
  --allow-special     recognise special-token strings such as <|eos|> in the text`;

const DECODE_USAGE = `usage: adabatch tokenizer decode --tokenizer FILE --ids '[1, 2, 3]' [--skip-special]

  --tokenizer FILE    a Hugging Face tokenizer.json, or a model folder holding one (byte-level
                      or SentencePiece-style BPE; BOS/EOS from tokenizer_config.json beside it)
  --ids JSON          a JSON list of token ids
  --skip-special      leave out special tokens (<|bos|>, <|eos|>, …)`;

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed flags, loosely typed: each subcommand reads and checks its own. */
function parse(argv: string[], options: Options, allowPositionals: boolean, sub: string): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals, strict: true });
    return { values: r.values as Record<string, string | boolean | string[] | undefined>, positionals: r.positionals };
  } catch (e) {
    throw new UserError(`tokenizer ${sub}: ${(e as Error).message}`);
  }
}

function positiveInt(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new UserError(`${flag} must be a positive integer, got '${value}'`);
  return n;
}

async function train(argv: string[]): Promise<number> {
  const { values, positionals } = parse(
    argv,
    {
      vocab: { type: 'string' },
      input: { type: 'string', multiple: true },
      'text-field': { type: 'string' },
      'on-bad-record': { type: 'string' },
      'min-frequency': { type: 'string' },
      out: { type: 'string', short: 'o' },
    },
    true,
    'train',
  );
  if (values.help) {
    console.log(TRAIN_USAGE);
    return 0;
  }
  // `--input a b c` leaves b and c as positionals: they are inputs too.
  const inputs = [...((values.input as string[] | undefined) ?? []), ...positionals];
  if (inputs.length === 0) throw new UserError(`tokenizer train: --input is required\n\n${TRAIN_USAGE}`);
  const out = values.out as string | undefined;
  if (out === undefined) throw new UserError(`tokenizer train: --out is required\n\n${TRAIN_USAGE}`);
  const vocab = positiveInt(values.vocab as string | undefined, '--vocab', 4096);
  const minFrequency = positiveInt(values['min-frequency'] as string | undefined, '--min-frequency', 2);
  const textField = values['text-field'] as string | undefined;
  const onBadRecord = values['on-bad-record'] ?? 'fail';
  if (onBadRecord !== 'fail' && onBadRecord !== 'skip') throw new UserError(`--on-bad-record must be fail or skip, got '${String(onBadRecord)}'`);

  const specs: CorpusSpec[] = [];
  const files = inputs.filter((p) => p !== 'brown');
  if (files.length < inputs.length) specs.push('brown');
  if (files.length > 0) specs.push(textField === undefined ? { paths: files } : { paths: files, text_field: textField });

  const t0 = performance.now();
  const counts = new Map<string, number>();
  let documents = 0;
  let chars = 0;
  for (const spec of specs) {
    for await (const d of openCorpus(spec, { onBadRecord, log: (m) => console.error(m) }).documents()) {
      countWords([d.text], counts);
      documents++;
      chars += d.text.length;
    }
  }
  const tokenizer = trainTokenizerFromCounts(counts, { vocab, minFrequency });
  tokenizer.save(out);
  const secs = (performance.now() - t0) / 1000;
  console.error(`trained a ${tokenizer.vocabSize}-token tokenizer on ${documents} documents (${(chars / 1e6).toFixed(1)}M characters) in ${secs.toFixed(1)} s → ${out}`);
  if (tokenizer.vocabSize < vocab) console.error(`note: the corpus supports only ${tokenizer.vocabSize} of the ${vocab} tokens asked for`);
  return 0;
}

function requireTokenizer(values: Record<string, unknown>, sub: string, usage: string): string {
  const path = values.tokenizer as string | undefined;
  if (path === undefined) throw new UserError(`tokenizer ${sub}: --tokenizer is required\n\n${usage}`);
  return path;
}

async function encode(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      tokenizer: { type: 'string', short: 't' },
      text: { type: 'string' },
      file: { type: 'string', short: 'f' },
      bos: { type: 'boolean' },
      eos: { type: 'boolean' },
      'allow-special': { type: 'boolean' },
    },
    false,
    'encode',
  );
  if (values.help) {
    console.log(ENCODE_USAGE);
    return 0;
  }
  const path = requireTokenizer(values, 'encode', ENCODE_USAGE);
  if ((values.text === undefined) === (values.file === undefined)) throw new UserError(`tokenizer encode: give exactly one of --text and --file\n\n${ENCODE_USAGE}`);
  let text = values.text as string | undefined;
  if (text === undefined) {
    const file = values.file as string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UserError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
    }
  }
  const tokenizer = loadTokenizer(path);
  const ids = tokenizer.encode(text, { bos: values.bos === true, eos: values.eos === true, allowSpecial: values['allow-special'] === true });
  console.log(JSON.stringify(ids));
  return 0;
}

async function decode(argv: string[]): Promise<number> {
  const { values } = parse(argv, { tokenizer: { type: 'string', short: 't' }, ids: { type: 'string' }, 'skip-special': { type: 'boolean' } }, false, 'decode');
  if (values.help) {
    console.log(DECODE_USAGE);
    return 0;
  }
  const path = requireTokenizer(values, 'decode', DECODE_USAGE);
  if (values.ids === undefined) throw new UserError(`tokenizer decode: --ids is required\n\n${DECODE_USAGE}`);
  let ids: unknown;
  try {
    ids = JSON.parse(values.ids as string);
  } catch {
    ids = null;
  }
  if (!Array.isArray(ids) || !ids.every((x) => Number.isInteger(x))) throw new UserError(`tokenizer decode: --ids must be a JSON list of integers, got '${values.ids as string}'`);
  const tokenizer = loadTokenizer(path);
  const text = tokenizer.decode(ids as number[], { skipSpecial: values['skip-special'] === true });
  process.stdout.write(process.stdout.isTTY ? text + '\n' : text);
  return 0;
}

export function run(argv: string[]): Promise<number> {
  return runSubcommand('tokenizer', USAGE, { train, encode, decode }, argv);
}
