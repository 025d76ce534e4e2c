#!/bin/sh
# keepalived notify_backup: this translator just became the backup (or came back). Ask the local
# daemon to have its kernel advertise the whole session table, so that the peer that is now active
# and this one converge (the C daemon's equivalent is `jool session advertise`).
# With the systemd template unit (packaging/joold@.service), one daemon per Jool instance:
exec systemctl kill --signal=SIGUSR1 --kill-who=main joold@default.service
