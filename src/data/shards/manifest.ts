/**
 * The manifest of a token shard folder (manifest.json): the plan the shards were made under (inputs'
 * content fingerprint, tokenizer, vocabulary, BOS/EOS, shard size — its SHA-256 is in every shard's
 * header, so a shard from another prepare is refused), the tokenizer file beside it, and the finished
 * shards in order with their counts and index hashes. `data prepare` rewrites it atomically after each
 * shard, so it lists exactly the shards that are complete; `complete` says whether the inputs are done.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { formatZodIssues, UserError } from '../../util/errors.js';
import { writeFileAtomic } from '../../util/files.js';
import { canonicalJson, sha256Hex } from '../json.js';
import { shardError, type ShardIndex } from './shard-file.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'adabatch-token-shards';
export const MANIFEST_VERSION = 1;
export const TOKENIZER_FILE = 'tokenizer.json';

const count = z.number().int().nonnegative();
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'a SHA-256 in hex');

const planSchema = z
  .object({
    shard_format: z.number().int().positive(),
    /** SHA-256 over the inputs' content fingerprints, in order. */
    inputs_fingerprint: sha256,
    /** The tokenizer's hash (tokenizer.hash()), or null for token files prepared without one. */
    tokenizer_hash: sha256.nullable(),
    vocab_size: z.number().int().positive(),
    dtype: z.enum(['uint16', 'uint32']),
    bos: count,
    eos: count,
    shard_tokens: z.number().int().positive(),
    block_bytes: z.number().int().positive(),
  })
  .strict();

/** Everything that decides the shards' bytes (and nothing else: not the thread count, not paths). */
export type ShardPlan = z.infer<typeof planSchema>;

const shardSchema = z
  .object({
    file: z.string().regex(/^shard-\d{5,}\.bin$/),
    documents: count,
    tokens: count,
    bytes: z.number().int().positive(),
    index_sha256: sha256,
  })
  .strict();

export type ShardEntry = z.infer<typeof shardSchema>;

const manifestSchema = z
  .object({
    format: z.literal(MANIFEST_FORMAT),
    version: z.literal(MANIFEST_VERSION),
    /** True once every input is in a shard; an incomplete folder is resumed by `data prepare`, refused by training. */
    complete: z.boolean(),
    plan: planSchema,
    plan_hash: sha256,
    /** tokenizer.json beside the manifest, with the BOS/EOS names it was loaded with; null for token files without one. */
    tokenizer: z.object({ file: z.literal(TOKENIZER_FILE), bos_token: z.string(), eos_token: z.string() }).strict().nullable(),
    /** The inputs as given, for people (the plan's fingerprint is what counts). */
    inputs: z.array(z.string()),
    documents: count,
    tokens: count,
    shards: z.array(shardSchema),
  })
  .strict();

export type Manifest = z.infer<typeof manifestSchema>;

export function planHash(plan: ShardPlan): string {
  return sha256Hex(canonicalJson(plan));
}

export function shardFileName(shard: number): string {
  return `shard-${String(shard).padStart(5, '0')}.bin`;
}

/** Reads and checks `dir`/manifest.json; errors name the folder and what is wrong. */
export function readManifest(dir: string): Manifest {
  const st = statSync(dir, { throwIfNoEntry: false });
  if (st === undefined) throw new UserError(`token shard folder ${dir} does not exist`);
  if (!st.isDirectory()) throw new UserError(`token shard folder ${dir} is not a folder`);
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new UserError(`${dir} has no ${MANIFEST_FILE}: it is not the output of \`adabatch data prepare\``);
    throw new UserError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: invalid JSON (${(e as Error).message})`);
  }
  const head = (typeof raw === 'object' && raw !== null ? raw : {}) as { format?: unknown; version?: unknown };
  if (head.format !== MANIFEST_FORMAT) throw new UserError(`${path} is not a token shard manifest (format ${JSON.stringify(head.format)}, expected "${MANIFEST_FORMAT}")`);
  if (head.version !== MANIFEST_VERSION) throw new UserError(`${path} has manifest version ${JSON.stringify(head.version)}; this adabatch reads version ${MANIFEST_VERSION} (prepare the shards again with this version of adabatch)`);
  const r = manifestSchema.safeParse(raw);
  if (!r.success) throw new UserError(`${path} is not a valid manifest:\n${formatZodIssues(r.error.issues)}`);
  const m = r.data;
  const bad = (what: string): UserError => new UserError(`${path} is inconsistent: ${what}`);
  if (planHash(m.plan) !== m.plan_hash) throw bad('plan_hash is not the hash of plan');
  if ((m.tokenizer === null) !== (m.plan.tokenizer_hash === null)) throw bad('tokenizer and plan.tokenizer_hash disagree');
  m.shards.forEach((s, i) => {
    if (s.file !== shardFileName(i)) throw bad(`shard ${i} is named ${s.file}, expected ${shardFileName(i)}`);
  });
  if (m.shards.reduce((n, s) => n + s.documents, 0) !== m.documents) throw bad('documents is not the sum over its shards');
  if (m.shards.reduce((n, s) => n + s.tokens, 0) !== m.tokens) throw bad('tokens is not the sum over its shards');
  return m;
}

export function writeManifest(dir: string, manifest: Manifest): void {
  writeFileAtomic(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
}

/** Refuses a shard whose header or index is not what the manifest lists as shard `shard`. */
export function checkShardMatches(index: ShardIndex, shard: number, entry: ShardEntry, manifest: Pick<Manifest, 'plan' | 'plan_hash'>, path: string): void {
  const h = index.header;
  const plan = manifest.plan;
  const differs: string[] = [];
  if (h.planHash.toString('hex') !== manifest.plan_hash) differs.push('it was written by another prepare (plan hash)');
  if (h.shard !== shard) differs.push(`it is shard ${h.shard}, not ${shard}`);
  if (index.indexSha256 !== entry.index_sha256) differs.push('its index hash differs');
  if (h.tokens !== entry.tokens || h.documents !== entry.documents) differs.push(`it holds ${h.documents} documents and ${h.tokens} tokens, the manifest says ${entry.documents} and ${entry.tokens}`);
  if (h.width !== (plan.dtype === 'uint16' ? 2 : 4) || h.vocabSize !== plan.vocab_size || h.blockBytes !== plan.block_bytes) differs.push('its token type, vocabulary or block size differ');
  if (differs.length > 0) throw shardError(path, `does not match its ${MANIFEST_FILE}: ${differs.join('; ')}`);
}
