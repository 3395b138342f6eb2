/**
 * Bounded fuzzing of tokenizer.json loading and of the Split-pattern engines (part of `npm test`),
 * fixed seeds. Generators and oracles: test/helpers/fuzz-tokenizer.ts; the long run:
 * test/fuzz-tokenizer.slow.test.ts.
 */
import { tokenizerFuzzTests } from './helpers/fuzz-suites.js';

tokenizerFuzzTests('bounded', 'fuzz-tokenizer.test');
