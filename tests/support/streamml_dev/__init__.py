"""Helpers of streamml's own repository: its layout and services (:mod:`streamml_dev.repo`), the
reference workloads R1/S1 (:mod:`streamml_dev.workloads`), the IR's numpy reference evaluator
(:mod:`streamml_dev.reference`) and the Bytewax flows of the multi-process tests
(:mod:`streamml_dev.bytewax_flows`).

Tests, benchmarks and the Maven builds import them (``make setup`` puts ``tests/support`` on
``.venv``'s path); the ``streamml`` package does not.
"""
