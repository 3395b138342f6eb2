/**
 * One optimizer step's row of metrics.jsonl, as the training loop writes it (docs/config.md,
 * "Metrics", says what each field means). Fields after `elapsed_s` appear only on the steps they
 * concern: evaluation, and collectives where the process group measures them.
 */
export type StepMetrics = {
  step: number;
  samples: number;
  tokens: number;
  /** Data mixtures only: tokens seen from each source (they sum to `tokens`). */
  tokens_by_source?: Record<string, number>;
  batch_size: number;
  micro_batch: number;
  accum_steps: number;
  ranks: number;
  lr: number;
  loss: number;
  grad_norm: number;
  grad_sq_norm: number;
  test_stat: number | null;
  grad_var: number | null;
  noise_scale: number | null;
  test_passed: boolean | null;
  next_batch: number | null;
  skipped: boolean;
  tok_per_s: number;
  step_time_s: number;
  elapsed_s: number;
  val_loss?: number;
  val_ppl?: number;
  eval_s?: number;
  /** The loop's own seconds (planning, data, schedule, metrics). */
  overhead_s?: number;
  /** Seconds of statistics beyond what the optimizer needs, plus the schedule's decision. */
  stats_s?: number;
  /** Seconds in collectives, waiting for peers included; per collective where it was used. */
  comm_s?: number;
  allreduce_s?: number;
  allgather_s?: number;
  reduce_scatter_s?: number;
};
