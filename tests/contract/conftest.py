def pytest_configure(config):
    config.addinivalue_line(
        "markers", "fuzz: the schemathesis fuzz of the OpenAPI document (make fuzz)"
    )
