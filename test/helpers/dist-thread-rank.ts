/** A worker thread running runRank (dist-rank.ts) as one rank of a `threads` group. */
import { parentPort, workerData } from 'node:worker_threads';
import { joinThreadGroup } from '../../src/parallel/threads.js';
import { runRank, type RankSpec } from './dist-rank.js';

const { groupId, rank, spec } = workerData as { groupId: number; rank: number; spec: RankSpec };
const comm = joinThreadGroup(groupId, rank, 60);
const result = await runRank(comm, spec);
await comm.close();
parentPort!.postMessage(result);
