/**
 * Worker threads that tokenize batches of texts for `data prepare`. `encode` returns a promise per
 * batch; batches go to whichever worker is free, in submission order. The caller keeps the results in
 * submission order (prepare.ts), so the output does not depend on the number of workers or on which
 * one finished first.
 */
import { Worker } from 'node:worker_threads';
import type { TokenArray } from '../token-cache.js';
import type { Tokenizer } from '../tokenizer.js';
import type { EncodeReply, EncodeRequest, WorkerSetup } from './tokenize-worker.js';

export interface EncodedBatch {
  /** The texts' tokens back to back. */
  tokens: TokenArray;
  /** Tokens per text. */
  lengths: Uint32Array;
}

interface Job {
  texts: string[];
  resolve: (r: EncodedBatch) => void;
  reject: (e: Error) => void;
}

export class TokenizePool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private failure: Error | null = null;

  constructor(tokenizer: Tokenizer, threads: number) {
    // The tokenizer is rebuilt from its JSON in each worker, with the BOS/EOS the caller's has.
    const setup: WorkerSetup = { json: tokenizer.toJSON(), names: { bosToken: tokenizer.token(tokenizer.bos)!, eosToken: tokenizer.token(tokenizer.eos)! }, source: tokenizer.source };
    for (let i = 0; i < threads; i++) {
      const w = new Worker(new URL('./tokenize-worker.js', import.meta.url), { workerData: setup });
      w.on('message', (reply: EncodeReply) => this.done(w, reply));
      w.on('error', (e) => this.fail(e));
      w.on('exit', (code) => {
        if (code !== 0) this.fail(new Error(`a tokenizing worker exited with code ${code}`));
      });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  encode(texts: string[]): Promise<EncodedBatch> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.queue.push({ texts, resolve, reject });
      this.dispatch();
    });
  }

  /** Stops the workers (pending batches are rejected). */
  async close(): Promise<void> {
    this.fail(new Error('the tokenizing workers were stopped'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.running.set(w, job);
      w.postMessage({ texts: job.texts } satisfies EncodeRequest);
    }
  }

  private done(w: Worker, reply: EncodeReply): void {
    const job = this.running.get(w);
    this.running.delete(w);
    this.idle.push(w);
    if (job) {
      if ('error' in reply) job.reject(new Error(`tokenizing failed: ${reply.error}`));
      else job.resolve(reply);
    }
    this.dispatch();
  }

  private fail(e: Error): void {
    if (this.failure) return;
    this.failure = e;
    for (const job of [...this.running.values(), ...this.queue]) job.reject(e);
    this.running.clear();
    this.queue.length = 0;
  }
}
