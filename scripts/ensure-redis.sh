#!/usr/bin/env bash
# Makes sure a Redis answers on 127.0.0.1:6379: uses a running one, else starts redis-server,
# else installs it from the system's packages where that is allowed, else says what to do.
set -euo pipefail
port="${REDIS_PORT:-6379}"

ping() {
  if command -v redis-cli >/dev/null 2>&1; then
    redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG
  else
    # bash's /dev/tcp: send PING, expect +PONG
    (exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null
  fi
}

if ping; then exit 0; fi

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found; installing it with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "Redis is not running on 127.0.0.1:$port and redis-server is not installed." >&2
    echo "Install Redis 6.2+ (e.g. 'sudo apt-get install redis-server' or 'brew install redis') or set REDIS_URL." >&2
    exit 1
  fi
fi

redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --save "" --appendonly no \
  --dir /tmp --logfile /tmp/darkroom-redis.log
for _ in $(seq 1 50); do
  if ping; then exit 0; fi
  sleep 0.1
done
echo "redis-server did not answer on 127.0.0.1:$port; see /tmp/darkroom-redis.log" >&2
exit 1
