"""Shared package of the AI Multi-Comms Engine, grouped by capability (inbound, replies, outbound) over
the models, the DynamoDB store and the providers (OpenAI, Twilio, AWS services) every Lambda uses.

Modules import their heavy dependencies themselves so that a handler pays only for what it uses
(the webhook never imports the OpenAI or Twilio REST clients).
"""

__version__ = "0.1.0"
