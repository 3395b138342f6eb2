/**
 * Choosing the process group (--dist, --nproc, the launcher's environment), the start-up agreement
 * between ranks, the default kernel threads per rank, and the command line's refusals.
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeAddonAvailable } from '../src/addon/addon.js';
import { defaultKernelThreads, hash20 } from '../src/parallel/ddp.js';
import { chooseDist, detectLauncher } from '../src/parallel/group-choice.js';
import type { ProcessGroup } from '../src/parallel/group.js';
import { UserError } from '../src/util/errors.js';
import { scenarioOnThreads } from './helpers/ranks.js';
import { tempDir } from './helpers/tmp.js';

const noAddon = nativeAddonAvailable() ? false : 'the native addon is not built (npm run build:native)';
const BIN = fileURLToPath(new URL('../../bin/adabatch.js', import.meta.url));

test('launchers are recognised from their environment variables', () => {
  assert.equal(detectLauncher({}), null);
  assert.equal(detectLauncher({ OMPI_COMM_WORLD_SIZE: '' }), null, 'an empty variable is unset');
  assert.deepEqual(detectLauncher({ OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_RANK: '2' }), { via: 'mpirun (Open MPI)', rank: 2, size: 4 });
  assert.deepEqual(detectLauncher({ PMI_SIZE: '2', PMI_RANK: '1' }), { via: 'PMI (MPICH hydra)', rank: 1, size: 2 });
  assert.deepEqual(detectLauncher({ SLURM_STEP_NUM_TASKS: '8', SLURM_PROCID: '3', SLURM_NTASKS: '8' }), { via: 'srun', rank: 3, size: 8 });
  // A batch script's shell has SLURM_NTASKS but is one process.
  assert.equal(detectLauncher({ SLURM_NTASKS: '8', SLURM_JOB_ID: '1' }), null);
  assert.deepEqual(detectLauncher({ PMIX_RANK: '0' }), { via: 'PMIx', rank: 0, size: null });
});

test('--dist and --nproc against the environment', () => {
  assert.equal(chooseDist({}, {}).kind, 'local');
  assert.deepEqual(chooseDist({ nproc: 4 }, {}), { kind: 'threads', nproc: 4, reason: '--nproc 4' });
  assert.equal(chooseDist({ nproc: 1 }, {}).kind, 'local');
  assert.equal(chooseDist({ dist: 'threads', nproc: 1 }, {}).kind, 'threads');
  assert.equal(chooseDist({}, { OMPI_COMM_WORLD_SIZE: '2', OMPI_COMM_WORLD_RANK: '0' }).kind, 'mpi');
  assert.equal(chooseDist({}, { OMPI_COMM_WORLD_SIZE: '1', OMPI_COMM_WORLD_RANK: '0' }).kind, 'local', 'mpirun -np 1 needs no group');
  assert.equal(chooseDist({ dist: 'mpi' }, {}).kind, 'mpi');
  assert.equal(chooseDist({ dist: 'local' }, { OMPI_COMM_WORLD_SIZE: '1' }).kind, 'local');
  const bad: Array<[Parameters<typeof chooseDist>[0], NodeJS.ProcessEnv, RegExp]> = [
    [{ dist: 'nccl' }, {}, /--dist must be one of local, threads, mpi/],
    [{ nproc: 0 }, {}, /--nproc must be a positive integer/],
    [{ nproc: 2.5 }, {}, /--nproc must be a positive integer/],
    [{ dist: 'mpi', nproc: 2 }, {}, /with --dist mpi the launcher .* sets the number of ranks/],
    [{ nproc: 2 }, { OMPI_COMM_WORLD_SIZE: '2' }, /started by mpirun \(Open MPI\) as one of 2 ranks, but --nproc 2/],
    [{ dist: 'threads' }, {}, /--dist threads needs --nproc N/],
    [{ dist: 'local', nproc: 3 }, {}, /--dist local runs one rank/],
  ];
  for (const [opts, env, re] of bad) assert.throws(() => chooseDist(opts, env), (e: Error) => e instanceof UserError && re.test(e.message), JSON.stringify(opts));
});

test('default kernel threads: all cores for one rank, one per thread rank, an MPI rank\'s bound cores or share', () => {
  const fake = (kind: ProcessGroup['kind'], size: number, localSize: number): Pick<ProcessGroup, 'kind' | 'size' | 'localSize'> => ({ kind, size, localSize });
  assert.equal(defaultKernelThreads(null, 16, 16), 16);
  assert.equal(defaultKernelThreads(fake('local', 1, 1), 16, 16), 16);
  assert.equal(defaultKernelThreads(fake('threads', 4, 4), 16, 16), 1);
  assert.equal(defaultKernelThreads(fake('mpi', 8, 4), 16, 16), 4, 'unbound: the machine shared by its 4 ranks');
  assert.equal(defaultKernelThreads(fake('mpi', 8, 32), 16, 16), 1);
  assert.equal(defaultKernelThreads(fake('mpi', 8, 4), 4, 16), 4, 'bound by mpirun to 4 cores of 16: all of them');
  assert.equal(defaultKernelThreads(fake('mpi', 2, 2), 1, 2), 1, 'bound to one core');
});

test('ranks agree on the config at start-up and name the run after rank 0 clock', { skip: noAddon }, async () => {
  const results = (await scenarioOnThreads(3, 'agreement')) as Array<{ same: number; differ: { message: string; name: string } }>;
  assert.ok(results.every((r) => r.same === results[0]!.same && r.same > 0), 'every rank got the same start time');
  for (const r of results) {
    assert.equal(r.differ.name, 'UserError');
    assert.match(r.differ.message, /the 3 ranks were started with different training configurations/);
  }
  assert.notEqual(hash20(JSON.stringify({ seed: 1 })), hash20(JSON.stringify({ seed: 2 })));
  assert.ok(hash20('x') < 2 ** 20);
});

test('the ref backend trains on thread ranks: its collectives are staged through host buffers', { skip: noAddon }, () => {
  const env = { ...process.env };
  delete env.OMPI_COMM_WORLD_SIZE;
  const runDir = join(tempDir('adabatch-ref-threads-'), 'run');
  const ref = spawnSync(process.execPath, [BIN, 'train', '--nproc', '2', '--set', 'backend=ref', '--set', 'model.preset=tiny', '--set', 'data={synthetic: {}}', '--set', 'budget.samples=8', '--set', 'batch={schedule: constant, batch: 4, max_micro: 2}', '--set', `run_dir=${runDir}`], { encoding: 'utf8', env });
  assert.equal(ref.status, 0, ref.stderr);
  assert.match(ref.stderr, /on ref × 1 thread\(s\), 2 rank\(s\)/);
  assert.match(ref.stdout + ref.stderr, /steps {11}2\b/);
});

test('the command line refuses what a threads group cannot run, clearly', { skip: noAddon }, () => {
  const env = { ...process.env };
  delete env.OMPI_COMM_WORLD_SIZE;
  const run = (args: string[]) => spawnSync(process.execPath, [BIN, 'train', ...args], { encoding: 'utf8', env });
  const both = run(['--nproc', '2', '--dist', 'mpi']);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /--nproc starts worker threads in this process; with --dist mpi/);
  const timeout = run(['--nproc', '2', '--dist-timeout', '0']);
  assert.equal(timeout.status, 2);
  assert.match(timeout.stderr, /--dist-timeout must be a positive number of seconds/);
});
