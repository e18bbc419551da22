# Honest memory and numbers (issue 17): peak resident memory vs the plan, load included, an allocation
# refused under ulimit -v on one rank.
pp8_script_test(test_memory test_memory.sh LABELS pipeline TIMEOUT 600)
# inf/NaN in a stage's output hidden state: reported with the rank, its layers and the position
pp8_script_test(test_finite test_finite.sh LABELS pipeline TIMEOUT 300)
