"""Benchmark harness for crypto-grpc (numbers, not tests): `python bench/run.py --help`."""
