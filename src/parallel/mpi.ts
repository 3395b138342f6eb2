/**
 * The `mpi` transport: one process per rank, started by mpirun (or srun); rank and size come
 * from MPI itself. MPI is initialised on the communicator's own native thread (the only thread that
 * calls MPI, so MPI_THREAD_FUNNELED suffices and is checked); collectives are non-blocking MPI calls
 * polled on that thread. A collective past the timeout, or abort(), ends the whole job (MPI_Abort).
 */
import { UserError } from '../util/errors.js';
import { commAddon, Communicator } from './native-communicator.js';

/** Whether the addon was built with MPI (mpi.h found at build time), and the library's version. */
export function mpiSupport(): { compiled: boolean; version: string } {
  return commAddon().mpi;
}

let opened = false;

/** Initialises MPI and returns this rank's world communicator. Once per process (MPI cannot be initialised twice). */
export function openMpiCommunicator(timeoutSeconds: number): Communicator {
  const addon = commAddon();
  if (!addon.mpi.compiled) {
    throw new UserError('this adabatch build has no MPI support (mpi.h was not found when the addon was built): install an MPI (Debian: apt-get install openmpi-bin libopenmpi-dev) and run `npm run build:native`');
  }
  if (opened) throw new Error('the MPI process group was already opened in this process');
  opened = true;
  return new Communicator('mpi', new addon.Communicator('mpi', 0, 0, timeoutSeconds));
}
