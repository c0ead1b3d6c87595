# Small DeepCAM-like data sets for the driver tests (generated once per build tree); the
# uneven ones (13 and 5 fields) divide neither by 2 ranks nor by the batch.
foreach(set train:128:1 validation:16:2 uneven_train:13:3 uneven_validation:5:4)
  string(REPLACE ":" ";" p ${set})
  list(GET p 0 name)
  list(GET p 1 n)
  list(GET p 2 seed)
  if(NOT EXISTS ${WORK}/data64/${name}/stats.h5)
    execute_process(COMMAND ${HALO_DATA} generate --format deepcam --out ${WORK}/data64/${name}
                            --samples ${n} --height 64 --width 96 --seed ${seed} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "halo-data generate failed (${rc})")
    endif()
  endif()
endforeach()
