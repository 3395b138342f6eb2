/** `adabatch checkpoint`: list, verify and consolidate checkpoints. */
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { listCheckpoints, readCheckpoint, verifyCheckpoint, writeCheckpoint } from '../../io/checkpoint.js';
import { UserError } from '../../util/errors.js';
import { resolveModelDir } from '../open-model.js';

export const summary = 'list, verify or consolidate checkpoints (sharded FSDP → one Hugging Face file)';

const HELP = `usage: adabatch checkpoint <list|verify|consolidate> …

  list RUN_DIR                       the run's checkpoints, oldest first, with their state
  verify DIR                         check every file's size and SHA-256 (DIR: checkpoint or run dir)
  consolidate DIR --out OUT [--no-optimizer]
                                     write a consolidated checkpoint (one model.safetensors with
                                     Hugging Face names, loadable by transformers) from any
                                     checkpoint, e.g. one written in shards by FSDP ranks`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h') {
    console.log(HELP);
    return sub ? 0 : 2;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { out: { type: 'string' }, 'no-optimizer': { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (parsed.values.help) {
    console.log(HELP);
    return 0;
  }
  const [target] = parsed.positionals;
  if (!target || parsed.positionals.length > 1) throw new UserError(`checkpoint ${sub}: expected one directory\n\n${HELP}`);
  switch (sub) {
    case 'list': {
      const dir = existsSync(join(target, 'checkpoints')) ? join(target, 'checkpoints') : target;
      const entries = listCheckpoints(dir);
      if (!entries.length) console.log(`no checkpoints in ${dir}`);
      for (const e of entries) {
        const kind = e.manifest ? `${e.manifest.layout}${e.manifest.ranks ? ` (${e.manifest.ranks} ranks)` : ''}` : `unreadable: ${e.problem}`;
        console.log(`${e.name}  step ${e.step ?? '?'}  ${e.created ?? ''}  ${kind}`);
      }
      return 0;
    }
    case 'verify': {
      const dir = resolveModelDir(target);
      const m = verifyCheckpoint(dir);
      console.log(`${dir}: ok (${m.layout}${m.ranks ? `, ${m.ranks} ranks` : ''}, step ${m.step}, ${Object.keys(m.files).length} files verified)`);
      return 0;
    }
    case 'consolidate': {
      const out = parsed.values.out;
      if (!out) throw new UserError(`checkpoint consolidate: --out OUT is required\n\n${HELP}`);
      const src = resolveModelDir(target);
      const data = readCheckpoint(src, { optimizer: !parsed.values['no-optimizer'] });
      const dir = writeCheckpoint(dirname(out), basename(out), {
        config: data.config,
        model: data.model,
        ...(data.optimizer && { optimizer: data.optimizer }),
        ...(data.optimizerMetadata && { optimizerMetadata: data.optimizerMetadata }),
        trainerState: data.trainerState,
        ...(data.tokenizerJson !== null && { tokenizerJson: data.tokenizerJson }),
        tokenIds: data.tokenIds,
        ...(data.manifest.step !== null && { step: data.manifest.step }),
      });
      const optimizer = (data.trainerState as { optimizer?: string }).optimizer ?? 'adamw';
      const state = data.optimizer ? `, ${optimizer} state: ${data.optimizer.size} tensors` : '';
      console.log(`${dir}: consolidated from ${src} (${data.manifest.layout}${data.manifest.ranks ? `, ${data.manifest.ranks} ranks` : ''}): ${data.model.size} parameter tensors${state}`);
      return 0;
    }
    default:
      throw new UserError(`checkpoint: unknown subcommand '${sub}'\n\n${HELP}`);
  }
}
