/** A worker thread running one collective scenario (collective-scenarios.ts) as a rank of a `threads` group. */
import { parentPort, workerData } from 'node:worker_threads';
import { joinThreadCommunicator } from '../../src/parallel/threads.js';
import { scenarios } from './collective-scenarios.js';

const { groupId, rank, name, timeout } = workerData as { groupId: number; rank: number; name: string; timeout: number };
const comm = joinThreadCommunicator(groupId, rank, timeout);
const abortGroup = (): Promise<void> =>
  new Promise((resolve) => {
    parentPort!.once('message', () => resolve());
    parentPort!.postMessage({ abortGroup: true });
  });
const result = await scenarios[name]!(comm, { abortGroup });
if (name !== 'leave' || rank !== 1) await comm.close();
parentPort!.postMessage({ result });
