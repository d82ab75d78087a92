"""Adapters for SQS (jobs) and EventBridge (domain events)."""
