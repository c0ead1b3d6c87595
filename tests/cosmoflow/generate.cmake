# Small CosmoFlow-like data sets for the driver tests (generated once per build tree).
foreach(set train:256:1 validation:32:2)
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
