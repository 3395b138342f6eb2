/**
 * The training configuration: YAML/JSON data validated by zod, every error naming its field.
 * `adabatch train` with no config uses these defaults (the README's main job).
 */
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { z } from 'zod';
import { batchConfigSchema } from '../batch/config.js';
import { dataConfigSchema } from '../data/dataset.js';
import { optimConfigSchema } from '../optim/config.js';
import { lrConfigSchema } from '../optim/lr.js';
import { checkpointConfigSchema } from './checkpointer.js';
import { lrRuleFindings } from './lr-rules.js';
import { UserError, parseOrThrow } from '../util/errors.js';

const syntheticSchema = z
  .object({
    synthetic: z
      .object({
        phrases: z.number().int().positive().default(64),
        phrase_len: z.number().int().min(2).default(12),
      })
      .strict(),
  })
  .strict();

/**
 * `data` is either {synthetic: …} or a corpus section. Chosen by the `synthetic` key rather than as a
 * plain union, so an error names the field that is wrong instead of "invalid input".
 */
const dataSchema = z.unknown().transform((value, ctx): z.output<typeof syntheticSchema> | z.output<typeof dataConfigSchema> => {
  const synthetic = value !== null && typeof value === 'object' && 'synthetic' in value;
  const r = (synthetic ? syntheticSchema : dataConfigSchema).safeParse(value ?? {});
  if (r.success) return r.data;
  for (const issue of r.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
  return z.NEVER;
});

export const trainConfigSchema = z
  .object({
    /** Run directory; default runs/<date>-<time>. */
    run_dir: z.string().min(1).optional(),
    seed: z.number().int().nonnegative().default(0),
    backend: z.enum(['cpu', 'ref', 'webgpu']).default('cpu'),
    /** Kernel threads per rank (default: all cores for one rank, 1 per rank otherwise). */
    threads: z.number().int().positive().max(256, 'at most 256 kernel threads per rank').optional(),
    /** A preset name plus any model field to override (vocab follows the tokenizer). */
    model: z.object({ preset: z.string().default('A') }).catchall(z.unknown()).default({ preset: 'A' }),
    /** Start from these weights (a Hugging Face Llama directory or an adabatch checkpoint): continued pretraining. */
    init_from: z.string().min(1).optional(),
    checkpoint: checkpointConfigSchema.prefault({}),
    /**
     * How parameters live across data-parallel ranks: `ddp` (a full replica per rank, one all-reduce
     * per block) or `fsdp` (ZeRO-3: each rank owns 1/J of every block's parameters, gradients and
     * optimizer state; see docs/distributed.md).
     */
    parallel: z
      .object({
        strategy: z.enum(['ddp', 'fsdp']).default('ddp'),
        /** fsdp: free gathered parameters after forward and gather again for backward. */
        reshard_after_forward: z.boolean().default(true),
        /** fsdp: keep a full local gradient (one more gradient of memory) so ‖g_j‖² exists: needed by the per-sample and paper estimators. */
        unsharded_accumulation: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    /** Activation recomputation in backward (less memory, ~30% more compute). */
    recompute: z.boolean().default(false),
    /**
     * GEMM input precision: `f32`, or mixed precision with 16-bit GEMM inputs, f32 accumulation, f32
     * master weights, gradients, optimizer state and statistics: `bf16` (cpu) or `f16` (webgpu on a
     * device with shader-f16); docs/precision.md.
     */
    precision: z.enum(['f32', 'bf16', 'f16']).default('f32'),
    data: dataSchema.prefault({}),
    batch: batchConfigSchema,
    lr: lrConfigSchema.prefault({}),
    optim: optimConfigSchema.prefault({}),
    budget: z
      .object({ samples: z.number().int().positive().optional(), tokens: z.number().int().positive().optional() })
      .strict()
      .refine((b) => (b.samples === undefined) !== (b.tokens === undefined), { message: 'give exactly one of budget.samples or budget.tokens' })
      .default({ samples: 6144 }),
    eval: z
      .object({
        /** Evaluate every this many samples (0: only at the end). */
        every_samples: z.number().int().nonnegative().default(1024),
        /** Size of the fixed validation subset, in windows. */
        windows: z.number().int().positive().default(64),
      })
      .strict()
      .prefault({}),
    /** Stop after this many consecutive steps with a non-finite loss or gradient. */
    max_nonfinite: z.number().int().positive().default(5),
    /** Seconds between progress lines when not on a terminal. */
    log_every_s: z.number().positive().default(10),
  })
  .strict()
  // The LR schedule, the batch's LR scaling and the optimizer must agree (train/lr-rules.ts).
  .superRefine((c, ctx) => {
    for (const f of lrRuleFindings(c)) if (f.severity === 'error') ctx.addIssue({ code: 'custom', path: f.field.split('.'), message: f.message });
  });

export type TrainConfig = z.output<typeof trainConfigSchema>;

/** Sets `a.b.c=value` in a plain object; the value is parsed as YAML (numbers, booleans, lists…). */
export function applyOverride(obj: Record<string, unknown>, assignment: string): void {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new UserError(`--set expects key=value, got '${assignment}'`);
  const path = assignment.slice(0, eq).split('.');
  if (path.some((p) => p === '' || p === '__proto__' || p === 'constructor' || p === 'prototype')) throw new UserError(`--set: invalid key '${assignment.slice(0, eq)}'`);
  let value: unknown;
  try {
    value = YAML.parse(assignment.slice(eq + 1)) as unknown;
  } catch (e) {
    throw new UserError(`--set ${assignment.slice(0, eq)}: the value is not valid YAML (${(e as Error).message.split('\n')[0]})`);
  }
  let cur: Record<string, unknown> = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (next === undefined || next === null) cur[key] = {};
    else if (typeof next !== 'object' || Array.isArray(next)) throw new UserError(`--set ${assignment}: '${key}' is not a section`);
    cur = cur[key] as Record<string, unknown>;
  }
  cur[path[path.length - 1]!] = value;
}

/** Reads a YAML/JSON config file (or nothing), applies --set overrides and validates. */
export function loadTrainConfig(file: string | undefined, overrides: readonly string[] = []): TrainConfig {
  let raw: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      throw new UserError(`cannot read config ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = YAML.parse(text);
    } catch (e) {
      throw new UserError(`config ${file} is not valid YAML: ${(e as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) throw new UserError(`config ${file} must be a mapping of sections`);
    raw = (parsed ?? {}) as Record<string, unknown>;
  }
  for (const o of overrides) applyOverride(raw, o);
  return parseOrThrow(trainConfigSchema, raw, file ? `config ${file}` : 'config');
}
