"""Adapters from genopipe's ports to AWS services (boto3 lives here only).

Every client is built from the environment like any AWS SDK, so `AWS_ENDPOINT_URL` points them
at the local stack's moto server without a code path of its own.
"""
