# Included right after find_package(Kokkos), by Halo's build and by HaloConfig.cmake.
# Some Kokkos packages (Debian's Trilinos build of Kokkos 3.4) point Kokkos::kokkos at a
# <prefix>/include that does not exist, while the headers sit in <prefix>/include/trilinos
# as their Kokkos_INCLUDE_DIRS says. CMake rejects imported targets naming missing
# directories, so those are dropped and Kokkos_INCLUDE_DIRS is used when the target's own
# directories lack Kokkos_Core.hpp. Correct Kokkos installations are left as they are.
if(TARGET Kokkos::kokkos)
  get_target_property(_halo_kokkos_incs Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
  set(_halo_kept)
  set(_halo_has_core FALSE)
  foreach(_halo_dir IN LISTS _halo_kokkos_incs)
    if(_halo_dir MATCHES "\\$<" OR EXISTS "${_halo_dir}")
      list(APPEND _halo_kept "${_halo_dir}")
    endif()
    if(EXISTS "${_halo_dir}/Kokkos_Core.hpp")
      set(_halo_has_core TRUE)
    endif()
  endforeach()
  if(NOT _halo_has_core)
    foreach(_halo_dir IN LISTS Kokkos_INCLUDE_DIRS)
      get_filename_component(_halo_dir "${_halo_dir}" ABSOLUTE)
      if(EXISTS "${_halo_dir}/Kokkos_Core.hpp")
        list(APPEND _halo_kept "${_halo_dir}")
      endif()
    endforeach()
  endif()
  if(NOT "${_halo_kept}" STREQUAL "${_halo_kokkos_incs}")
    set_target_properties(Kokkos::kokkos PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_halo_kept}")
  endif()
  unset(_halo_kokkos_incs)
  unset(_halo_kept)
  unset(_halo_has_core)
  unset(_halo_dir)
endif()
