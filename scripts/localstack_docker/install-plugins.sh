#!/bin/sh
# A LocalStack init hook for its boot stage (/etc/localstack/init/boot.d/, run in the container
# before LocalStack starts): installs the project's LocalStack plugins (scripts/localstack_host,
# mounted at /opt/localstack-host) into the container's LocalStack. Their hooks fix the 2026.3.0
# defects the root module meets (StartReplay, nested method settings, parallel UpdateStage, OAuth
# connections); their record-only executor stays unused, since the container keeps LocalStack's
# Docker executor. The plugins refuse to load under any LocalStack but 2026.3.0.
set -eu
rm -rf /tmp/localstack-host
cp -r /opt/localstack-host /tmp/localstack-host
/opt/code/localstack/.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps /tmp/localstack-host
