/**
 * The full-size check (slow suite): a 4096-token tokenizer trained on all of Brown gives exactly
 * the ids of @huggingface/tokenizers on every Brown document, and decodes each back to its text.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { brownDocuments } from '../src/data/brown.js';
import { trainTokenizer } from '../src/data/tokenizer.js';

test('Brown at vocab 4096: ids equal to @huggingface/tokenizers on all 500 documents, lossless', () => {
  const docs = brownDocuments();
  const tok = trainTokenizer(
    docs.map((d) => d.text),
    { vocab: 4096 },
  );
  assert.equal(tok.vocabSize, 4096);
  const hf = new HfTokenizer(tok.toJSON(), {});
  let tokens = 0;
  for (const d of docs) {
    const ids = tok.encode(d.text);
    tokens += ids.length;
    assert.deepEqual(ids, hf.encode(d.text, { add_special_tokens: false }).ids, d.id);
    assert.equal(tok.decode(ids), d.text, d.id);
  }
  // ~6 MB of English at roughly 3.5 bytes per token.
  assert.ok(tokens > 1.5e6 && tokens < 2e6, `${tokens} tokens`);
});
