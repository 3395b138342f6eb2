/**
 * Long fuzzing of tokenizer.json loading and of the Split-pattern engines (`npm run test:slow`), with
 * a random seed (printed, with the command that replays it), plus one property per known failure
 * class. See test/helpers/fuzz.ts.
 */
import { tokenizerFuzzTests } from './helpers/fuzz-suites.js';

tokenizerFuzzTests('slow', 'fuzz-tokenizer.slow.test');
