/**
 * The checkpoint format shared by both layouts (checkpoint.ts: consolidated; checkpoint-sharded.ts:
 * one slice of every unit per FSDP rank): file names, the manifest, the temporary-name protocol that
 * makes writes atomic, recovery after an interrupted writer, and the one tensor-file writer. The
 * file comment of checkpoint.ts describes the format and the crash-safety protocol.
 */
import { existsSync, readdirSync, renameSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { type FileDigest, fsyncDir, HashingFileWriter, removeTree } from './fsutil.js';
import { type TensorToWrite, writeSafetensorsFd } from './safetensors.js';
import { processAlive } from '../util/process.js';

export const CHECKPOINT_FORMAT = 'adabatch-checkpoint';
export const CHECKPOINT_VERSION = 1;
export const MANIFEST_FILE = 'checksums.json';
export const CHECKPOINT_FILES = {
  model: 'model.safetensors',
  config: 'config.json',
  optimizer: 'optimizer.safetensors',
  trainerState: 'trainer_state.json',
  tokenizer: 'tokenizer.json',
} as const;
/** Name prefixes of the AdamW moments in optimizer.safetensors (as torch's AdamW state names them). */
export const ADAMW_PREFIX = { m: 'exp_avg.', v: 'exp_avg_sq.' } as const;

export interface CheckpointManifest {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  /** "consolidated": whole HF-named tensors; "sharded": per-rank shard files (checkpoint-sharded.ts). */
  layout: 'consolidated' | 'sharded';
  /** Ranks that wrote a sharded checkpoint. */
  ranks?: number;
  /** The caller's step, used to order checkpoints (null if none was given). */
  step: number | null;
  /** ISO 8601 time of writing. */
  created: string;
  /** Every file of the checkpoint except the manifest itself. */
  files: Record<string, FileDigest>;
}
/** The sharded layout's index of shard files and unit sizes (checkpoint-sharded.ts). */
export const SHARD_INDEX_FILE = 'shard_index.json';

/** Directory-name prefixes of writes in progress and removals (readers skip names starting with '.'). */
export const TMP_PREFIX = '.tmp~';
export const REPLACED_PREFIX = '.replaced~';
export const DELETING_PREFIX = '.deleting~';

/**
 * Writes one safetensors file into `dir`, hashing as it goes, and fsyncs it; returns its size and
 * SHA-256 for the manifest. `onStage` hears '<file>:header' once the header is out.
 */
export function writeTensorFile(dir: string, file: string, tensors: TensorToWrite[], metadata: Record<string, string>, onStage: (stage: string) => void = () => {}): FileDigest {
  const w = HashingFileWriter.create(join(dir, file));
  try {
    let first = true;
    writeSafetensorsFd(w.descriptor, tensors, metadata, (chunk) => {
      w.observe(chunk);
      if (first) onStage(`${file}:header`);
      first = false;
    });
    return w.finish();
  } catch (e) {
    w.abort();
    throw e;
  }
}

/**
 * Clears up after interrupted writers in `parentDir`: a `.replaced~<name>~…` directory whose
 * `<name>` is missing is renamed back (a crash between moving the old checkpoint aside and renaming
 * the new one into place); other `.replaced~` and all `.deleting~` directories are removed. With
 * removeTemporaries (the writer does this), `.tmp~` directories are removed too, except those of
 * another live process on this host. Returns what it did, one line each.
 */
export function recoverInterruptedWrites(parentDir: string, opts: { removeTemporaries?: boolean } = {}): string[] {
  const actions: string[] = [];
  let names: string[];
  try {
    names = readdirSync(parentDir);
  } catch {
    return actions;
  }
  const host = hostname();
  for (const entry of names) {
    const path = join(parentDir, entry);
    if (entry.startsWith(REPLACED_PREFIX)) {
      const target = join(parentDir, entry.slice(REPLACED_PREFIX.length).split('~')[0]!);
      if (!existsSync(target)) {
        renameSync(path, target);
        actions.push(`restored ${target} from ${entry}`);
      } else {
        removeTree(path);
        actions.push(`removed ${entry}`);
      }
    } else if (entry.startsWith(DELETING_PREFIX)) {
      removeTree(path);
      actions.push(`removed ${entry}`);
    } else if (entry.startsWith(TMP_PREFIX) && opts.removeTemporaries) {
      const [, , entryHost, pidText] = entry.split('~');
      const pid = Number(pidText);
      if (entryHost === host && pid !== process.pid && Number.isInteger(pid) && processAlive(pid)) continue;
      removeTree(path);
      actions.push(`removed stale ${entry}`);
    }
  }
  if (actions.length) fsyncDir(parentDir);
  return actions;
}

