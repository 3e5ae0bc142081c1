#!/usr/bin/env bash
# Makes sure what citypark needs on this machine is installed and running:
# PostgreSQL 15 with PostGIS, Mosquitto, Redis (rate limits shared by the API processes), PgBouncer
# (its tests; not started), wrk
# (benchmarks), chromium and a CJK font (browser tests). Installs with apt-get when missing (needs
# root), starts PostgreSQL with pg_ctlcluster, Mosquitto and Redis when nothing listens.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
PACKAGES=(postgresql-15 postgresql-15-postgis-3 mosquitto mosquitto-clients redis-server pgbouncer wrk chromium fonts-wqy-microhei ${CITYPARK_EXTRA_PACKAGES:-})

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "missing packages: ${missing[*]} — run as root or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! listening 5432; then
  echo "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect 15 main start
fi
if ! listening 1883; then
  echo "starting Mosquitto"
  mkdir -p /var/lib/mosquitto && chown mosquitto: /var/lib/mosquitto 2>/dev/null || true
  mosquitto -d -c "$here/../mosquitto/mosquitto.local.conf"
fi
if ! listening 6379; then
  echo "starting Redis"
  redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save "" --appendonly no \
    --logfile /tmp/citypark-redis.log
fi
for i in $(seq 1 50); do
  listening 5432 && listening 1883 && listening 6379 && exit 0
  sleep 0.2
done
echo "PostgreSQL, Mosquitto or Redis did not come up" >&2
exit 1
