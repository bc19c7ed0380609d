#!/usr/bin/env bash
# Installs and starts what the test suite needs on a Debian machine, when missing:
# Debian packages (redis, nats-server, haproxy, nginx, chromium, nodejs for the
# web client's unit tests), golangci-lint, a Redis answering on
# 127.0.0.1:6379 and a NATS server on 127.0.0.1:4222. Safe to run again: it only does what is missing.
set -euo pipefail

GOLANGCI_VERSION=v2.15.0
export PATH="$PATH:/usr/sbin:/sbin"
need_pkgs=()
have() { command -v "$1" >/dev/null; }
have redis-server || need_pkgs+=(redis-server)
have redis-cli || need_pkgs+=(redis-tools)
have nats-server || need_pkgs+=(nats-server) # /usr/sbin/nats-server
have haproxy || need_pkgs+=(haproxy)
have nginx || need_pkgs+=(nginx)
have chromium || need_pkgs+=(chromium)
have node || need_pkgs+=(nodejs)
have curl || need_pkgs+=(curl)
have envsubst || need_pkgs+=(gettext-base)
have initdb || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_pkgs+=(postgresql)

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "deps: installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    echo "deps: missing ${need_pkgs[*]}; run as root or: sudo apt-get install ${need_pkgs[*]}" >&2
  fi
fi

gobin=$(go env GOPATH)/bin
if ! command -v golangci-lint >/dev/null && [ ! -x "$gobin/golangci-lint" ]; then
  echo "deps: installing golangci-lint $GOLANGCI_VERSION"
  go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_VERSION"
fi

redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  echo "deps: starting redis-server on 127.0.0.1:6379"
  mkdir -p /tmp/livechat-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/livechat-redis --logfile /tmp/livechat-redis/redis.log || true
  for _ in $(seq 50); do redis_up && break; sleep 0.1; done
  if ! redis_up; then
    echo "deps: no Redis answers on 127.0.0.1:6379 and none could be started" >&2
    [ "${CI:-}" = "true" ] && exit 1
  fi
fi

# The broker tests start nats-servers of their own (brokertest.StartNATS,
# which also looks in /usr/sbin); this one is for running by hand.
nats_up() { (exec 3<>/dev/tcp/127.0.0.1/4222 && head -c 5 <&3 | grep -q INFO) 2>/dev/null; }
if have nats-server && ! nats_up; then
  echo "deps: starting nats-server on 127.0.0.1:4222"
  mkdir -p /tmp/livechat-nats
  nohup nats-server -a 127.0.0.1 -p 4222 -l /tmp/livechat-nats/nats.log >/dev/null 2>&1 &
  for _ in $(seq 50); do nats_up && break; sleep 0.1; done
  if ! nats_up; then
    echo "deps: no NATS server answers on 127.0.0.1:4222 and none could be started" >&2
    [ "${CI:-}" = "true" ] && exit 1
  fi
fi

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if command -v pg_isready >/dev/null && ! pg_up; then
  echo "deps: starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    for v in /etc/postgresql/*; do pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start || true; done
  fi
  for _ in $(seq 50); do pg_up && break; sleep 0.1; done
  if ! pg_up; then
    echo "deps: no PostgreSQL answers on 127.0.0.1:5432 (set POSTGRES_URL)" >&2
    [ "${CI:-}" = "true" ] && exit 1
  fi
fi
