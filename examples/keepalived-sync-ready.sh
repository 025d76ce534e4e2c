#!/bin/sh
# keepalived vrrp_script: exit 0 once the local joold is sync-ready (secure sync: it got every live
# peer's session table, or its "sync-ready timeout" passed), non-zero before, and when joold is not
# running or not answering. A standby whose script fails is not promoted (keepalived-sync.conf).
#
# It asks joold's metrics endpoint (--metrics=127.0.0.1:9477, plus --allow-net=127.0.0.1:9477),
# which answers GET /sync-ready with 200 "ready" or 503 "not ready": a TCP query on loopback, so
# nobody off the host can ask, and nothing can be reflected or amplified. Override the address with
# JOOLD_METRICS=HOST:PORT (IPv6 in brackets: [::1]:9477).
exec curl --fail --silent --show-error --max-time 2 --noproxy '*' --output /dev/null \
  "http://${JOOLD_METRICS:-127.0.0.1:9477}/sync-ready"
