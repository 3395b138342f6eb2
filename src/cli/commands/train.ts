/** `adabatch train`: train a model from a YAML config (or the built-in default), with --set overrides. */
import { parseArgs } from 'node:util';
import { UserError } from '../../util/errors.js';
import { loadTrainConfig } from '../../train/config.js';
import { loadResumeConfig } from '../../train/resume.js';
import { formatSummary, runTrain } from '../../train/run.js';

export const summary = 'train a model (default: preset A on the Brown corpus with the norm test)';

const HELP = `usage: adabatch train [--config run.yaml] [--set key=value …]
       adabatch train --resume RUN_DIR [--set key=value …]

Trains a Llama-style model. With no options it runs the built-in default: preset A on the Brown
corpus with its own 4096-token BPE tokenizer and the adaptive norm-test batch schedule.

options:
  --config FILE      YAML (or JSON) training config; see docs/config.md
  --set KEY=VALUE    override one config field (repeatable), e.g. --set batch.eta=0.15
                     --set model.preset=tiny --set budget.samples=2000 --set backend=ref
  --resume RUN_DIR   continue a run from its newest valid checkpoint (exactly: same parameters
                     and metrics as an uninterrupted run); only budget, eval, checkpoint,
                     log_every_s, threads and max_nonfinite may be changed with --set
  -h, --help         show this help

Ctrl-C (SIGINT) or SIGTERM stops after the current step and writes a checkpoint; a second Ctrl-C
aborts at once.

Writes config.yaml, metrics.jsonl (one row per optimizer step) and tokenizer.json to the run
directory (run_dir, default runs/<date>-<time>).`;

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { config: { type: 'string' }, set: { type: 'string', multiple: true }, resume: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (parsed.values.help) {
    console.log(HELP);
    return 0;
  }
  const resume = parsed.values.resume;
  const cfg = resume ? loadResumeConfig(resume, parsed.values.config, parsed.values.set ?? []) : loadTrainConfig(parsed.values.config, parsed.values.set ?? []);
  let stopRequested = false;
  const onSignal = (sig: string): void => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    console.error(`\n${sig}: stopping after the current step (press again to abort at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const s = await runTrain(cfg, { shouldStop: () => stopRequested, resume: resume !== undefined });
    console.log(formatSummary(s));
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
