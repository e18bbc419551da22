# Serving (runtime/serve/): the OpenAI completions API layer without a server — tables of valid and
# invalid request bodies, 20,000 mutated bodies that must parse or get a 4xx (run it in a PP8_ASAN=ON
# build too: out-of-bounds reads and leaks), the response, stream-chunk, model-list and error JSON read back.
pp8_test(test_serve_api SOURCES test_serve_api.c LABELS serve unit TIMEOUT 120)
pp8_script_test(serve_e2e test_serve.sh LABELS serve mpi TIMEOUT 900)
pp8_script_test(serve_nan test_serve_nan.sh LABELS serve mpi TIMEOUT 300)
