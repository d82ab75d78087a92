pytest_plugins = ["tests.fixtures.servers", "tests.fixtures.aws", "tests.fixtures.discovery"]
