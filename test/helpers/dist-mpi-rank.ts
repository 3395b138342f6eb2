/** `mpirun -np N node dist-mpi-rank.js SPEC.json OUT_DIR`: runRank as one rank of the MPI world; writes OUT_DIR/rank-<r>.json. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openMpiGroup } from '../../src/dist/mpi.js';
import { runRank, type RankSpec } from './dist-rank.js';

const [specPath, outDir] = process.argv.slice(2);
const group = openMpiGroup(60);
const result = await runRank(group, JSON.parse(readFileSync(specPath!, 'utf8')) as RankSpec);
writeFileSync(join(outDir!, `rank-${group.rank}.json`), JSON.stringify(result));
await group.close();
