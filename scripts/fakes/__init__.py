"""Fake OpenAI and Twilio HTTP APIs for tests and the local cloud.

Both run on 127.0.0.1, in-process (``OpenAIFake(port=0).start()``) or as
``python -m fakes.openai_fake`` / ``python -m fakes.twilio_fake``, and are driven by the real SDKs.
"""
