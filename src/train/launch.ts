/**
 * Launching distributed training: starting `adabatch train` on ranks.
 *
 * `adabatch train --nproc N` (runThreads): N ranks as worker_threads of this process (rank-worker.ts),
 * each running runTrain with its rank of one `threads` group. This thread only supervises, so it stays responsive:
 * it turns signals into a stop request every rank sees (a shared flag, agreed in the step's scalar
 * reduction), and turns the first failure of any rank into an abort of the whole group.
 *
 * Faults: a rank that throws aborts the group itself (its peers' collectives fail at once); a rank
 * that dies (its worker exits or crashes) is seen here and the group is aborted; a rank that stops
 * answering is caught by the collective timeout on its peers. Ranks still running 2 s after the first
 * failure are terminated. The result names the rank that failed first and its error.
 *
 * `mpirun -np N adabatch train` (runMpi): this process is one rank of the `mpi` group. A rank that
 * fails prints its error and ends the job with MPI_Abort; mpirun reports a rank that dies.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
import { openMpiCommunicator } from '../parallel/mpi.js';
import { createThreadGroup } from '../parallel/threads.js';
import { UserError } from '../util/errors.js';
import type { TrainConfig } from './config.js';
import { faultHook } from './fault-injection.js';
import { Progress } from './progress.js';
import { runTrain, type TrainSummary } from './run.js';
import { NonFiniteError } from './trainer.js';

export interface ThreadsLaunch {
  cfg: TrainConfig;
  nproc: number;
  resume: boolean;
  /** Seconds a collective may wait for its peers before the group is aborted. */
  timeoutSeconds: number;
  /** Element 0 ≠ 0 asks every rank to stop after the current step (set it from a signal handler). */
  stop?: Int32Array<SharedArrayBuffer>;
  /** Draw rank 0's progress bar in place (stderr is a terminal). */
  tty?: boolean;
  /** Seconds to wait for ranks after the first failure before terminating them (default 2). */
  graceSeconds?: number;
}

/** What a worker posts when it finishes. */
export type WorkerReport =
  | { type: 'done'; rank: number; summary: TrainSummary }
  | { type: 'failed'; rank: number; message: string; aborted: boolean; timeout: boolean; userError: boolean; diverged?: boolean };

export interface RankFailure {
  rank: number;
  /** The error (a stack trace, or what happened to the worker). */
  message: string;
  /** Only a consequence of another rank's failure (its collective was aborted). */
  aborted: boolean;
  timeout: boolean;
  userError: boolean;
  /** The rank stopped on consecutive non-finite steps (NonFiniteError): deterministic, not worth a restart. */
  diverged?: boolean;
}

/** A distributed run failed; `primary` is the rank whose failure started it. */
export class DistributedRunError extends Error {
  constructor(
    readonly primary: RankFailure,
    readonly failures: RankFailure[],
  ) {
    super(primary.aborted ? primary.message : `rank ${primary.rank} failed: ${primary.message}`);
    this.name = 'DistributedRunError';
  }

  /** The primary failure, then one line per other rank. */
  describe(): string {
    const others = this.failures.filter((f) => f !== this.primary).map((f) => `  rank ${f.rank}: ${f.aborted ? 'stopped: ' : ''}${firstLine(f.message)}`);
    return [this.message, ...(others.length ? ['other ranks:', ...others] : [])].join('\n');
  }
}

/** A progress sink that prints nothing (ranks other than 0). */
export function silentProgress(): Progress {
  const devnull = Object.assign(Object.create(process.stderr) as NodeJS.WriteStream, { write: () => true, isTTY: false });
  return new Progress(devnull, 1e9, false);
}

/** The failure that explains the others: a rank's own error first, then a timeout, then an abort. */
function primaryOf(failures: RankFailure[]): RankFailure {
  const rank = (f: RankFailure): number => (f.aborted ? (f.timeout ? 1 : 2) : 0);
  return [...failures].sort((a, b) => rank(a) - rank(b))[0]!;
}

