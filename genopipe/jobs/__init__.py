"""Jobs: submitting a step as a Batch job exactly once and following it with backoff.

The logic of the submit_job and check_job Lambdas (functions/submit_job, functions/check_job).
No AWS in here (genopipe.aws.batch makes the calls).
"""
