"""The run infrastructure every stage needs: the plan of runs (``plan``), the execution context
with its dataset cache (``context``) and the run folders with their files and locks (``store``)."""
