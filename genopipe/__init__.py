"""genopipe: FASTQ in S3 -> aligned reads, variant calls and QC, on AWS Batch Spot."""

__version__ = "0.1.0"
