# Checkpoint I/O and model configs: safetensors reader/writer, config.json, pp8 quantize.
# The golden checkpoints are required: these tests fail (never skip) when PP8_GOLDEN_DIR lacks them.
pp8_test(test_safetensors SOURCES test_safetensors.c ARGS ${PP8_GOLDEN_DIR} LABELS checkpoint unit TIMEOUT 60)
pp8_test(test_config SOURCES test_config.c ARGS ${CMAKE_SOURCE_DIR}/configs LABELS checkpoint unit TIMEOUT 60)

# test_ckpt_int8 is not a test on its own: test_quantize.sh runs it on each `pp8 quantize` output.
add_executable(test_ckpt_int8 test_ckpt_int8.c)
target_link_libraries(test_ckpt_int8 PRIVATE pp8_runtime pp8_testutil)
pp8_script_test(test_quantize test_quantize.sh ARGS $<TARGET_FILE:test_ckpt_int8> LABELS checkpoint cli TIMEOUT 120)
