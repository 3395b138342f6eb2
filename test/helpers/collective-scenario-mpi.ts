/** `mpirun -np N node collective-scenario-mpi.js NAME OUT_DIR`: one collective scenario per rank; writes OUT_DIR/rank-<r>.json. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openMpiCommunicator } from '../../src/parallel/mpi.js';
import { scenarios } from './collective-scenarios.js';

const [name, outDir] = process.argv.slice(2);
const comm = openMpiCommunicator(60);
const result = await scenarios[name!]!(comm, {});
writeFileSync(join(outDir!, `rank-${comm.rank}.json`), JSON.stringify({ rank: comm.rank, size: comm.size, result }));
await comm.close();
