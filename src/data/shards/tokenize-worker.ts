/**
 * A tokenizing worker thread of `data prepare` (tokenize-pool.ts): builds the tokenizer once from its
 * JSON, then encodes batches of texts into one token array plus per-text lengths, transferred back
 * without a copy. Encoding is deterministic, so which worker encodes a batch does not matter.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { tokenDtype } from '../token-cache.js';
import { Tokenizer, type SpecialTokenNames } from '../tokenizer.js';

export interface WorkerSetup {
  json: unknown;
  names: SpecialTokenNames;
  source: string;
}

export interface EncodeRequest {
  texts: string[];
}

export type EncodeReply = { tokens: Uint16Array | Uint32Array; lengths: Uint32Array } | { error: string };

const setup = workerData as WorkerSetup;
const tokenizer = Tokenizer.fromJSON(setup.json, setup.names, setup.source);
const wide = tokenDtype(tokenizer.vocabSize) === 'uint32';

parentPort!.on('message', ({ texts }: EncodeRequest) => {
  try {
    const encoded = texts.map((t) => tokenizer.encode(t));
    const lengths = Uint32Array.from(encoded, (ids) => ids.length);
    const total = lengths.reduce((n, l) => n + l, 0);
    const tokens = wide ? new Uint32Array(total) : new Uint16Array(total);
    let at = 0;
    for (const ids of encoded) {
      tokens.set(ids, at);
      at += ids.length;
    }
    parentPort!.postMessage({ tokens, lengths } satisfies EncodeReply, [tokens.buffer, lengths.buffer]);
  } catch (e) {
    parentPort!.postMessage({ error: e instanceof Error ? e.message : String(e) } satisfies EncodeReply);
  }
});
