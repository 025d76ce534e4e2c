#!/bin/bash
# The lab guest's init, run from the project share by /sbin/lab-init (PID 1). Runs the scenarios
# named on the kernel command line (joold.scenarios=a,b,...), writes their output and exit code to
# the results share, then powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/tmp/home NO_COLOR=1 DENO_NO_UPDATE_CHECK=1
R=/mnt/results
mkdir -p "$HOME"
# devtmpfs lacks these links; bash's process substitution needs /dev/fd.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
for i in 0 1 2; do
  n=(stdin stdout stderr)
  [ -e "/dev/${n[$i]}" ] || ln -s "/proc/self/fd/$i" "/dev/${n[$i]}"
done
# Deno's cache lives on tmpfs (SQLite over 9p is not worth the risk); the host filled it.
cp -a /mnt/deno/cache /tmp/deno-dir 2>/dev/null
export DENO_DIR=/tmp/deno-dir
# Deno and the project on a tmpfs of their own (not /tmp: h-nonroot's unit has a private /tmp):
# the 9p shares have no page cache, and a daemon started from them paged deno's 95 MB in again
# (a scenario's first start took 12-23 s to "ready", 7.5 s from tmpfs; the project's ~80 modules
# cost another second per start).
L=/usr/local/lib/joold-lab
mkdir -p "$L" && mount -t tmpfs -o mode=0755 tmpfs "$L"
if cp /mnt/deno/deno "$L/deno"; then ln -sf "$L/deno" /usr/local/bin/deno; else ln -sf /mnt/deno/deno /usr/local/bin/deno; fi
mkdir -p "$L/project"
if tar -C /mnt/project --exclude=./.git --exclude=./.notes --exclude=./lab/runs -cf - . | tar -C "$L/project" -xf -; then
  export JOOLD_LAB_PROJECT=$L/project
fi
scenarios=$(sed -n 's/.*joold\.scenarios=\([^ ]*\).*/\1/p' /proc/cmdline)
{
  echo "guest: kernel $(uname -r), jool-tools $(dpkg-query -W -f='${Version}' jool-tools 2>/dev/null)"
  modprobe jool && echo "guest: jool module $(cat /sys/module/jool/version)"
} >"$R/guest.log" 2>&1
busybox syslogd -n -O /tmp/syslog.log &
if grep -q "joold.demo=1" /proc/cmdline; then
  /bin/bash /mnt/project/lab/guest/demo.sh >"$R/scenarios.log" 2>&1
elif grep -q "joold.role=" /proc/cmdline; then # one of the two guests of a rolling upgrade
  /bin/bash /mnt/project/lab/guest/upgrade.sh >"$R/scenarios.log" 2>&1
elif grep -q "joold.bench=1" /proc/cmdline; then
  /bin/bash /mnt/project/lab/guest/bench.sh >"$R/scenarios.log" 2>&1
else
  /bin/bash /mnt/project/lab/guest/scenarios.sh "${scenarios//,/ }" >"$R/scenarios.log" 2>&1
fi
echo $? >"$R/exit.tmp"
cp /tmp/syslog.log "$R/syslog.log" 2>/dev/null
sync
mv "$R/exit.tmp" "$R/exit"
sync
kill -TERM -1 2>/dev/null
read -r -t 1 <> <(:) || true
echo o >/proc/sysrq-trigger
