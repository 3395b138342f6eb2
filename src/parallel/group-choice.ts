/**
 * Which process group a command runs in: an explicit choice (--dist, --nproc), or the launcher
 * that started this process. mpirun (Open MPI), MPICH's hydra, PMIx launchers and srun all leave
 * their mark in the environment; a launch of more than one process means `mpi`.
 */
import { UserError } from '../util/errors.js';

export type DistKind = 'local' | 'threads' | 'mpi';
/** Thread ranks share one process (its memory, its native threads): beyond this, use one process per rank. */
export const MAX_THREAD_RANKS = 256;
export const DIST_KINDS: readonly DistKind[] = ['local', 'threads', 'mpi'];

export interface Launcher {
  /** What set the variables (for messages). */
  via: string;
  rank: number | null;
  size: number | null;
}

const set = (v: string | undefined): boolean => v !== undefined && v !== '';

function int(v: string | undefined): number | null {
  if (v === undefined || !/^\d+$/.test(v)) return null;
  return Number(v);
}

/** The MPI-style launcher that started this process, if any. */
export function detectLauncher(env: NodeJS.ProcessEnv = process.env): Launcher | null {
  if (set(env.OMPI_COMM_WORLD_SIZE)) return { via: 'mpirun (Open MPI)', rank: int(env.OMPI_COMM_WORLD_RANK), size: int(env.OMPI_COMM_WORLD_SIZE) };
  if (set(env.PMI_SIZE) && set(env.PMI_RANK)) return { via: 'PMI (MPICH hydra)', rank: int(env.PMI_RANK), size: int(env.PMI_SIZE) };
  if (set(env.MV2_COMM_WORLD_SIZE)) return { via: 'MVAPICH', rank: int(env.MV2_COMM_WORLD_RANK), size: int(env.MV2_COMM_WORLD_SIZE) };
  // srun sets SLURM_STEP_NUM_TASKS for the job step it launches; SLURM_NTASKS alone is also set in a
  // batch script's shell, which is one process, so it does not count.
  if (set(env.SLURM_STEP_NUM_TASKS) && set(env.SLURM_PROCID)) return { via: 'srun', rank: int(env.SLURM_PROCID), size: int(env.SLURM_STEP_NUM_TASKS) };
  if (set(env.PMIX_RANK)) return { via: 'PMIx', rank: int(env.PMIX_RANK), size: null };
  return null;
}

export interface DistChoice {
  kind: DistKind;
  /** threads: the number of ranks. */
  nproc: number;
  /** Why this kind (for the log). */
  reason: string;
}

/**
 * --dist and --nproc against the environment: --nproc N > 1 means threads; a launcher of more than
 * one process means mpi; otherwise local. Contradictions are UserErrors.
 */
export function chooseDist(opts: { dist?: string | undefined; nproc?: number | undefined }, env: NodeJS.ProcessEnv = process.env): DistChoice {
  const { dist, nproc } = opts;
  if (dist !== undefined && !(DIST_KINDS as readonly string[]).includes(dist)) throw new UserError(`--dist must be one of ${DIST_KINDS.join(', ')}, got '${dist}'`);
  if (nproc !== undefined && (!Number.isInteger(nproc) || nproc < 1)) throw new UserError(`--nproc must be a positive integer, got ${nproc}`);
  if (nproc !== undefined && nproc > MAX_THREAD_RANKS) throw new UserError(`--nproc ${nproc} would start ${nproc} ranks as threads of one process; at most ${MAX_THREAD_RANKS} are supported (for more ranks, start one process per rank with mpirun or srun)`);
  const launcher = detectLauncher(env);
  const launched = launcher !== null && (launcher.size === null || launcher.size > 1);
  if (dist === 'mpi' || (dist === undefined && nproc === undefined && launched)) {
    if (nproc !== undefined) throw new UserError('--nproc starts worker threads in this process; with --dist mpi the launcher (mpirun -np N, srun -n N) sets the number of ranks');
    return { kind: 'mpi', nproc: launcher?.size ?? 0, reason: launcher ? `started by ${launcher.via}` : '--dist mpi' };
  }
  if (launched) {
    throw new UserError(`this process was started by ${launcher.via} as one of ${launcher.size ?? 'several'} ranks, but ${dist !== undefined ? `--dist ${dist}` : `--nproc ${nproc}`} asks for another process group; drop it (each rank joins the MPI group), or start one process`);
  }
  if (dist === 'threads' || (dist === undefined && nproc !== undefined && nproc > 1)) {
    const n = nproc ?? 0;
    if (n < 1) throw new UserError('--dist threads needs --nproc N (the number of ranks)');
    return { kind: 'threads', nproc: n, reason: `--nproc ${n}` };
  }
  if (dist === 'local' && nproc !== undefined && nproc > 1) throw new UserError(`--dist local runs one rank; --nproc ${nproc} contradicts it`);
  return { kind: 'local', nproc: 1, reason: dist === 'local' ? '--dist local' : 'one rank' };
}
