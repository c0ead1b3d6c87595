# Small CosmoFlow-like data sets for the driver tests (generated once per build tree); the
# uneven ones (33 and 7 volumes) divide neither by 2 ranks nor by the batch.
foreach(set train:256:1 validation:32:2 uneven_train:33:3 uneven_validation:7:4)
  string(REPLACE ":" ";" p ${set})
  list(GET p 0 name)
  list(GET p 1 n)
  list(GET p 2 seed)
  if(NOT EXISTS ${WORK}/data16/${name}/cosmo-00000.h5)
    execute_process(COMMAND ${HALO_DATA} generate --format cosmoflow-mlperf --out ${WORK}/data16/${name}
                            --samples ${n} --size 16 --seed ${seed} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "halo-data generate failed (${rc})")
    endif()
  endif()
endforeach()
