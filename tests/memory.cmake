# Honest memory and numbers (issue 17): peak resident memory vs the plan, load included, an allocation
# refused under ulimit -v on one rank. Not in the ASan build: there the resident set is ASan's as much as
# pp8's (shadow memory, quarantine, redzones: +100-250 MB at these sizes) and ulimit -v cannot coexist
# with ASan's reserved address space, so the bound would measure the sanitizer; the plain suite
# (tests/run.sh, first in .ci/run) runs it.
if(NOT PP8_ASAN)
  pp8_script_test(test_memory test_memory.sh LABELS pipeline TIMEOUT 600)
endif()
# inf/NaN in a stage's output hidden state: reported with the rank, its layers and the position
pp8_script_test(test_finite test_finite.sh LABELS pipeline TIMEOUT 300)
