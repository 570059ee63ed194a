"""Known answers: simulated samples with a truth set, and scoring a VCF against a truth set.

Used by `genopipe demo`, the tests and the benchmarks; no job step or Lambda imports it.
"""
