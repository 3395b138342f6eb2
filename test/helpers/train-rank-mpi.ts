/** `mpirun -np N node train-rank-mpi.js SPEC.json OUT_DIR`: runRank as one rank of the MPI world; writes OUT_DIR/rank-<r>.json. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openMpiCommunicator } from '../../src/parallel/mpi.js';
import { runRank, type RankSpec } from './train-rank.js';

const [specPath, outDir] = process.argv.slice(2);
const comm = openMpiCommunicator(60);
const result = await runRank(comm, JSON.parse(readFileSync(specPath!, 'utf8')) as RankSpec);
writeFileSync(join(outDir!, `rank-${comm.rank}.json`), JSON.stringify(result));
await comm.close();
