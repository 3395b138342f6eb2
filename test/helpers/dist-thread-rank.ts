/** A worker thread running runRank (dist-rank.ts) as one rank of a `threads` group. */
import { parentPort, workerData } from 'node:worker_threads';
import { joinThreadGroup } from '../../src/dist/threads.js';
import { runRank, type RankSpec } from './dist-rank.js';

const { groupId, rank, spec } = workerData as { groupId: number; rank: number; spec: RankSpec };
const group = joinThreadGroup(groupId, rank, 60);
const result = await runRank(group, spec);
await group.close();
parentPort!.postMessage(result);
