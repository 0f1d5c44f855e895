"""A local imitation of the Hugging Face Hub for tests and benchmarks: see `tests.hub.server`."""
