# Runtime: forward pass, golden logits, decode, pipeline, CLI errors.
add_executable(logits_check logits_check.c)
target_link_libraries(logits_check PRIVATE pp8_runtime)
pp8_script_test(golden_logits test_golden.sh LABELS golden)
