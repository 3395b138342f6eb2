// MPI build flags for binding.gyp: `node mpi-config.mjs available` (1 or 0), `cflags`, `libs`.
// MPI is compiled into the addon only when its header can be found (through `mpicc --showme`, as
// Open MPI and MPICH provide, or pkg-config); ADABATCH_NO_MPI=1 builds without it. The addon builds
// and loads either way; without MPI, only the `mpi` process group is unavailable.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

function probe() {
  if (process.env.ADABATCH_NO_MPI === '1') return null;
  let compile = run('mpicc', ['--showme:compile']);
  let link = run('mpicc', ['--showme:link']);
  if (compile === null || link === null) {
    // MPICH's mpicc has no --showme: fall back to pkg-config.
    for (const pkg of ['ompi-c', 'ompi', 'mpich', 'mpi']) {
      const c = run('pkg-config', ['--cflags', pkg]);
      const l = run('pkg-config', ['--libs', pkg]);
      if (c !== null && l !== null) {
        compile = c;
        link = l;
        break;
      }
    }
  }
  if (compile === null || link === null) return null;
  const cflags = compile.split(/\s+/).filter(Boolean);
  const includeDirs = cflags.filter((f) => f.startsWith('-I')).map((f) => f.slice(2));
  if (![...includeDirs, '/usr/include', '/usr/local/include'].some((d) => existsSync(join(d, 'mpi.h')))) return null;
  const libs = link.split(/\s+/).filter(Boolean);
  // Non-standard install prefixes: let the addon find libmpi at run time without LD_LIBRARY_PATH.
  const rpaths = libs.filter((f) => f.startsWith('-L')).map((f) => `-Wl,-rpath,${f.slice(2)}`);
  return { cflags, libs: [...libs, ...rpaths] };
}

const what = process.argv[2];
const found = probe();
if (what === 'available') console.log(found ? '1' : '0');
else if (what === 'cflags') console.log(found ? found.cflags.join(' ') : '');
else if (what === 'libs') console.log(found ? found.libs.join(' ') : '');
else {
  console.error('usage: node mpi-config.mjs available|cflags|libs');
  process.exit(2);
}
