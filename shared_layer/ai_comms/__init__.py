"""Shared package of the AI Multi-Comms Engine: models, repositories and services used by every Lambda.

Modules import their heavy dependencies themselves so that a handler pays only for what it uses
(the webhook never imports the OpenAI or Twilio REST clients).
"""

__version__ = "0.1.0"
