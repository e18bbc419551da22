# Faults across ranks outside the server (issue 17): SIGKILL of the first, a middle and the last rank
# while generate loads, prefills and decodes (2 and 3 ranks), SIGTERM/SIGINT to mpirun and launch/pp8run,
# SIGKILL of the rank writing logits' .npy: every rank gone within 10 s, a line naming the rank, nothing
# half-written. Prints the exit times the README's fault table quotes.
pp8_script_test(faults test_faults.sh LABELS pipeline TIMEOUT 600)
