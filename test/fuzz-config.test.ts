/**
 * Bounded fuzzing of Hugging Face config.json parsing and of training configs with --set overrides
 * (part of `npm test`), fixed seeds. Generators and oracles: test/helpers/fuzz-config.ts; the long
 * run: test/fuzz-config.slow.test.ts.
 */
import { configFuzzTests } from './helpers/fuzz-suites.js';

configFuzzTests('bounded', 'fuzz-config.test');
