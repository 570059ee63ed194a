"""Intake: which uploads make a sample complete, and admitting each sample exactly once.

The logic of the intake and sweep Lambdas (functions/intake, functions/sweep): pairing FASTQ names,
sample sheets, the plan for an upload, and admission through the ledger. No AWS in here.
"""
