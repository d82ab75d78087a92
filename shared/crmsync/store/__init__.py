"""DynamoDB adapters: the only code that knows keys and expressions (see docs/dynamodb.md)."""
