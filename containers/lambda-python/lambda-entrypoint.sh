#!/bin/sh
# `docker run genopipe/lambda-python:<tag> module.handler`: the emulator serving the runtime
# client on port 8080 (POST /2015-03-31/functions/function/invocations), as the public image does.
exec /usr/local/bin/aws-lambda-rie /var/runtime/bootstrap "$@"
