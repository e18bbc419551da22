# CPU linear layers: LLM.int8() against bitsandbytes' golden vectors (bit-exact, every ISA path, 1 and 2
# threads) and every fast path against the scalar reference. The golden file is required: the test
# fails, never skips, without it.
pp8_test(test_int8_matmul SOURCES test_int8_matmul.c ARGS ${PP8_GOLDEN_DIR}/int8_matmul.safetensors
         LABELS linear kernels golden unit TIMEOUT 60)
pp8_test(test_linear_paths SOURCES test_linear_paths.c LABELS linear kernels unit TIMEOUT 400)
target_compile_definitions(test_int8_matmul PRIVATE PP8_DEFAULT_VECTORS="${PP8_GOLDEN_DIR}/int8_matmul.safetensors")
# row primitives of the non-GEMM ops (attention's batched dots/axpys): AVX-512 == scalar, bitwise
pp8_test(test_vec SOURCES test_vec.c LABELS kernels unit TIMEOUT 60)
# the CPU attention op (its own KV-cache layout) against a float64 reference, over several calls on one
# cache; 1 and 2 threads bitwise equal
pp8_test(test_attention SOURCES test_attention.c LABELS kernels unit TIMEOUT 60)
