# gpu_check_dry_run (see CMakeLists.txt): pack, then run --dry-run; every step must pass and
# the summary must name each GPU step as left for a GPU.
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${ROOT}/scripts/gpu-check.sh pack --build ${BUILD} --out ${WORK}/bundle --xz 0 --no-build
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gpu-check.sh pack failed (${rc})")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E env HALO_GPU_WORK=${WORK}/unpacked
                        ${ROOT}/scripts/gpu-check.sh run --dry-run --bundle ${WORK}/bundle --out ${WORK}/out
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gpu-check.sh run --dry-run failed (${rc}); see above")
endif()
file(READ ${WORK}/out/summary.txt summary)
foreach(re "DRY RUN" "PASS .* every program finds its libraries" "PASS .* mpiexec from the bundle starts 2 ranks"
           "PASS .* ctest lists the [0-9]+ gpu tests" "PASS .* the gpu tests' data sets are generated"
           "PASS .* 2 ranks train CosmoFlow on the CPU" "PASS .* a GPU test program loads its CUDA libraries"
           "SKIP .* ctest -L gpu \\(dry run" "SKIP .* halo-bench-cosmoflow --device cuda bf16 batch 4 \\(dry run")
  if(NOT summary MATCHES "${re}")
    message(FATAL_ERROR "the dry run's summary does not say '${re}':\n${summary}")
  endif()
endforeach()
if(summary MATCHES "FAIL")
  message(FATAL_ERROR "a step failed:\n${summary}")
endif()
foreach(f gpu-check.log summary.txt results.tar.gz)
  if(NOT EXISTS ${WORK}/out/${f})
    message(FATAL_ERROR "the dry run did not write ${f}")
  endif()
endforeach()
