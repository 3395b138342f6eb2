/** `adabatch eval`: mean next-token cross-entropy of a model on token sequences or a corpus split. */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { BACKEND_NAMES, createBackend, type BackendName } from '../../backend/registry.js';
import { loadDataset, parseDataConfig } from '../../data/dataset.js';
import { Llama } from '../../model/llama.js';
import { UserError } from '../../util/errors.js';
import { openModel, type OpenedModel } from '../open-model.js';

export const summary = 'evaluate a checkpoint or Hugging Face model (loss, perplexity)';

const HELP = `usage: adabatch eval --ckpt DIR [--tokens FILE] [--json] [--windows N] [--backend cpu|ref|webgpu] [--threads N]

DIR is an adabatch checkpoint, a run directory (its newest valid checkpoint) or a Hugging Face
Llama directory (config.json + model.safetensors or a sharded index; float32/16, bfloat16).

  --tokens FILE   a JSON array of token-id sequences; the loss is the mean cross-entropy of
                  predicting tokens 1..n−1 of each sequence from its prefix
  (no --tokens)   the validation split of the run's data (or of the Brown corpus), tokenised
                  with the model's tokenizer.json
  --windows N     validation windows to evaluate (default 256)
  --json          print {"loss": …, "tokens": …} only`;

function readSequences(path: string, vocab: number, maxLen: number): number[][] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `not valid JSON (${(e as Error).message})`}`);
  }
  if (!Array.isArray(parsed)) throw new UserError(`${path}: expected a JSON array of token-id sequences`);
  return parsed.map((seq, i) => {
    if (!Array.isArray(seq)) throw new UserError(`${path}: sequence ${i} is not an array`);
    if (seq.length > maxLen + 1) throw new UserError(`${path}: sequence ${i} has ${seq.length} tokens; the model's context is ${maxLen} (at most ${maxLen + 1} tokens per sequence)`);
    seq.forEach((t, j) => {
      if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new UserError(`${path}: sequence ${i}, position ${j}: ${JSON.stringify(t)} is not a token id in [0, ${vocab})`);
    });
    return seq as number[];
  });
}

/** Σ loss and predicted-token count over sequences (each run alone at its own length). */
async function evalSequences(m: OpenedModel, model: Llama, seqs: number[][]): Promise<{ lossSum: number; tokens: number }> {
  const backend = model.backend;
  const out = backend.alloc([2], 'f64');
  const cap = model.config.seq_len;
  const tok = backend.alloc([cap], 'i32');
  const tgt = backend.alloc([cap], 'i32');
  for (const s of seqs) {
    if (s.length < 2) continue;
    const n = s.length - 1;
    const tv = backend.view(tok, 0, [n]);
    const gv = backend.view(tgt, 0, [n]);
    backend.upload(tv, s.slice(0, n));
    backend.upload(gv, s.slice(1));
    await model.forwardLoss(tv, gv, 1, n, m.access, out, 0);
  }
  const r = backend.download(out);
  return { lossSum: r[0]!, tokens: r[1]! };
}

export async function run(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { ckpt: { type: 'string' }, tokens: { type: 'string' }, json: { type: 'boolean' }, windows: { type: 'string' }, backend: { type: 'string' }, threads: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }));
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.ckpt) throw new UserError(`--ckpt DIR is required\n\n${HELP}`);
  const threads = values.threads !== undefined ? Number(values.threads) : undefined;
  if (threads !== undefined && !(Number.isInteger(threads) && threads > 0)) throw new UserError(`--threads must be a positive integer, got ${values.threads}`);
  const backendName = (values.backend ?? 'cpu') as BackendName;
  if (!BACKEND_NAMES.includes(backendName)) throw new UserError(`--backend must be one of ${BACKEND_NAMES.join(', ')}, got ${values.backend}`);
  const log = (msg: string): void => void (values.json ? undefined : console.error(msg));
  const backend = createBackend(backendName, threads !== undefined ? { threads } : {});
  const m = openModel(values.ckpt, backend, log);
  const model = new Llama(backend, m.loaded.config);
  let result: { lossSum: number; tokens: number };
  if (values.tokens) {
    result = await evalSequences(m, model, readSequences(values.tokens, m.loaded.config.vocab, m.loaded.config.seq_len));
  } else {
    if (!m.tokenizer) throw new UserError(`${m.dir} has no tokenizer.json: pass --tokens FILE with token ids instead`);
    const runCfg = (m.loaded.trainerState?.config as { data?: unknown } | undefined)?.data;
    const dataCfg = parseDataConfig(runCfg && typeof runCfg === 'object' && !('synthetic' in runCfg) ? runCfg : {});
    const path = `${m.dir}/tokenizer.json`;
    const ds = await loadDataset({ ...dataCfg, tokenizer: { path, min_frequency: 2 } }, { seqLen: m.loaded.config.seq_len, seed: 0, log });
    if (!ds.validation) throw new UserError('the corpus has no validation windows at this sequence length');
    const n = Math.min(Number(values.windows ?? 256), ds.validation.windowsPerEpoch);
    const w = ds.validation.windows(0, n);
    const T = m.loaded.config.seq_len;
    const seqs = Array.from({ length: n }, (_, i) => Array.from(w.subarray(i * (T + 1), (i + 1) * (T + 1))));
    result = await evalSequences(m, model, seqs);
  }
  if (result.tokens === 0) throw new UserError('nothing to evaluate: no sequence has two or more tokens');
  const loss = result.lossSum / result.tokens;
  if (values.json) console.log(JSON.stringify({ loss, tokens: result.tokens }));
  else console.log(`loss ${loss.toFixed(4)}  perplexity ${Math.exp(loss).toFixed(2)}  (${result.tokens} tokens, ${m.dir})`);
  model.dispose();
  backend.dispose?.();
  return 0;
}
