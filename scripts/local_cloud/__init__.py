"""The local cloud: moto server + the real Terraform + a runner that plays Lambda and API Gateway.

Kept import-light on purpose: ``scripts/build.py`` imports ``local_cloud.artifacts`` before any
third-party package is installed. Import ``local_cloud.cloud.LocalCloud`` for the whole stack.
"""
