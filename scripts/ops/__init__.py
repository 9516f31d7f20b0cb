"""Operator CLI of the engine: `python -m ops --help`.

Dead-letter queues, event replay, tenant configuration and conversation handback, against any
workspace: real AWS or the local cloud (`--endpoint-url`). Each AWS-facing concern lives in its own
small module so it can be tested on moto in-process; `__main__` only parses arguments and prints.
"""
