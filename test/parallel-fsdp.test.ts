/**
 * FSDP through the command line on real process groups: `adabatch train --nproc N` (worker-thread
 * ranks) and `mpirun -np 2 adabatch train` with `parallel.strategy=fsdp`.
 * - a constant batch gives one rank's parameters (rel L2 < 1e-5) and losses, on 2 and 4 ranks;
 * - under the norm test, FSDP takes the same batch decisions as DDP on the same ranks and ends at the
 *   same parameters (the statistics come from sharded gradients there, from replicas here);
 * - mpi and threads give identical rows and parameter bits.
 * The in-process equivalence tests (test/train-fsdp.test.ts) cover more layouts on cooperative ranks.
 */
import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { nativeAddonAvailable } from '../src/addon/addon.js';
import { checkDecisions, cliTrain } from './helpers/cli-train.js';
import { mpiSkipReason } from './helpers/ranks.js';
import { relL2 } from './helpers/num.js';

const noAddon = nativeAddonAvailable() ? false : 'the native addon is not built (npm run build:native)';
const noMpi = noAddon || mpiSkipReason() || false;
const FSDP = ['--set', 'parallel.strategy=fsdp'];
const CONSTANT = 'batch={schedule: constant, batch: 8, max_micro: 2}';
const NORM = 'batch={schedule: norm, eta: 0.5, initial: 8, max: 64, max_micro: 2}';

test('adabatch train --nproc 2 and 4 with FSDP: one rank\'s parameters and losses under a constant batch', { skip: noAddon }, () => {
  const one = cliTrain(CONSTANT, []);
  for (const J of [2, 4]) {
    const run = cliTrain(CONSTANT, [...FSDP, '--nproc', String(J)]);
    assert.match(run.stderr, new RegExp(`FSDP over ${J} rank\\(s\\)`));
    const e = relL2(run.params, one.params);
    assert.ok(e < 1e-5, `FSDP ${J} ranks vs one rank after ${one.rows.length} steps: rel L2 ${e}`);
    checkDecisions(run.rows, one.rows, `FSDP ${J} ranks vs one rank`);
  }
});

test('FSDP and DDP on 2 ranks take the same norm-test decisions; mpirun gives the threads run bit for bit', { skip: noAddon }, () => {
  const fsdp = cliTrain(NORM, [...FSDP, '--nproc', '2']);
  const ddp = cliTrain(NORM, ['--nproc', '2']);
  assert.ok(ddp.rows.some((r) => r.test_passed === false), 'the norm test grows the batch');
  checkDecisions(fsdp.rows, ddp.rows, 'FSDP vs DDP, 2 thread ranks');
  const e = relL2(fsdp.params, ddp.params);
  assert.ok(e < 1e-5, `FSDP vs DDP parameters: rel L2 ${e}`);
  if (noMpi) return;
  const mpi = cliTrain(NORM, FSDP, 2);
  assert.deepEqual(mpi.rows, fsdp.rows, 'FSDP mpi and threads: identical metrics rows (wall clock aside)');
  assert.deepEqual(mpi.params, fsdp.params, 'FSDP mpi and threads: identical final parameters');
});
