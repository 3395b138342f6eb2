/** A worker thread running runRank (train-rank.ts) as one rank of a `threads` group. */
import { parentPort, workerData } from 'node:worker_threads';
import { joinThreadCommunicator } from '../../src/parallel/threads.js';
import { runRank, type RankSpec } from './train-rank.js';

const { groupId, rank, spec } = workerData as { groupId: number; rank: number; spec: RankSpec };
const comm = joinThreadCommunicator(groupId, rank, 60);
const result = await runRank(comm, spec);
await comm.close();
parentPort!.postMessage(result);
