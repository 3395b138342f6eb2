/**
 * Bounded fuzzing of the file readers (part of `npm test`): safetensors files, checkpoint directories
 * and sharded checkpoints, fixed seeds, about two hundred inputs. Generators, oracles and the sandbox
 * are in test/helpers/fuzz*.ts; the long run is test/fuzz-io.slow.test.ts. Each test prints its seed
 * and how to replay it.
 */
import { ioFuzzTests } from './helpers/fuzz-suites.js';

ioFuzzTests('bounded', 'fuzz-io.test');
