package cli

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The checks below validate flag values before a command starts anything.
// Each command lists its flags' allowed values in one validate method, one
// line per flag (see ServeOptions.validate); the first failing check is the
// error. Every message names the flag, the value and what is allowed, and is
// a UsageError (exit 2).

// number is a numeric or duration flag's type.
type number interface {
	~int | ~int64 | ~uint64 | ~float64
}

// between checks lo <= v <= hi.
func between[T number](flag string, v, lo, hi T) error {
	if v >= lo && v <= hi { // false for NaN
		return nil
	}
	return usageErrorf("--%s %s: must be between %s and %s", flag, show(v), show(lo), show(hi))
}

// offOrBetween checks v == 0 (the feature is off) or lo <= v <= hi.
func offOrBetween[T number](flag string, v, lo, hi T) error {
	if v == 0 || (v >= lo && v <= hi) {
		return nil
	}
	return usageErrorf("--%s %s: must be 0 (off) or between %s and %s", flag, show(v), show(lo), show(hi))
}

// show formats a flag value as a user would type it: 5m rather than 5m0s.
func show[T number](v T) string {
	switch x := any(v).(type) {
	case time.Duration:
		s := x.String()
		if strings.HasSuffix(s, "m0s") {
			s = s[:len(s)-2]
		}
		if strings.HasSuffix(s, "h0m") {
			s = s[:len(s)-2]
		}
		return s
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// listenAddr checks a listen address: [host]:port, with a port of
// 0-65535 and a host that is an IP address or a host name.
func listenAddr(flag, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usageErrorf("--%s %q: must be host:port or :port, such as :8080 or 127.0.0.1:8080", flag, addr)
	}
	if err := portNumber(flag, addr, port, 0); err != nil {
		return err
	}
	if host != "" && net.ParseIP(host) == nil && (!hostName(host) || strings.Trim(host, "0123456789.") == "") {
		return usageErrorf("--%s %s: host %q is neither an IP address nor a host name", flag, addr, host)
	}
	return nil
}

// portNumber checks that port is a number from least to 65535.
func portNumber(flag, value, port string, least int) error {
	if n, err := strconv.Atoi(port); err != nil || n < least || n > 65535 {
		return usageErrorf("--%s %s: port must be a number between %d and 65535", flag, value, least)
	}
	return nil
}

// hostName reports whether h is made of DNS labels: letters, digits and
// '-', separated by dots.
func hostName(h string) bool {
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return false
		}
	}
	return len(h) <= 253
}

// wsURLPort checks the port of a ws:// or wss:// URL, when it has one (the
// rest is checked by loadgen).
func wsURLPort(flag, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Port() == "" {
		return nil
	}
	return portNumber(flag, raw, u.Port(), 1)
}

// firstError returns the first non-nil error of errs.
func firstError(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
