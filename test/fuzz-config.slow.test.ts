/**
 * Long fuzzing of Hugging Face config.json parsing and of training configs (`npm run test:slow`),
 * with a random seed (printed, with the command that replays it), plus one property per known
 * failure class. See test/helpers/fuzz.ts.
 */
import { configFuzzTests } from './helpers/fuzz-suites.js';

configFuzzTests('slow', 'fuzz-config.slow.test');
