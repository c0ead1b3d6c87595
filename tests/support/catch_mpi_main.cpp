// Catch2 main for tests run under mpiexec: MPI is initialised around the session and
// only rank 0 reports, while every rank's failure still fails the test (non-zero exit).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <mpi.h>

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  Catch::Session session;
  if (int rc = session.applyCommandLine(argc, argv)) { MPI_Finalize(); return rc; }
  int failed = session.run();
  int any_failed = 0;
  MPI_Allreduce(&failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (failed) std::fprintf(stderr, "rank %d: %d test failure(s)\n", rank, failed);
  MPI_Finalize();
  return any_failed ? 1 : 0;
}
