/**
 * Long fuzzing of the file readers (`npm run test:slow`): thousands of safetensors files and mutated
 * checkpoints with a random seed (printed, with the command that replays it; FUZZ_SEED, FUZZ_RUNS and
 * FUZZ_TIME_S override), plus one property per known failure class. See test/helpers/fuzz.ts.
 */
import { ioFuzzTests } from './helpers/fuzz-suites.js';

ioFuzzTests('slow', 'fuzz-io.slow.test');
