"""Helpers shared by the test files: tiny images (images.py) and a fake clock (clock.py).

The loopback fakes of remote APIs live beside the tests (loopback.py, fake_endpoint.py,
router_fakes.py, endpoints_api_fake.py, ...); the fixtures every test may use, in conftest.py."""
