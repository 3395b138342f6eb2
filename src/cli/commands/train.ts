/** `adabatch train`: train a model from a YAML config (or the built-in default), with --set overrides. */
import { parseArgs } from 'node:util';
import { UserError } from '../../util/errors.js';
import { loadTrainConfig } from '../../train/config.js';
import { formatSummary, runTrain } from '../../train/run.js';

export const summary = 'train a model (default: preset A on the Brown corpus with the norm test)';

const HELP = `usage: adabatch train [--config run.yaml] [--set key=value …]

Trains a Llama-style model. With no options it runs the built-in default: preset A on the Brown
corpus with its own 4096-token BPE tokenizer and the adaptive norm-test batch schedule.

options:
  --config FILE      YAML (or JSON) training config; see docs/config.md
  --set KEY=VALUE    override one config field (repeatable), e.g. --set batch.eta=0.15
                     --set model.preset=tiny --set budget.samples=2000 --set backend=ref
  -h, --help         show this help

Writes config.yaml, metrics.jsonl (one row per optimizer step) and tokenizer.json to the run
directory (run_dir, default runs/<date>-<time>).`;

export async function run(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { config: { type: 'string' }, set: { type: 'string', multiple: true }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (e) {
    throw new UserError(`${(e as Error).message}\n\n${HELP}`);
  }
  if (parsed.values.help) {
    console.log(HELP);
    return 0;
  }
  const cfg = loadTrainConfig(parsed.values.config, parsed.values.set ?? []);
  let stopRequested = false;
  const onSignal = (sig: string): void => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    console.error(`\n${sig}: stopping after the current step (press again to abort at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const s = await runTrain(cfg, { shouldStop: () => stopRequested });
    console.log(formatSummary(s));
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
