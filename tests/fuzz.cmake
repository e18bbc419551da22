# Fuzzing (tests/fuzz/): libFuzzer targets for what pp8 reads from others -- safetensors headers and the
# index, config.json, tokenizer files, the --tokens list, the server's request handler and JSON writers,
# the encoder. With PP8_FUZZ=ON (clang) each is built as build/fuzz/fuzz_NAME for launch/fuzz.sh. In every
# build, the test fuzz_replay_NAME feeds the committed corpus and every regression input (a crash the
# fuzzer found, fixed) to the same target function once, so the normal suite keeps them fixed (use-after-free
# and UB regressions show only under PP8_ASAN=ON or PP8_FUZZ=ON, where the sanitizers are in).
set(PP8_FUZZ_TARGETS fuzz_safetensors fuzz_safetensors_index fuzz_config fuzz_tokenizer fuzz_tokens fuzz_serve
    fuzz_sse fuzz_encode)
set(PP8_FUZZ_SRC ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)

add_library(pp8_fuzz_common STATIC ${PP8_FUZZ_SRC}/fuzz_common.c)
target_include_directories(pp8_fuzz_common PUBLIC ${PP8_FUZZ_SRC} ${CMAKE_SOURCE_DIR}/runtime)
target_link_libraries(pp8_fuzz_common PUBLIC pp8_text cjson_dep)
target_compile_definitions(pp8_fuzz_common PRIVATE PP8_FUZZ_GOLDEN_DEFAULT="${PP8_GOLDEN_DIR}")

# the runtime libraries each target needs (only those that parse: no kernels are called)
set(PP8_FUZZ_LIB_fuzz_safetensors pp8_model)
set(PP8_FUZZ_LIB_fuzz_safetensors_index pp8_model)
set(PP8_FUZZ_LIB_fuzz_config pp8_model)
set(PP8_FUZZ_LIB_fuzz_tokenizer pp8_text)
set(PP8_FUZZ_LIB_fuzz_tokens pp8_util)
set(PP8_FUZZ_LIB_fuzz_serve pp8_serve)
set(PP8_FUZZ_LIB_fuzz_sse pp8_serve)
set(PP8_FUZZ_LIB_fuzz_encode pp8_text)

foreach(t ${PP8_FUZZ_TARGETS})
  if(PP8_FUZZ)
    add_executable(${t} ${PP8_FUZZ_SRC}/${t}.c)
    target_link_libraries(${t} PRIVATE pp8_fuzz_common ${PP8_FUZZ_LIB_${t}})
    target_link_options(${t} PRIVATE -fsanitize=fuzzer)
    set_target_properties(${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz)
  endif()
  add_executable(${t}_replay ${PP8_FUZZ_SRC}/${t}.c ${PP8_FUZZ_SRC}/fuzz_replay.c)
  target_link_libraries(${t}_replay PRIVATE pp8_fuzz_common ${PP8_FUZZ_LIB_${t}})
  set(dirs ${PP8_FUZZ_SRC}/corpus/${t})
  if(EXISTS ${PP8_FUZZ_SRC}/regressions/${t})
    list(APPEND dirs ${PP8_FUZZ_SRC}/regressions/${t})
  endif()
  string(REPLACE "fuzz_" "fuzz_replay_" test ${t})
  add_test(NAME ${test} COMMAND ${t}_replay ${dirs})
  set_tests_properties(${test} PROPERTIES TIMEOUT 120 LABELS "fuzz;unit" ENVIRONMENT "PP8_GOLDEN=${PP8_GOLDEN_DIR}")
  pp8_cpu_only(${test} "fuzz")
endforeach()
