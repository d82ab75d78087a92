"""One Logger, Tracer and Metrics for the whole service (configured by POWERTOOLS_* env)."""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="crmsync")
tracer = Tracer(service="crmsync")
metrics = Metrics(namespace="crmsync", service="crmsync")
