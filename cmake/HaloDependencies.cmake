# How Halo's configure treats what it depends on.
#
# Required packages (MPI, HDF5, BLAS, yaml-cpp, nlohmann-json, OpenMP): halo_require() stops
# configure with the Debian package and the Spack spec that provide the missing one.
#
# Optional features (oneDNN, CUDA with cuDNN, NCCL, Kokkos, Doxygen): HALO_ENABLE_<F> is AUTO,
# ON or OFF. AUTO (the default) turns the feature on when its packages load and off, with
# one line saying which package turns it on, when they are missing or broken; it never stops
# configure. ON means the caller requires it (Spack's +variant does): missing is an error.
#
# "Broken" is real: Debian 12's dnnl-config.cmake calls find_package(OpenCL REQUIRED), which
# libdnnl-dev does not pull in, so a plain find_package(dnnl QUIET) still stops configure.
# Such config files are therefore loaded by halo_probe_package in a separate CMake run first.

# halo_require(<Package> DEBIAN <packages> SPACK <spec> [ARGS <find_package arguments>])
macro(halo_require _hr_name)
  cmake_parse_arguments(_hr "" "DEBIAN;SPACK" "ARGS" ${ARGN})
  find_package(${_hr_name} ${_hr_ARGS})
  if(NOT ${_hr_name}_FOUND)
    message(FATAL_ERROR "Halo requires ${_hr_name}, which was not found.\n"
      "  Debian/Ubuntu: apt-get install ${_hr_DEBIAN}\n"
      "  Spack:         spack install ${_hr_SPACK}   (then spack load it)\n"
      "  Elsewhere:     point CMAKE_PREFIX_PATH or ${_hr_name}_ROOT at its installation.")
  endif()
endmacro()

# halo_probe_package(<Package> <result_var> [find_package arguments]): sets <result_var> to
# TRUE when find_package(<Package> <arguments> REQUIRED) succeeds in a separate CMake run,
# FALSE (never a configure error: try_compile would turn the sub-project's error into ours)
# otherwise. Its output is kept in <build>/CMakeFiles/halo-probe/<Package>.log. Costs a
# compiler check, a few seconds.
function(halo_probe_package package result)
  set(dir ${CMAKE_BINARY_DIR}/CMakeFiles/halo-probe/${package})
  file(REMOVE_RECURSE ${dir})
  file(WRITE ${dir}/src/CMakeLists.txt
    "cmake_minimum_required(VERSION 3.20)\n"
    "project(halo_probe LANGUAGES C CXX)\n"
    "set(CMAKE_CXX_EXTENSIONS OFF)\n"
    "string(REPLACE \"|\" \";\" CMAKE_PREFIX_PATH \"\${HALO_PROBE_PREFIX_PATH}\")\n"
    "find_package(${package} ${ARGN} REQUIRED)\n")
  # A list cannot cross the command line intact: '|' stands for ';' on the way in.
  string(REPLACE ";" "|" prefix_path "${CMAKE_PREFIX_PATH}")
  set(args -S ${dir}/src -B ${dir}/build -G "${CMAKE_GENERATOR}"
      "-DHALO_PROBE_PREFIX_PATH=${prefix_path}"
      "-DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}" "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}")
  foreach(hint ${package}_DIR ${package}_ROOT)
    if(${hint})
      list(APPEND args "-D${hint}=${${hint}}")
    endif()
  endforeach()
  execute_process(COMMAND ${CMAKE_COMMAND} ${args} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE log ERROR_VARIABLE log)
  file(WRITE ${CMAKE_BINARY_DIR}/CMakeFiles/halo-probe/${package}.log "${log}")
  if(rc EQUAL 0)
    set(${result} TRUE PARENT_SCOPE)
  else()
    set(${result} FALSE PARENT_SCOPE)
  endif()
endfunction()

# halo_feature(<F> <description>): the AUTO|ON|OFF cache entry HALO_ENABLE_<F>.
function(halo_feature feature description)
  set(HALO_ENABLE_${feature} AUTO CACHE STRING "${description}: AUTO (on when found), ON (required) or OFF")
  set_property(CACHE HALO_ENABLE_${feature} PROPERTY STRINGS AUTO ON OFF)
endfunction()

# halo_feature_wanted(<F> <out>): FALSE when the caller turned <F> off.
function(halo_feature_wanted feature out)
  set(value "${HALO_ENABLE_${feature}}")
  if(value STREQUAL "AUTO" OR value)
    set(${out} TRUE PARENT_SCOPE)
  else()
    set(${out} FALSE PARENT_SCOPE)
  endif()
endfunction()

# halo_feature_resolve(<F> <found> <why-missing> <what-turns-it-on>): replaces AUTO|ON|OFF by
# ON or OFF (a normal variable shadowing the cache entry, so every `if(HALO_ENABLE_<F>)` below
# sees a boolean), and records one summary line.
function(halo_feature_resolve feature found why fix)
  set(value "${HALO_ENABLE_${feature}}")
  if(NOT (value STREQUAL "AUTO" OR value))
    set(state OFF)
    set(line "OFF (HALO_ENABLE_${feature}=${value})")
  elseif(found)
    set(state ON)
    set(line "ON")
  elseif(value STREQUAL "AUTO")
    set(state OFF)
    set(line "OFF, ${why} (to turn it on: ${fix})")
  else()
    message(FATAL_ERROR "HALO_ENABLE_${feature}=${value} but ${why}.\n  To provide it: ${fix}\n"
                        "  Or configure with -DHALO_ENABLE_${feature}=AUTO (off when missing) or OFF.")
  endif()
  set(HALO_ENABLE_${feature} ${state} PARENT_SCOPE)
  set_property(GLOBAL APPEND PROPERTY HALO_FEATURE_SUMMARY "${feature}: ${line}")
endfunction()

# halo_config_package_feature(<F> <Package> <what-turns-it-on>): the feature <F> of a CMake
# config package: probed (halo_probe_package), then found for real, then resolved. A macro,
# so the package's variables and targets land in the caller's scope.
macro(halo_config_package_feature _hf_feature _hf_package _hf_fix)
  set(_hf_found FALSE)
  halo_feature_wanted(${_hf_feature} _hf_wanted)
  if(_hf_wanted)
    halo_probe_package(${_hf_package} _hf_found CONFIG)
    if(_hf_found)
      find_package(${_hf_package} CONFIG REQUIRED)
    endif()
  endif()
  halo_feature_resolve(${_hf_feature} "${_hf_found}"
    "the CMake package ${_hf_package} is missing or failed to load (log: CMakeFiles/halo-probe/${_hf_package}.log)"
    "${_hf_fix}")
endmacro()

# One block at the end of configure: what this build contains and why.
function(halo_feature_summary)
  get_property(lines GLOBAL PROPERTY HALO_FEATURE_SUMMARY)
  message(STATUS "Halo ${PROJECT_VERSION} optional features:")
  foreach(line ${lines})
    message(STATUS "  ${line}")
  endforeach()
endfunction()
