# mpiexec -n 4 halo-scaling run on a small CosmoFlow, then report and project from its records;
# and a DeepCAM strong-scaling run on 2 ranks, and a global batch the ranks do not divide.
string(REPLACE "|" ";" MPI "${MPI}")
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

function(run log)
  cmake_parse_arguments(R "FAILS" "" "EXPECT" ${ARGN})
  execute_process(COMMAND ${R_UNPARSED_ARGUMENTS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out
                  WORKING_DIRECTORY ${WORK})
  file(WRITE ${WORK}/${log}.log "${out}")
  message("---- ${log}\n${out}")
  if(R_FAILS AND rc EQUAL 0)
    message(FATAL_ERROR "${log}: succeeded but should have been refused")
  elseif(NOT R_FAILS AND NOT rc EQUAL 0)
    message(FATAL_ERROR "${log}: failed (${rc})")
  endif()
  foreach(re ${R_EXPECT})
    if(NOT out MATCHES "${re}")
      message(FATAL_ERROR "${log}: the output does not say '${re}'")
    endif()
  endforeach()
endfunction()

set(num "[0-9.]+")
run(cosmoflow ${MPI} -n 4 ${SCALING} run --workload cosmoflow --size 32 --batch 2 --warmup 1 --steps 3
    --out ${WORK}/cosmoflow.jsonl --trace ${WORK}/trace.json
    EXPECT "\nscaling: ranks=1,2,4 samples_per_s=${num},${num},${num} efficiency=1.000,${num},${num}\n?$")
run(check ${PYTHON} ${SRC}/check_records.py ${WORK}/cosmoflow.jsonl 1,2,4 2 weak)
run(check_trace ${PYTHON} ${SUPPORT}/check_trace.py ${WORK}/trace.json 4 step)
run(report ${SCALING} report ${WORK}/cosmoflow.jsonl --out ${WORK}/report
    EXPECT "\\| 4 \\| 1 \\| 8 \\|" "report: table=")
foreach(f scaling.md efficiency.png step_split.png step_spread.png)
  if(NOT EXISTS ${WORK}/report/${f})
    message(FATAL_ERROR "halo-scaling report did not write ${f}")
  endif()
endforeach()
run(project ${SCALING} project --profile ${WORK}/cosmoflow.jsonl --machine ${MACHINES}/example-gpu-cluster.yaml
    --nodes 1,64,8192 EXPECT "\nprojection: nodes=1,64,8192 efficiency=${num},${num},${num}\n?$")
run(deepcam ${MPI} -n 2 ${SCALING} run --workload deepcam --mode strong --global-batch 2 --height 32 --width 48
    --channel-scale 0.125 --middle-blocks 1 --warmup 1 --steps 2 --out ${WORK}/deepcam.jsonl
    EXPECT "scaling: ranks=1,2 samples_per_s=${num},${num} efficiency=1.000,${num}")
run(check_deepcam ${PYTHON} ${SRC}/check_records.py ${WORK}/deepcam.jsonl 1,2 2 strong)
# Spatial parallelism: every sample split over 2 ranks, 1 and 2 replicas.
run(spatial ${MPI} -n 4 ${SCALING} run --workload cosmoflow --size 32 --batch 2 --spatial 2x1x1 --warmup 1 --steps 2
    --out ${WORK}/spatial.jsonl
    EXPECT "2 replica\\(s\\) of 2 ranks each" "\nscaling: ranks=2,4 samples_per_s=${num},${num} efficiency=1.000,${num}\n?$")
run(check_spatial ${PYTHON} ${SRC}/check_records.py ${WORK}/spatial.jsonl 2,4 2 weak 2)
run(bad_spatial ${MPI} -n 2 ${SCALING} run --workload deepcam --spatial 2 FAILS
    EXPECT "--spatial is for --workload cosmoflow")
run(bad_batch ${MPI} -n 2 ${SCALING} run --mode strong --global-batch 3 FAILS
    EXPECT "--global-batch 3 does not divide over 2 ranks")
run(bad_machine ${SCALING} project --profile ${WORK}/cosmoflow.jsonl --machine ${SRC}/CMakeLists.txt FAILS
    EXPECT "CMakeLists.txt")