/** Runs training on `nproc` worker-thread ranks; resolves with rank 0's summary. */
export function runThreads(launch: ThreadsLaunch): Promise<TrainSummary> {
  const group = createThreadGroup(launch.nproc);
  const stop = launch.stop ?? new Int32Array(new SharedArrayBuffer(4));
  const graceMs = (launch.graceSeconds ?? 2) * 1000;
  const workers: Worker[] = [];
  const failures: RankFailure[] = [];
  const running = new Set<number>();
  const terminated = new Set<number>();
  let summary: TrainSummary | null = null;
  let graceTimer: NodeJS.Timeout | null = null;

  return new Promise<TrainSummary>((resolve, reject) => {
    let settled = false;
    const settle = (): void => {
      if (settled || running.size > 0) return;
      settled = true;
      if (graceTimer) clearTimeout(graceTimer);
      group.release();
      if (failures.length) {
        const primary = primaryOf(failures);
        if (primary.userError && !primary.aborted) reject(new UserError(primary.message));
        else if (primary.diverged && !primary.aborted) reject(new NonFiniteError(primary.message));
        else reject(new DistributedRunError(primary, failures));
      } else if (!summary) {
        reject(new Error('rank 0 finished without a summary'));
      } else {
        resolve(summary);
      }
    };
    const fail = (f: RankFailure): void => {
      failures.push(f);
      // Wake every rank blocked in a collective; the first reason given is the one they report.
      if (!f.aborted) group.abort(`rank ${f.rank} failed: ${firstLine(f.message)}`);
      else group.abort(firstLine(f.message));
      graceTimer ??= setTimeout(() => {
        for (const r of running) {
          terminated.add(r);
          void workers[r]!.terminate();
        }
        // terminate() waits for a rank inside a native call; do not wait for it forever.
        setTimeout(() => {
          for (const r of running) failures.push({ rank: r, message: 'did not stop after the abort', aborted: true, timeout: false, userError: false });
          running.clear();
          settle();
        }, graceMs).unref();
      }, graceMs);
      graceTimer.unref();
    };

    for (let rank = 0; rank < launch.nproc; rank++) {
      const w = new Worker(new URL('./rank-worker.js', import.meta.url), {
        workerData: { cfg: launch.cfg, rank, groupId: group.id, resume: launch.resume, timeoutSeconds: launch.timeoutSeconds, stop, tty: launch.tty ?? false },
      });
      workers.push(w);
      running.add(rank);
      let reported = false;
      w.on('message', (m: WorkerReport) => {
        reported = true;
        if (m.type === 'done') {
          if (m.rank === 0) summary = m.summary;
        } else {
          fail({ rank: m.rank, message: m.message, aborted: m.aborted, timeout: m.timeout, userError: m.userError, diverged: m.diverged ?? false });
        }
      });
      w.on('error', (e) => {
        reported = true;
        fail({ rank, message: e instanceof Error ? (e.stack ?? e.message) : String(e), aborted: false, timeout: false, userError: false });
      });
      w.on('exit', (code) => {
        if (terminated.has(rank)) failures.push({ rank, message: 'terminated: it did not stop within the grace period after the abort', aborted: true, timeout: false, userError: false });
        else if (!reported) fail({ rank, message: `its worker thread exited with code ${code} before finishing`, aborted: false, timeout: false, userError: false });
        running.delete(rank);
        settle();
      });
    }
  });
}

function firstLine(s: string): string {
  return s.split('\n')[0]!;
}

export interface MpiLaunch {
  cfg: TrainConfig;
  resume: boolean;
  timeoutSeconds: number;
  shouldStop: () => boolean;
}

/**
 * Runs this process as one rank of the MPI job. Resolves with the summary on rank 0 and null on the
 * others. A failure on this rank is printed and ends the whole job (MPI_Abort; the process exits).
 */
export async function runMpi(launch: MpiLaunch): Promise<TrainSummary | null> {
  const comm = openMpiCommunicator(launch.timeoutSeconds);
  const rank0 = comm.rank === 0;
  const fault = faultHook(comm.rank);
  let step = 0;
  let summary: TrainSummary;
  try {
    summary = await runTrain(launch.cfg, {
      comm,
      resume: launch.resume,
      shouldStop: () => {
        fault?.(++step);
        return launch.shouldStop();
      },
      ...(!rank0 && { log: () => {}, progress: silentProgress() }),
    });
  } catch (e) {
    const message = e instanceof UserError ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    console.error(`adabatch: rank ${comm.rank} of ${comm.size} failed: ${message}`);
    // Ends every rank of the job (MPI_Abort on the communicator thread); this process exits there.
    comm.abort(`rank ${comm.rank} failed: ${firstLine(message)}`);
    await sleep(10_000);
    throw e;
  }
  await comm.close();
  return rank0 ? summary : null;
}
