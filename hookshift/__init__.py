"""hookshift: move a webhook receiver from nginx -> app to API Gateway -> SQS, losing nothing."""

__version__ = "0.1.0"
