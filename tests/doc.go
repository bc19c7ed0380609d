//go:build unix

// Package tests holds livechat's end-to-end tests: the reference topology
// (several `livechat serve` processes, HAProxy with haproxy/haproxy.cfg,
// nginx with compose/nginx.conf, Redis) run as real processes on free ports,
// driven by WebSocket clients, the CLI and a headless Chromium.
//
// The tests need haproxy, nginx, chromium and a Redis (REDIS_URL, default
// redis://127.0.0.1:6379); scripts/deps.sh installs them. When one is
// missing a test skips with the reason, and fails instead under CI=true.
// Screenshots go to $ARTIFACTS_DIR, default tests/artifacts/; with
// LIVECHAT_UPDATE_SCREENSHOT=1, TestBrowserChat also rewrites docs/chat.png,
// the picture of the chat in the README.
package tests
