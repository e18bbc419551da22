# Memory planner (issues 4 and 6): hand-computed byte counts and GPU counts for BLOOM-176B, boundaries,
# the time model, and the `pp8 plan` command line (exit codes and messages). No weights, no GPU needed.
pp8_test(test_plan SOURCES test_plan.c ARGS ${CMAKE_SOURCE_DIR}/configs LABELS plan unit TIMEOUT 60)
pp8_script_test(test_plan_cli test_plan_cli.sh LABELS plan cli TIMEOUT 60)
