# Runtime: forward pass, golden logits, decode, pipeline, CLI errors.
add_executable(logits_check logits_check.c)
target_link_libraries(logits_check PRIVATE pp8_runtime)
pp8_script_test(golden_logits test_golden.sh LABELS golden)
pp8_test(decode_incremental SOURCES test_decode.c ARGS ${PP8_GOLDEN_DIR} ${CMAKE_SOURCE_DIR}/configs LABELS golden)
pp8_script_test(pipeline_identical test_pipeline.sh LABELS mpi TIMEOUT 900)
pp8_script_test(cli_errors test_cli_errors.sh LABELS errors TIMEOUT 300)
