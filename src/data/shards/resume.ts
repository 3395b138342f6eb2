/**
 * The shard folder before `data prepare` writes: a new or empty folder starts afresh; one holding an
 * unfinished (or finished) prepare of the same plan keeps the finished shards that verify in full
 * (header, index hash, every block's CRC and id: the longest run of good ones), and loses its
 * temporary files and unlisted shards; one holding another plan's shards is refused, or replaced
 * when asked to. Other files are never touched, and a non-empty folder without a manifest is refused.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { LOCK_FILE } from '../../util/run-lock.js';
import { UserError } from '../../util/errors.js';
import { checkShardMatches, MANIFEST_FILE, readManifest, type Manifest, type ShardPlan } from './manifest.js';
import { verifyShardFile } from './shard-file.js';
import { isTemporary } from './shard-writer.js';

/**
 * Readies the folder for `manifest`'s plan: a new or empty folder starts afresh; one with the same
 * plan keeps its finished shards that verify (their entries go into `manifest`); anything else is
 * refused (or replaced when `overwrite`). Returns whether all is done, and the last document's id.
 */
export function startOrResume(out: string, manifest: Manifest, overwrite: boolean, log: (msg: string) => void): { complete: boolean; lastId: string | null } {
  const names = readdirSync(out).filter((n) => n !== LOCK_FILE);
  if (!names.includes(MANIFEST_FILE)) {
    const foreign = names.filter((n) => !isTemporary(n));
    if (foreign.length > 0) throw new UserError(`data prepare: ${out} is not empty (${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}) and holds no ${MANIFEST_FILE}: give a new or empty folder for the shards`);
    removeOurFiles(out, new Set());
    return { complete: false, lastId: null };
  }
  let old: Manifest | null = null;
  try {
    old = readManifest(out);
  } catch (e) {
    if (!(e instanceof UserError) || !overwrite) throw e instanceof UserError ? new UserError(`data prepare: ${e.message} (--overwrite replaces the folder's shards)`) : e;
  }
  if (old === null || old.plan_hash !== manifest.plan_hash) {
    if (!overwrite) throw new UserError(`data prepare: ${out} holds shards prepared ${planDifference(old!.plan, manifest.plan)}: give another --out, or pass --overwrite to replace them`);
    log(`data prepare: replacing the shards in ${out} (prepared under another plan)`);
    removeOurFiles(out, new Set());
    rmSync(join(out, MANIFEST_FILE), { force: true });
    return { complete: false, lastId: null };
  }
  let lastId: string | null = null;
  for (const [s, entry] of old.shards.entries()) {
    const path = join(out, entry.file);
    try {
      const index = verifyShardFile(path);
      checkShardMatches(index, s, entry, old, path);
      if (entry.documents > 0) lastId = index.idAt(entry.documents - 1);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      log(`data prepare: ${e.message.replace(/; it cannot be used.*$/, '')}: writing it and the shards after it again`);
      break;
    }
    manifest.shards.push(entry);
    manifest.documents += entry.documents;
    manifest.tokens += entry.tokens;
  }
  removeOurFiles(out, new Set(manifest.shards.map((e) => e.file)));
  const complete = old.complete && manifest.shards.length === old.shards.length;
  if (manifest.shards.length > 0 && !complete) log(`data prepare: resuming ${out}: ${manifest.shards.length} finished shards verified (${manifest.documents} documents, ${manifest.tokens} tokens)`);
  if (complete) manifest.complete = true;
  return { complete, lastId };
}

/** Removes temporary files and shard files not in `keep` (from an interrupted or replaced prepare). */
function removeOurFiles(out: string, keep: ReadonlySet<string>): void {
  for (const name of readdirSync(out)) {
    if (isTemporary(name) || (/^shard-\d+\.bin$/.test(name) && !keep.has(name))) rmSync(join(out, name), { force: true });
  }
}

/** What differs between two plans, in words. */
function planDifference(a: ShardPlan, b: ShardPlan): string {
  const words: Record<keyof ShardPlan, string> = {
    shard_format: 'in another shard format',
    inputs_fingerprint: 'from other inputs (their content differs)',
    tokenizer_hash: 'with another tokenizer',
    vocab_size: 'with another vocabulary size',
    dtype: 'with another token type',
    bos: 'with another BOS id',
    eos: 'with another EOS id',
    shard_tokens: `with another shard size (${a.shard_tokens} tokens, now ${b.shard_tokens})`,
    block_bytes: 'with another block size',
  };
  const differs = (Object.keys(words) as Array<keyof ShardPlan>).filter((k) => a[k] !== b[k]);
  return differs.map((k) => words[k]).join(', ') || 'under another plan';
}
