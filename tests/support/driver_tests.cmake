# halo_add_driver_tests(<prefix> <driver target> <script>...): end-to-end tests of a training
# driver on 2 MPI ranks. Adds <prefix>_data, which runs the directory's generate.cmake once
# (a fixture), and one test <prefix>_<script> per <script>.cmake of the directory, run in
# CMake script mode with MPI (the launcher, '|'-separated), DRIVER, PYTHON, WORK, SRC, NAME
# and SUPPORT (this folder, for driver_run.cmake) defined.
function(halo_add_driver_tests prefix driver)
  set(work ${CMAKE_CURRENT_BINARY_DIR}/work)
  set(env "OMP_NUM_THREADS=1;OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMPI_MCA_rmaps_base_oversubscribe=1")
  set(mpi ${HALO_MPIEXEC} ${MPIEXEC_NUMPROC_FLAG} 2 ${HALO_MPIEXEC_FLAGS})
  string(REPLACE ";" "|" mpi "${mpi}")
  add_test(NAME ${prefix}_data
           COMMAND ${CMAKE_COMMAND} -DHALO_DATA=$<TARGET_FILE:halo-data> -DWORK=${work}
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/generate.cmake)
  set_tests_properties(${prefix}_data PROPERTIES FIXTURES_SETUP halo_${prefix}_data)
  foreach(t ${ARGN})
    add_test(NAME ${prefix}_${t}
             COMMAND ${CMAKE_COMMAND} -DMPI=${mpi} -DDRIVER=$<TARGET_FILE:${driver}> -DPYTHON=${HALO_TEST_PYTHON}
                     -DWORK=${work} -DSRC=${CMAKE_CURRENT_SOURCE_DIR} -DNAME=${t}
                     -DSUPPORT=${CMAKE_CURRENT_FUNCTION_LIST_DIR} -P ${CMAKE_CURRENT_SOURCE_DIR}/${t}.cmake)
    set_tests_properties(${prefix}_${t} PROPERTIES FIXTURES_REQUIRED halo_${prefix}_data LABELS mpi
                         PROCESSORS 2 TIMEOUT 300 ENVIRONMENT "${env}")
  endforeach()
endfunction()
