# dist.instances (MLPerf HPC's throughput mode): 4 ranks (oversubscribed) as 2 instances of 2
# ranks each train two models concurrently, each with its own seed (training.seed + instance),
# checkpoint, metrics and MLPerf log tagged .instance<k>; both logs pass the compliance
# checker but for the unreached target; world rank 0 prints the throughput line. A count of
# instances that does not divide the ranks is refused naming the key.
include(${SRC}/common.cmake)
set(d ${WORK}/throughput)
file(REMOVE_RECURSE ${d})
file(MAKE_DIRECTORY ${d})
# The suite launches 2 ranks: this test needs 4.
list(FIND MPI "2" _np)
list(REMOVE_AT MPI ${_np})
list(INSERT MPI ${_np} 4)
run_driver(throughput dist.instances=2 training.epochs=1 data.batch_size=8 training.seed=5
           checkpoint.path=${d}/ckpt.h5 output.metrics=${d}/metrics.jsonl output.mllog=${d}/run.mllog)
expect_in_log(throughput
  "instance 0: time to train: [0-9.]+ s" "instance 1: time to train: [0-9.]+ s"
  "throughput: instances=2 models_per_min=[0-9]*[1-9][0-9]*\\.[0-9]+ \\(2 finished, 0 reached the target[^)]*\\) time_to_train_s min/median/max=[0-9.]+/[0-9.]+/[0-9.]+")
foreach(k 0 1)
  foreach(f ckpt.instance${k}.h5 metrics.instance${k}.jsonl run.instance${k}.mllog)
    if(NOT EXISTS ${d}/${f})
      message(FATAL_ERROR "instance ${k} did not write ${d}/${f}")
    endif()
  endforeach()
endforeach()
if(EXISTS ${d}/ckpt.h5 OR EXISTS ${d}/metrics.jsonl OR EXISTS ${d}/run.mllog)
  message(FATAL_ERROR "an untagged file was written beside the instances' in ${d}")
endif()
# Each instance trained the whole epoch on its own 2 ranks (global batch 8: 32 steps) from its
# own seed: different losses.
run_python(-c "
import json, sys
r = [json.loads(open('${d}/metrics.instance%d.jsonl' % k).readline()) for k in (0, 1)]
print(r)
assert all(x['step'] == 32 and x['train_samples'] == 256 for x in r), 'an instance did not train a full epoch'
assert r[0]['train_loss'] != r[1]['train_loss'], 'the two instances trained the same model'
")
foreach(k 0 1)
  math(EXPR seed "5 + ${k}")
  run_python(${SUPPORT}/check_mllog.py ${d}/run.instance${k}.mllog --status aborted --expect seed=${seed}
             --expect instance=${k} --count epoch_start=1 --count run_start=1
             --allow "Failed checks for eval_error : v\\['value'\\] <= 0.124")
endforeach()

# 2 ranks cannot make 3 equal instances.
list(REMOVE_AT MPI ${_np})
list(INSERT MPI ${_np} 2)
run_driver_fails(instances_refused dist.instances=3 checkpoint.path=
                 EXPECT "dist.instances \\(from the command line[^\n]* is 3: it must divide the 2 ranks of the job")
