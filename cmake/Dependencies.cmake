# Third-party dependencies, all from Debian packages (scripts/setup installs them).

# LLVM Support, linked statically. Only the headers and libLLVMSupport.a are used.
find_package(LLVM 14 REQUIRED CONFIG HINTS /usr/lib/llvm-14/lib/cmake/llvm)
add_library(mixtape_llvm INTERFACE)
target_include_directories(mixtape_llvm SYSTEM INTERFACE ${LLVM_INCLUDE_DIRS})
target_compile_definitions(mixtape_llvm INTERFACE ${LLVM_DEFINITIONS})
find_library(LLVM_SUPPORT_STATIC NAMES libLLVMSupport.a PATHS ${LLVM_LIBRARY_DIRS} NO_DEFAULT_PATH REQUIRED)
find_library(LLVM_DEMANGLE_STATIC NAMES libLLVMDemangle.a PATHS ${LLVM_LIBRARY_DIRS} NO_DEFAULT_PATH REQUIRED)
find_package(Threads REQUIRED)
find_package(ZLIB)
# LLVM's color detection calls terminfo: the development library, else the runtime one by
# its versioned name (machines without -dev packages), else a stub that reports no colors.
find_library(TERMINFO_LIB NAMES tinfo ncursesw ncurses libtinfo.so.6 libncursesw.so.6)
if(NOT TERMINFO_LIB)
  message(STATUS "terminfo not found: LLVM's diagnostics will not be colored")
  add_library(mixtape_terminfo_stub STATIC ${CMAKE_CURRENT_LIST_DIR}/terminfo_stub.c)
  set(TERMINFO_LIB mixtape_terminfo_stub)
endif()
target_link_libraries(mixtape_llvm INTERFACE ${LLVM_SUPPORT_STATIC} ${LLVM_DEMANGLE_STATIC} Threads::Threads ${CMAKE_DL_LIBS})
if(ZLIB_FOUND)
  target_link_libraries(mixtape_llvm INTERFACE ZLIB::ZLIB)
endif()
if(TERMINFO_LIB)
  target_link_libraries(mixtape_llvm INTERFACE ${TERMINFO_LIB})
endif()

# TOML++ (Debian ships it as a shared library).
find_package(tomlplusplus REQUIRED CONFIG)
get_target_property(_toml_inc tomlplusplus::tomlplusplus INTERFACE_INCLUDE_DIRECTORIES)
set_target_properties(tomlplusplus::tomlplusplus PROPERTIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_toml_inc}")

# xxHash (XXH3 for data checksums): Debian's library, or, where only the header is there
# (the GPU machine's kit, bench/gpu/make-kit.sh), the header's own implementation.
find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
find_library(XXHASH_LIBRARY NAMES xxhash)
if(XXHASH_LIBRARY)
  add_library(mixtape_xxhash INTERFACE)
  target_link_libraries(mixtape_xxhash INTERFACE ${XXHASH_LIBRARY})
else()
  message(STATUS "libxxhash not found: compiling xxhash.h's implementation")
  add_library(mixtape_xxhash STATIC ${CMAKE_CURRENT_LIST_DIR}/xxhash_impl.c)
  target_include_directories(mixtape_xxhash SYSTEM PRIVATE ${XXHASH_INCLUDE_DIR})
endif()
target_include_directories(mixtape_xxhash SYSTEM INTERFACE ${XXHASH_INCLUDE_DIR})

if(MIXTAPE_TESTS)
  find_package(GTest REQUIRED)
endif()

# LibTorch is optional: without it only the compiler and `lint`/`plan` are built.
find_package(Torch QUIET)
if(Torch_FOUND)
  message(STATUS "LibTorch ${Torch_VERSION} found: building the runtime")
  # TorchConfig puts its headers on the include path as ordinary directories, so its own
  # warnings would drown ours under -Wall -Wextra: make them system headers. The ABI flag
  # (TORCH_CXX_FLAGS, -D_GLIBCXX_USE_CXX11_ABI=1 here) stays on the torch target's
  # INTERFACE_COMPILE_OPTIONS, where TorchConfig put it, and so reaches every user.
  # Every C++ library here comes from Debian, built with the new libstdc++ ABI; a LibTorch
  # built with the old one (older pip wheels) would not link with them.
  if(TORCH_CXX_FLAGS MATCHES "_GLIBCXX_USE_CXX11_ABI=0")
    message(FATAL_ERROR "LibTorch at ${TORCH_INSTALL_PREFIX} uses the pre-C++11 libstdc++ ABI "
                        "(TORCH_CXX_FLAGS: ${TORCH_CXX_FLAGS}); LLVM and TOML++ use the new one. "
                        "Use a LibTorch built with -D_GLIBCXX_USE_CXX11_ABI=1.")
  endif()
  foreach(_torch_target torch torch_cpu c10)
    if(TARGET ${_torch_target})
      get_target_property(_torch_inc ${_torch_target} INTERFACE_INCLUDE_DIRECTORIES)
      if(_torch_inc)
        set_target_properties(${_torch_target} PROPERTIES INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${_torch_inc}")
      endif()
    endif()
  endforeach()
else()
  message(STATUS "LibTorch not found: building the compiler only (lint, plan)")
endif()
