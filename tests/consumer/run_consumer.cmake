# cmake -P script behind the halo_consumer_project test. The prefix and the consumer's build
# folder are wiped first so nothing from an earlier run (or from the build tree) can stand
# in for what the install provides.
foreach(v HALO_BUILD_DIR PREFIX WORK_DIR SOURCE_DIR CXX_COMPILER)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_consumer.cmake: -D${v}=... is required")
  endif()
endforeach()

function(run_step what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer test: ${what} failed (exit ${rc})\n"
                        "command: ${ARGN}\n--- stdout ---\n${out}\n--- stderr ---\n${err}")
  endif()
  message(STATUS "consumer test: ${what} ok")
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${PREFIX}" "${WORK_DIR}")

# cmake --install copies every installable target (examples, tools), so the whole build
# must be complete: `cmake --build <build dir>` before ctest.
run_step("install into ${PREFIX} (needs a complete build)" ${CMAKE_COMMAND} --install "${HALO_BUILD_DIR}" --prefix "${PREFIX}")

foreach(f include/halo/config.hpp include/halo/tensor/tensor.hpp)
  if(NOT EXISTS "${PREFIX}/${f}")
    message(FATAL_ERROR "consumer test: ${f} is missing from the installed tree ${PREFIX}")
  endif()
endforeach()
file(GLOB_RECURSE halo_config "${PREFIX}/*/HaloConfig.cmake")
file(GLOB_RECURSE halo_version "${PREFIX}/*/HaloConfigVersion.cmake")
if(NOT halo_config OR NOT halo_version)
  message(FATAL_ERROR "consumer test: HaloConfig.cmake or HaloConfigVersion.cmake not installed under ${PREFIX}")
endif()

# Only the install prefix is given: the consumer must not see the source or build tree.
set(build_type_arg)
if(BUILD_TYPE)
  set(build_type_arg -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
endif()
run_step("configure the consumer"
         ${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}"
         -DCMAKE_PREFIX_PATH=${PREFIX} -DCMAKE_CXX_COMPILER=${CXX_COMPILER} ${build_type_arg})
run_step("build the consumer" ${CMAKE_COMMAND} --build "${WORK_DIR}")
execute_process(COMMAND "${WORK_DIR}/halo-consumer" WORKING_DIRECTORY "${WORK_DIR}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer test: halo-consumer exited ${rc}\n${out}\n${err}")
endif()
message(STATUS "consumer test: ${out}")

# A user program trains on 2 ranks from arrays in memory (Dataset interface, Trainer::step).
if(MPIEXEC)
  string(REPLACE "|" ";" launcher "${MPIEXEC}")
  run_step("train from memory on 2 ranks" ${launcher} "${WORK_DIR}/halo-consumer-train")
  message(STATUS "consumer test: ${step_output}")
endif()
