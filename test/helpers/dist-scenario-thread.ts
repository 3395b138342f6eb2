/** A worker thread running one collective scenario (dist-scenarios.ts) as a rank of a `threads` group. */
import { parentPort, workerData } from 'node:worker_threads';
import { joinThreadGroup } from '../../src/parallel/threads.js';
import { scenarios } from './dist-scenarios.js';

const { groupId, rank, name, timeout } = workerData as { groupId: number; rank: number; name: string; timeout: number };
const group = joinThreadGroup(groupId, rank, timeout);
const abortGroup = (): Promise<void> =>
  new Promise((resolve) => {
    parentPort!.once('message', () => resolve());
    parentPort!.postMessage({ abortGroup: true });
  });
const result = await scenarios[name]!(group, { abortGroup });
if (name !== 'leave' || rank !== 1) await group.close();
parentPort!.postMessage({ result });
