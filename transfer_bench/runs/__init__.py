"""The run infrastructure every stage needs: the plan of runs (``plan``), the execution context
with its dataset cache (``context``), the run folders with their files and locks (``store``) and
the checks a suite passes before anything trains or is written (``preflight``)."""
