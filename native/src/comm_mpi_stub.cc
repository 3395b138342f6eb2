// The `mpi` transport when the addon was built without MPI (mpi.h not found at build time): the
// addon still builds and loads; asking for an MPI communicator explains what to install.
#include "comm.h"

namespace adabatch {
namespace comm {
namespace mpi {

bool compiled() { return false; }

std::unique_ptr<Transport> open() {
  throw CommError(kFailed,
                  "this adabatch addon was built without MPI support (mpi.h was not found when it was built): install an MPI "
                  "(Debian: apt-get install openmpi-bin libopenmpi-dev) and run `npm run build:native`");
}

std::string version() { return ""; }

}  // namespace mpi
}  // namespace comm
}  // namespace adabatch
