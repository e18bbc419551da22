# PP8_FUZZ=ON (included by the top CMakeLists.txt before any target): every library is compiled with
# libFuzzer's coverage hooks plus ASan + UBSan; the fuzz targets (tests/fuzz.cmake) add -fsanitize=fuzzer,
# which brings libFuzzer's main. Without clang's libFuzzer this is a configure error, never a skip.
set(PP8_FUZZ_APT "apt-get install clang libclang-rt-14-dev libomp-dev (launch/setup.sh does this as root), then configure with CC=clang")
if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
  message(FATAL_ERROR "PP8_FUZZ=ON needs clang, found ${CMAKE_C_COMPILER_ID} (${CMAKE_C_COMPILER}): ${PP8_FUZZ_APT}")
endif()
include(CheckCSourceCompiles)
set(CMAKE_REQUIRED_FLAGS "-fsanitize=fuzzer,address,undefined")
check_c_source_compiles("int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return d && n; }"
                        PP8_HAVE_LIBFUZZER)
unset(CMAKE_REQUIRED_FLAGS)
if(NOT PP8_HAVE_LIBFUZZER)
  unset(PP8_HAVE_LIBFUZZER CACHE) # look again at the next configure
  message(FATAL_ERROR "PP8_FUZZ=ON: ${CMAKE_C_COMPILER} cannot link -fsanitize=fuzzer,address,undefined (no libFuzzer): ${PP8_FUZZ_APT}")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
add_link_options(-fsanitize=address,undefined)
