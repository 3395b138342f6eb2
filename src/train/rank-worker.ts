/**
 * One rank of `adabatch train --nproc N` (see launch.ts): joins the thread group, runs runTrain,
 * and reports to the launching thread. On its own failure it aborts the group first, so its peers'
 * collectives fail at once instead of waiting for the timeout.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { isCollectiveAborted } from '../parallel/native-communicator.js';
import { joinThreadCommunicator } from '../parallel/threads.js';
import { UserError } from '../util/errors.js';
import type { TrainConfig } from './config.js';
import { faultHook } from './fault-injection.js';
import { silentProgress, type WorkerReport } from './launch.js';
import { Progress } from './progress.js';
import { runTrain } from './run.js';
import { NonFiniteError } from './trainer.js';

interface WorkerInput {
  cfg: TrainConfig;
  rank: number;
  groupId: number;
  resume: boolean;
  timeoutSeconds: number;
  stop: Int32Array<SharedArrayBuffer>;
  tty: boolean;
}

const input = workerData as WorkerInput;
const post = (r: WorkerReport): void => parentPort!.postMessage(r);
const { rank } = input;
const comm = joinThreadCommunicator(input.groupId, rank, input.timeoutSeconds);

try {
  const fault = faultHook(rank);
  let step = 0;
  const summary = await runTrain(input.cfg, {
    comm,
    resume: input.resume,
    // Polled once per step on every rank; the requests are summed in the step's reduction.
    shouldStop: () => {
      fault?.(++step);
      return Atomics.load(input.stop, 0) !== 0;
    },
    // Rank 0 speaks for the run; the others' messages would repeat it.
    log: rank === 0 ? (m) => console.error(m) : () => {},
    progress: rank === 0 ? new Progress(process.stderr as NodeJS.WriteStream, input.cfg.log_every_s, input.tty) : silentProgress(),
  });
  await comm.close();
  post({ type: 'done', rank, summary });
} catch (e) {
  const aborted = isCollectiveAborted(e);
  // Another rank's failure (or a timeout) is reported by its message alone; this rank's own error with its stack.
  const message = e instanceof Error ? (e instanceof UserError || e instanceof NonFiniteError || aborted ? e.message : (e.stack ?? e.message)) : String(e);
  if (!aborted) comm.abort(`rank ${rank} failed: ${message.split('\n')[0]}`);
  post({ type: 'failed', rank, message, aborted, timeout: aborted && e.code === 'ADABATCH_COMM_TIMEOUT', userError: e instanceof UserError, diverged: e instanceof NonFiniteError });
}
