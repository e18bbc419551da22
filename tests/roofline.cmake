# pp8 bench's honest roofline (issue 18): the compute-peak probes per ISA path (unit), and the bench
# report's bound fields are checked by tests/test_bench.sh (runtime.cmake's bench_report).
pp8_test(test_peak SOURCES test_peak.c LABELS kernels unit TIMEOUT 60)
# the bound follows the capped dispatch (PP8_ISA=scalar: compute-bound, per-dtype scalar peaks; =avx512)
pp8_script_test(bench_roofline test_roofline.sh LABELS cli TIMEOUT 300)
