# Keeps include/halo/halo.hpp equal to "every public header", since areas add headers
# independently and a hand-kept list drifts (it once reached 56 of 72).
#
#   cmake -DMODE=check -P tests/headers/umbrella.cmake   # fails, naming headers missing
#                                                        # from halo.hpp or listed but gone
#   cmake -DMODE=write -P tests/headers/umbrella.cmake   # rewrites halo.hpp from the tree
#
# halo.hpp includes each header directly (not through another header) so that the check
# does not depend on what other headers happen to include today.
cmake_minimum_required(VERSION 3.20)
get_filename_component(root "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)
set(umbrella "${root}/include/halo/halo.hpp")
if(NOT DEFINED MODE)
  set(MODE check)
endif()

# Headers left out of the umbrella on purpose, each with its reason.
#   interop/kokkos.hpp: includes Kokkos_Core.hpp; only Kokkos codes include it, by name.
set(not_in_umbrella halo/halo.hpp halo/interop/kokkos.hpp)

# Areas in the order the umbrella lists them (lower layers first); a new folder not named
# here goes after them, so adding an area needs no change to this file.
set(area_order tensor util ops nn optim dist data train models cuda)

file(GLOB_RECURSE headers RELATIVE "${root}/include" "${root}/include/halo/*.hpp")
list(SORT headers)
list(REMOVE_ITEM headers ${not_in_umbrella})

if(MODE STREQUAL "write")
  set(areas ${area_order})
  set(top "")  # headers directly in include/halo/ come first, after config.hpp
  foreach(h ${headers})
    if(NOT h MATCHES "^halo/[^/]+/")
      string(APPEND top "#include \"${h}\"\n")
      continue()
    endif()
    string(REGEX REPLACE "^halo/([^/]+)/.*" "\\1" area "${h}")
    if(NOT area IN_LIST areas)
      list(APPEND areas ${area})
    endif()
  endforeach()
  set(text "// The whole public API in one include, for drivers and quick experiments. Libraries that
// link Halo into larger codes may include the per-area headers instead. Every header here
// compiles with only MPI (and, in CUDA builds, the CUDA runtime) on the include path.
//
// Generated: regenerate with `cmake -DMODE=write -P tests/headers/umbrella.cmake` after adding
// or removing a public header (the test halo_umbrella_complete fails until then).
#pragma once

#include \"halo/config.hpp\"
${top}")
  foreach(area ${areas})
    set(block "")
    foreach(h ${headers})
      if(h MATCHES "^halo/${area}/")
        string(APPEND block "#include \"${h}\"\n")
      endif()
    endforeach()
    if(block)
      string(APPEND text "\n${block}")
    endif()
  endforeach()
  file(WRITE "${umbrella}" "${text}")
  message(STATUS "wrote ${umbrella}")
  return()
endif()

if(NOT MODE STREQUAL "check")
  message(FATAL_ERROR "umbrella.cmake: MODE must be check or write, got '${MODE}'")
endif()

file(STRINGS "${umbrella}" lines REGEX "^#include \"halo/")
set(included "")
foreach(l ${lines})
  string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" h "${l}")
  list(APPEND included "${h}")
endforeach()

set(missing "")
foreach(h ${headers})
  if(NOT h IN_LIST included)
    list(APPEND missing "${h}")
  endif()
endforeach()
set(stale "")
foreach(h ${included})
  if(NOT h STREQUAL "halo/config.hpp" AND NOT EXISTS "${root}/include/${h}")
    list(APPEND stale "${h}")
  endif()
endforeach()

if(missing OR stale)
  set(msg "include/halo/halo.hpp is out of date with include/halo/:\n")
  foreach(h ${missing})
    string(APPEND msg "  not included: ${h}\n")
  endforeach()
  foreach(h ${stale})
    string(APPEND msg "  included but no such header: ${h}\n")
  endforeach()
  string(APPEND msg "Regenerate it: cmake -DMODE=write -P tests/headers/umbrella.cmake\n"
                    "(or, for a header that must stay out, add it with its reason to not_in_umbrella there).")
  message(FATAL_ERROR "${msg}")
endif()
list(LENGTH headers n)
message(STATUS "halo.hpp includes all ${n} public headers")
