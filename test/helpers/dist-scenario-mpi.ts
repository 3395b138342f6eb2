/** `mpirun -np N node dist-scenario-mpi.js NAME OUT_DIR`: one collective scenario per rank; writes OUT_DIR/rank-<r>.json. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openMpiGroup } from '../../src/parallel/mpi.js';
import { scenarios } from './dist-scenarios.js';

const [name, outDir] = process.argv.slice(2);
const group = openMpiGroup(60);
const result = await scenarios[name!]!(group, {});
writeFileSync(join(outDir!, `rank-${group.rank}.json`), JSON.stringify({ rank: group.rank, size: group.size, result }));
await group.close();
