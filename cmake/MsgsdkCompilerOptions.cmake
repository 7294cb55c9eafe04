# Compiler settings for msgsdk's own targets (not for dependencies).

if(MSGSDK_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_link_options(-fsanitize=address,undefined)
endif()

if(MSGSDK_TSAN)
  if(MSGSDK_SANITIZE)
    message(FATAL_ERROR "MSGSDK_TSAN and MSGSDK_SANITIZE exclude each other: use two build trees")
  endif()
  # -Wno-tsan: GCC warns that ThreadSanitizer does not model std::atomic_thread_fence, which
  # core/asymmetric_fence.cc uses; races it would hide there are not reported either way.
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer -Wno-tsan)
  add_link_options(-fsanitize=thread)
endif()

if(MSGSDK_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "MSGSDK_FUZZ needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++")
  endif()
  # Coverage for the fuzzer in everything it reaches; the targets add -fsanitize=fuzzer.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()

# Warnings as errors for our own code.
function(msgsdk_target_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Werror
                                           -Wno-missing-field-initializers)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 reports false -Wrestrict errors inside std::string's operator+ at -O3
    # (GCC bug 105329), e.g. for "p" + std::to_string(i).
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
endfunction()

find_program(CCACHE_PROGRAM ccache)
if(CCACHE_PROGRAM)
  set(CMAKE_CXX_COMPILER_LAUNCHER ${CCACHE_PROGRAM})
endif()
