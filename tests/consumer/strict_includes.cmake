# cmake -P script behind the halo_consumer_strict_includes test: a program that includes
# only halo/halo.hpp compiles against the INSTALLED headers with nothing but MPI's include
# directories (and the CUDA runtime's in CUDA builds) on the include path: no HDF5, no
# oneDNN, no yaml-cpp, no build or source tree. It compiles by hand, not through halo::halo,
# so what the CMake package would add cannot hide a header that leaks a dependency.
#
# Debian installs oneDNN, yaml-cpp, nlohmann-json and BLAS straight into /usr/include, where
# every compiler looks, so a missing include path cannot catch them: the compiler's list of
# the files it read (-MD) is also searched for private dependencies' headers. And the
# installed headers' text is searched for threads, locks and MPI internals declared in them.
#
# Inputs: -DHALO_BUILD_DIR -DPREFIX -DCXX_COMPILER -DSETTINGS (a file setting
# STRICT_INCLUDE_DIRS and STRICT_DEFINITIONS from MPI's, and CUDA's, targets).

cmake_minimum_required(VERSION 3.20)

foreach(v HALO_BUILD_DIR PREFIX CXX_COMPILER SETTINGS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "strict_includes.cmake: -D${v}=... is required")
  endif()
endforeach()
include("${SETTINGS}")

file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND ${CMAKE_COMMAND} --install "${HALO_BUILD_DIR}" --prefix "${PREFIX}"
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install into ${PREFIX} failed (needs a complete build):\n${err}")
endif()

set(flags -std=c++17 -fsyntax-only "-I${PREFIX}/include")
foreach(d ${STRICT_INCLUDE_DIRS})
  list(APPEND flags "-isystem" "${d}")
endforeach()
foreach(d ${STRICT_DEFINITIONS})
  list(APPEND flags "-D${d}")
endforeach()
set(work "${PREFIX}/strict")
file(MAKE_DIRECTORY "${work}")

# Headers of Halo's private dependencies, as paths in the compiler's dependency list.
set(private_header_regex
    "(/hdf5\\.h|/H5[A-Za-z]*public\\.h|/dnnl[^/]*\\.h(pp)?|/oneapi/.*|/yaml-cpp/.*|/nlohmann/.*|/cblas[^/]*\\.h|/omp\\.h|/cudnn[^/]*\\.h|/cublas[^/]*\\.h|/nccl\\.h)$")
# Declarations that belong in an Impl: threads, locks and MPI internals (MPI_Comm is API).
set(internals_regex "std::(thread|mutex|recursive_mutex|shared_mutex|condition_variable)[^_a-z]|MPI_(Op|Request|Datatype|Win)[^_a-zA-Z]")

# Compiles a translation unit made of `text`; sets `ok` and `problem` (the first error, or
# the private headers it read) in the caller.
function(check_tu name text)
  file(WRITE "${work}/${name}.cpp" "${text}")
  execute_process(COMMAND ${CXX_COMPILER} ${flags} -MD -MF "${work}/${name}.d" "${work}/${name}.cpp"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REGEX MATCH "[^\n]*error[^\n]*" first "${err}")
    if(NOT first)
      set(first "${err}")
    endif()
    set(ok FALSE PARENT_SCOPE)
    set(problem "${first}" PARENT_SCOPE)
    return()
  endif()
  file(READ "${work}/${name}.d" deps)
  string(REPLACE "\\\n" " " deps "${deps}")
  string(REGEX REPLACE "[ \t\n]+" ";" deps "${deps}")
  set(found "")
  foreach(d ${deps})
    if(d MATCHES "${private_header_regex}")
      list(APPEND found "${d}")
    endif()
  endforeach()
  if(found)
    list(REMOVE_DUPLICATES found)
    list(JOIN found ", " found)
    set(ok FALSE PARENT_SCOPE)
    set(problem "reads private dependencies' headers: ${found}" PARENT_SCOPE)
    return()
  endif()
  set(ok TRUE PARENT_SCOPE)
  set(problem "" PARENT_SCOPE)
endfunction()

# Code of an installed header (comments aside) that declares internals; empty when none.
function(scan_internals header out_var)
  file(READ "${PREFIX}/include/${header}" text)
  string(REGEX REPLACE "//[^\n]*" "" text "${text}")
  # Brackets and semicolons would split or join CMake list items; they are only shown.
  string(REGEX REPLACE "[][;]" " " text "${text}")
  string(REGEX MATCHALL "[^\n]*(${internals_regex})[^\n]*" lines "${text}")
  set(hits "")
  foreach(l IN LISTS lines)
    string(STRIP "${l}" l)
    string(APPEND hits "  ${header}: ${l}\n")
  endforeach()
  set(${out_var} "${hits}" PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE installed RELATIVE "${PREFIX}/include" "${PREFIX}/include/halo/*.hpp")
list(SORT installed)
list(REMOVE_ITEM installed halo/halo.hpp halo/interop/kokkos.hpp)

# Every installed public header not in `skip`, checked alone; one line per failure.
function(report_headers skip out_var)
  set(report "")
  foreach(h ${installed})
    if(h IN_LIST skip)
      continue()
    endif()
    string(REGEX REPLACE "[/.]" "_" stem "${h}")
    check_tu(${stem} "#include \"${h}\"\n")
    if(NOT ok)
      string(APPEND report "  ${h}: ${problem}\n")
    endif()
  endforeach()
  set(${out_var} "${report}" PARENT_SCOPE)
endfunction()

string(REPLACE ";" " " shown "${flags}")
set(internals "")
foreach(h ${installed})
  scan_internals(${h} hits)
  string(APPEND internals "${hits}")
endforeach()

check_tu(umbrella_only "#include \"halo/halo.hpp\"\nint main() { return 0; }\n")
if(NOT ok OR internals)
  set(msg "")
  if(NOT ok)
    report_headers("" report)
    string(APPEND msg "halo/halo.hpp does not compile with only MPI on the include path:\n  ${problem}\n"
                      "Public headers that fail alone:\n${report}"
                      "A public header includes a private dependency (HDF5, oneDNN, ...): hide it behind "
                      "a pimpl or a private header in src/.\nflags: ${shown}\n")
  endif()
  if(internals)
    string(APPEND msg "Public headers declare threads, locks or MPI internals (move them into an Impl):\n"
                      "${internals}")
  endif()
  message(FATAL_ERROR "${msg}")
endif()

message(STATUS "halo/halo.hpp compiles against ${PREFIX}/include with: ${shown}")
