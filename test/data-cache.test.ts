/** The token cache file: round trip, and every kind of damage detected rather than trusted. */
import { strict as assert } from 'node:assert';
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { readTokenCache, tokenDtype, writeTokenCache, type TokenizedCorpus } from '../src/data/token-cache.js';

const dir = mkdtempSync(join(tmpdir(), 'adabatch-cache-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const ids = { tokenizerHash: 'a'.repeat(64), inputsFingerprint: 'b'.repeat(64) };
const corpus: TokenizedCorpus = {
  docIds: ['one', 'two', 'empty', 'ünï'],
  offsets: Float64Array.from([0, 3, 7, 7, 9]),
  tokens: Uint16Array.from([1, 2, 3, 4, 5, 6, 7, 65535, 0]),
  vocabSize: 65536,
};
const expect = { ...ids, vocabSize: 65536 };

function written(name: string, c: TokenizedCorpus = corpus): string {
  const path = join(dir, name);
  writeTokenCache(path, c, ids);
  return path;
}

test('uint16 up to 65536 tokens, uint32 above', () => {
  assert.equal(tokenDtype(4096), 'uint16');
  assert.equal(tokenDtype(65536), 'uint16');
  assert.equal(tokenDtype(65537), 'uint32');
});

test('round trip, uint16 and uint32, with the header at the front', () => {
  const path = written('ok.bin');
  const r = readTokenCache(path, expect);
  assert.ok(r.ok);
  assert.deepEqual(r.corpus, corpus);
  const bytes = readFileSync(path);
  assert.equal(bytes.subarray(0, 8).toString('latin1'), 'ADABTOK\0');
  assert.equal(bytes.readUInt32LE(8), 1);
  // Header + padding + 5 offsets × 8 bytes + 9 tokens × 2 bytes.
  const headerEnd = Math.ceil((16 + bytes.readUInt32LE(12)) / 8) * 8;
  assert.equal(bytes.length, headerEnd + 5 * 8 + 9 * 2);
  assert.equal(bytes.readUInt16LE(headerEnd + 40 + 7 * 2), 65535);

  const wide: TokenizedCorpus = { docIds: ['x'], offsets: Float64Array.from([0, 2]), tokens: Uint32Array.from([70000, 99999]), vocabSize: 100000 };
  const p32 = join(dir, 'wide.bin');
  writeTokenCache(p32, wide, ids);
  const r32 = readTokenCache(p32, { ...ids, vocabSize: 100000 });
  assert.ok(r32.ok);
  assert.deepEqual(r32.corpus, wide);
  // No temporary files are left behind by the atomic write.
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp-')), []);
});

test('stale, truncated, corrupt or foreign files are reported, never trusted', () => {
  const reason = (path: string, e = expect): string => {
    const r = readTokenCache(path, e);
    assert.ok(!r.ok);
    return r.reason;
  };
  assert.equal(reason(join(dir, 'absent.bin')), 'not built yet');
  assert.match(reason(written('tok.bin'), { ...expect, tokenizerHash: 'c'.repeat(64) }), /another tokenizer/);
  assert.match(reason(written('inp.bin'), { ...expect, inputsFingerprint: 'd'.repeat(64) }), /other inputs/);
  assert.match(reason(written('voc.bin'), { ...expect, vocabSize: 70000 }), /vocabulary size/);

  const full = readFileSync(written('t.bin')).length;
  for (const cut of [0, 5, 20, full - 1]) {
    const p = written(`cut${cut}.bin`);
    truncateSync(p, cut);
    assert.match(reason(p), /truncated|bad magic|corrupt header/, `cut at ${cut}`);
  }
  const flipped = written('flip.bin');
  const bytes = readFileSync(flipped);
  bytes[bytes.length - 3]! ^= 0x10;
  writeFileSync(flipped, bytes);
  assert.match(reason(flipped), /checksum/);

  const extra = written('extra.bin');
  writeFileSync(extra, Buffer.concat([readFileSync(extra), Buffer.from([0, 0])]));
  assert.match(reason(extra), /trailing bytes/);

  const version = written('version.bin');
  const vb = readFileSync(version);
  vb.writeUInt32LE(99, 8);
  writeFileSync(version, vb);
  assert.match(reason(version), /format version 99/);

  const junk = join(dir, 'junk.bin');
  writeFileSync(junk, 'hello, this is not a cache file at all');
  assert.match(reason(junk), /bad magic/);
  assert.ok(existsSync(junk));
});

test('a token id at or above the vocabulary is rejected even with a valid checksum', () => {
  const bad: TokenizedCorpus = { ...corpus, tokens: Uint16Array.from([1, 2, 3, 4, 5, 6, 7, 5000, 0]), vocabSize: 4096 };
  const p = join(dir, 'range.bin');
  writeTokenCache(p, bad, ids);
  const r = readTokenCache(p, { ...ids, vocabSize: 4096 });
  assert.ok(!r.ok && /token id 5000/.test(r.reason));
});
