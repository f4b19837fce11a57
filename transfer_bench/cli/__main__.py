"""``python -m transfer_bench.cli``: the command line, as the ``transfer-bench`` script runs it."""

from transfer_bench.cli import main

main()
