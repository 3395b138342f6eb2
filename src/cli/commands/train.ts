/** `adabatch train`: train a model from a YAML config (or the built-in default), with --set overrides. */
import { parseArgs } from 'node:util';
import { chooseDist } from '../../parallel/group-choice.js';
import { DistributedRunError, runMpi, runThreads } from '../../train/launch.js';
import { UserError } from '../../util/errors.js';
import { loadTrainConfig } from '../../train/config.js';
import { loadResumeConfig } from '../../train/resume.js';
import type { TrainConfig } from '../../train/config.js';
import { defaultRunDir, formatSummary, runTrain, type TrainSummary } from '../../train/run.js';
import { NonFiniteError } from '../../train/trainer.js';

export const summary = 'train a model (default: preset A on the Brown corpus with the norm test)';

const HELP = `usage: adabatch train [--config run.yaml] [--set key=value …]
       adabatch train --resume RUN_DIR [--set key=value …]
       adabatch train … --max-restarts N     restart a failed run from its newest checkpoint
       adabatch train --nproc N …          N data-parallel ranks in this process (threads)
       mpirun -np N adabatch train …       N ranks, one process each (MPI; also srun)

Trains a Llama-style model. With no options it runs the built-in default: preset A on the Brown
corpus with its own 4096-token BPE tokenizer and the adaptive norm-test batch schedule.

options:
  --config FILE      YAML (or JSON) training config; see docs/config.md
  --set KEY=VALUE    override one config field (repeatable), e.g. --set batch.eta=0.15
                     --set model.preset=tiny --set budget.samples=2000 --set backend=ref
  --resume RUN_DIR   continue a run from its newest valid checkpoint (exactly: same parameters
                     and metrics as an uninterrupted run); only budget, eval, checkpoint,
                     log_every_s, threads and max_nonfinite may be changed with --set. A run
                     directory with no checkpoint yet starts afresh from its saved config, so
                     the same command serves a first start and every requeue
  --max-restarts N   when the run fails (a rank dies or throws), resume it from its newest
                     checkpoint, up to N times (default 0); not under mpirun/srun, where the
                     job is requeued instead (docs/distributed.md, "Failures and restarts")
  --nproc N          run N data-parallel ranks as threads of this process (cpu backend,
                     one kernel thread per rank unless threads is set)
  --dist KIND        local | threads | mpi (default: mpi when started by mpirun/srun with
                     several ranks, threads with --nproc > 1, otherwise local)
  --dist-timeout S   abort the run when a collective waits longer than S seconds for the
                     other ranks (default 300); see docs/distributed.md
  -h, --help         show this help

Ctrl-C (SIGINT) or SIGTERM stops after the current step and writes a checkpoint; a second Ctrl-C
aborts at once.

Writes config.yaml, metrics.jsonl (one row per optimizer step) and tokenizer.json to the run
directory (run_dir, default runs/<date>-<time>).`;

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { config: { type: 'string' }, set: { type: 'string', multiple: true }, resume: { type: 'string' }, 'max-restarts': { type: 'string' }, nproc: { type: 'string' }, dist: { type: 'string' }, 'dist-timeout': { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (parsed.values.help) {
    console.log(HELP);
    return 0;
  }
  const resume = parsed.values.resume;
  const dist = chooseDist({ dist: parsed.values.dist, nproc: parsed.values.nproc === undefined ? undefined : Number(parsed.values.nproc) });
  const timeoutSeconds = Number(parsed.values['dist-timeout'] ?? 300);
  if (!(timeoutSeconds > 0)) throw new UserError(`--dist-timeout must be a positive number of seconds, got '${parsed.values['dist-timeout']}'`);
  const maxRestarts = Number(parsed.values['max-restarts'] ?? 0);
  if (!Number.isInteger(maxRestarts) || maxRestarts < 0) throw new UserError(`--max-restarts must be a non-negative integer, got '${parsed.values['max-restarts']}'`);
  if (maxRestarts > 0 && dist.kind === 'mpi') throw new UserError('--max-restarts restarts ranks inside this process, which MPI cannot do (a failed rank ends the job); requeue the job with `adabatch train --resume RUN_DIR` instead (docs/distributed.md, "Failures and restarts")');
  const cfg = resume ? loadResumeConfig(resume, parsed.values.config, parsed.values.set ?? []) : loadTrainConfig(parsed.values.config, parsed.values.set ?? []);
  // A restart must find the run again: name its directory now.
  if (maxRestarts > 0) cfg.run_dir ??= defaultRunDir(new Date());
  // Shared with --nproc's worker threads: every rank polls it once per step.
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const stopRequested = (): boolean => Atomics.load(stop, 0) !== 0;
  const onSignal = (sig: string): void => {
    if (stopRequested()) process.exit(130);
    Atomics.store(stop, 0, 1);
    console.error(`\n${sig}: stopping after the current step (press again to abort at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const attempt = (runCfg: TrainConfig, resumeRun: boolean): Promise<TrainSummary | null> =>
    dist.kind === 'threads'
      ? runThreads({ cfg: runCfg, nproc: dist.nproc, resume: resumeRun, timeoutSeconds, stop, tty: Boolean(process.stderr.isTTY) && !process.env.CI })
      : dist.kind === 'mpi'
        ? runMpi({ cfg: runCfg, shouldStop: stopRequested, resume: resumeRun, timeoutSeconds })
        : runTrain(runCfg, { shouldStop: stopRequested, resume: resumeRun });
  try {
    let s: TrainSummary | null = null;
    for (let restart = 0; ; restart++) {
      try {
        s = restart === 0 ? await attempt(cfg, resume !== undefined) : await attempt(loadResumeConfig(cfg.run_dir!, undefined, []), true);
        break;
      } catch (e) {
        if (!restartable(e) || restart >= maxRestarts || stopRequested()) throw e;
        console.error(`adabatch: the run failed: ${describeFailure(e)}`);
        console.error(`adabatch: restarting from the newest checkpoint in ${cfg.run_dir} (restart ${restart + 1} of ${maxRestarts})`);
      }
    }
    if (s) console.log(formatSummary(s));
    return 0;
  } catch (e) {
    if (!(e instanceof DistributedRunError)) throw e;
    console.error(`adabatch: ${e.describe()}`);
    // A rank that would not stop must not keep the process alive.
    setTimeout(() => process.exit(1), 2000).unref();
    return 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * Failures worth a restart: a rank that died or threw, an error from the machine. Not a config or
 * input problem (UserError) and not a run that diverged (non-finite steps): those fail the same way
 * again.
 */
function restartable(e: unknown): boolean {
  return !(e instanceof UserError) && !(e instanceof NonFiniteError);
}

function describeFailure(e: unknown): string {
  if (e instanceof DistributedRunError) return e.describe();
  return e instanceof Error ? e.message.split('\n')[0]! : String(e);
}
