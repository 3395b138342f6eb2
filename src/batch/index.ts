/** Public surface of batch/: schedules, planner, estimators, noise scale, LR rule, config. */
export * from './types.js';
export { planBatch } from './planner.js';
export { ConstantSchedule } from './constant.js';
export { StagewiseSchedule, LinearRampSchedule, type Stage } from './stagewise.js';
export {
  AdaptiveSchedule,
  NormTestSchedule,
  InnerProductSchedule,
  CoordinateNormSchedule,
  NoiseScaleSchedule,
  type AdaptiveOptions,
  type NormEstimator,
  type InnerProductKind,
} from './adaptive.js';
export * from './estimators.js';
export { Ema, type EmaState } from './ema.js';
export { NoiseScaleTracker, type NoiseScaleEstimate, type NoiseScaleOptions } from './noise-scale.js';
export * from './coordinate.js';
export { lrScale, LR_SCALINGS, type LrScaling } from './lr.js';
export * from './config.js';
