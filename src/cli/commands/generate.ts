/** `adabatch generate`: sample text from a trained model with a KV cache. */
import { parseArgs } from 'node:util';
import { BACKEND_NAMES, createBackend, type BackendName } from '../../backend/registry.js';
import { loadTokenizer } from '../../data/tokenizer.js';
import { Generator } from '../../model/generate.js';
import { UserError } from '../../util/errors.js';
import { openModel } from '../open-model.js';

export const summary = 'generate text from a checkpoint or Hugging Face model';

const HELP = `usage: adabatch generate --ckpt DIR --prompt TEXT [options]

  --ckpt DIR          checkpoint, run directory or Hugging Face Llama directory
  --prompt TEXT       the text to continue (BOS is prepended)
  --max-tokens N      new tokens to generate (default 100)
  --temperature T     0 = greedy; default 0.8
  --top-k K           sample among the K most likely tokens (default 40; 0 = all)
  --seed S            sampling seed (default 0)
  --tokenizer FILE    tokenizer.json to use instead of the model directory's
  --backend NAME      cpu (default), ref or webgpu
  --threads N         kernel threads`;

function num(v: string | undefined, name: string, def: number, int: boolean, min: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isFinite(n) || (int && !Number.isInteger(n)) || n < min) throw new UserError(`--${name} must be ${int ? 'an integer' : 'a number'} ≥ ${min}, got ${v}`);
  return n;
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { ckpt: { type: 'string' }, prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' }, seed: { type: 'string' }, tokenizer: { type: 'string' }, backend: { type: 'string' }, threads: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.ckpt || values.prompt === undefined) throw new UserError(`--ckpt and --prompt are required\n\n${HELP}`);
  const maxNew = num(values['max-tokens'], 'max-tokens', 100, true, 1);
  const temperature = num(values.temperature, 'temperature', 0.8, false, 0);
  const topK = num(values['top-k'], 'top-k', 40, true, 0);
  const seed = num(values.seed, 'seed', 0, true, 0);
  const threads = values.threads !== undefined ? num(values.threads, 'threads', 1, true, 1) : undefined;
  const backendName = (values.backend ?? 'cpu') as BackendName;
  if (!BACKEND_NAMES.includes(backendName)) throw new UserError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got ${values.backend}`);
  const backend = createBackend(backendName, threads !== undefined ? { threads } : {});
  const m = openModel(values.ckpt, backend, (msg) => console.error(msg));
  const tokenizer = values.tokenizer ? loadTokenizer(values.tokenizer) : m.tokenizer;
  if (!tokenizer) throw new UserError(`${m.dir} has no tokenizer.json: pass --tokenizer FILE`);
  const modelVocab = m.loaded.config.vocab;
  if (tokenizer.vocabSize > modelVocab) throw new UserError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${modelVocab}`);
  // A model may have more ids than its tokenizer (embedding rows padded to a round size): those ids
  // mean nothing, no text can hold them, and they cannot be decoded, so they are never sampled.
  const usable = tokenizer.vocabSize;
  if (usable < modelVocab) console.error(`note: the model has ${modelVocab} token ids and the tokenizer ${usable}: ids ${usable}–${modelVocab - 1} are never sampled`);
  const prompt = tokenizer.encode(values.prompt, { bos: true });
  const room = m.loaded.config.seq_len - prompt.length;
  if (room < 1) throw new UserError(`the prompt is ${prompt.length} tokens; the model's context is ${m.loaded.config.seq_len}`);
  const gen = new Generator(backend, m.loaded.config, m.access);
  process.stdout.write(values.prompt);
  const ids: number[] = [];
  let printed = 0;
  // Decode the whole continuation each time so multi-byte characters split across tokens print whole.
  const onToken = (id: number): void => {
    if (id === tokenizer.eos) return;
    ids.push(id);
    const text = tokenizer.decode(ids);
    const safe = text.endsWith('\uFFFD') ? text.slice(0, text.lastIndexOf('\uFFFD')) : text;
    if (safe.length > printed) {
      process.stdout.write(safe.slice(printed));
      printed = safe.length;
    }
  };
  gen.generate(prompt, Math.min(maxNew, room), { temperature, topK, seed, vocabLimit: usable }, tokenizer.eos, onToken);
  const text = tokenizer.decode(ids);
  if (text.length > printed) process.stdout.write(text.slice(printed));
  process.stdout.write('\n');
  gen.dispose();
  backend.dispose?.();
  return 0;
}
