# --int8-head (issue 18): the LM head in LLM.int8(). A unit test of the head against the scalar reference
# (bit for bit) on the golden checkpoints, and a script test of the commands: perplexity beside the fp16
# head, rank-count and checkpoint-kind independence, the refusals, plan and bench reporting it.
pp8_test(test_int8_head SOURCES test_int8_head.c ARGS ${PP8_GOLDEN_DIR} ${CMAKE_SOURCE_DIR}/configs
         LABELS int8 golden unit TIMEOUT 300)
pp8_script_test(int8_head_cli test_int8_head.sh LABELS int8 golden plan mpi TIMEOUT 600)
