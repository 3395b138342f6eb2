/** `mpirun -np N node dist-mpi-rank.js SPEC.json OUT_DIR`: runRank as one rank of the MPI world; writes OUT_DIR/rank-<r>.json. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openMpiGroup } from '../../src/parallel/mpi.js';
import { runRank, type RankSpec } from './dist-rank.js';

const [specPath, outDir] = process.argv.slice(2);
const comm = openMpiGroup(60);
const result = await runRank(comm, JSON.parse(readFileSync(specPath!, 'utf8')) as RankSpec);
writeFileSync(join(outDir!, `rank-${comm.rank}.json`), JSON.stringify(result));
await comm.close();
