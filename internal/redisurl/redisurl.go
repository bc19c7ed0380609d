// Package redisurl parses the Redis URLs that the broker and the history
// store share, with the client defaults they share. A single server:
// go-redis's "redis://" and "rediss://" URLs (Parse). A cluster:
// "redis+cluster://[user:password@]host:port[,host:port...][?options]"
// ("rediss+cluster://" for TLS; ParseCluster). A cluster's hosts are seed
// nodes: the client discovers the others from them. The options are
// go-redis's URL parameters (dial_timeout, read_timeout, max_redirects,
// client_name, protocol, ...).
//
// The shared default: no maintenance notifications (Redis before 8 does
// not know CLIENT MAINT_NOTIFICATIONS).
package redisurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Schemes of a Redis Cluster URL.
const (
	Scheme    = "redis+cluster"
	TLSScheme = "rediss+cluster"
)

// Parse parses a single-server Redis URL (go-redis's redis.ParseURL) with
// the package's defaults. Its errors never repeat the URL.
func Parse(raw string) (*redis.Options, error) {
	o, err := redis.ParseURL(raw)
	if err != nil {
		return nil, withoutURL(err)
	}
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o, nil
}

// withoutURL strips a *url.Error, which repeats the URL, password included.
func withoutURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}

// IsCluster reports whether raw has a Redis Cluster scheme.
func IsCluster(raw string) bool {
	return strings.HasPrefix(raw, Scheme+"://") || strings.HasPrefix(raw, TLSScheme+"://")
}

// ErrInvalid is wrapped by every error of ParseCluster.
var ErrInvalid = errors.New("invalid redis cluster URL")

// ParseCluster parses a Redis Cluster URL into go-redis cluster options.
// Its errors never repeat the password. The package's defaults apply.
func ParseCluster(raw string) (*redis.ClusterOptions, error) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != Scheme && scheme != TLSScheme) {
		return nil, fmt.Errorf("%w: the scheme must be %s:// or %s://", ErrInvalid, Scheme, TLSScheme)
	}
	authority, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, tail = rest[:i], rest[i:]
	}
	userinfo, hosts := "", authority
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		userinfo, hosts = authority[:i+1], authority[i+1:]
	}
	path, query := tail, ""
	if i := strings.IndexByte(tail, '?'); i >= 0 {
		path, query = tail[:i], tail[i+1:]
	}
	if path != "" && path != "/" {
		return nil, fmt.Errorf("%w: a cluster has no database number or path (%q)", ErrInvalid, path)
	}
	if strings.Contains(query, "#") {
		return nil, fmt.Errorf("%w: no fragment allowed", ErrInvalid)
	}
	list := strings.Split(hosts, ",")
	for _, h := range list {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("%w: want host:port, got %q", ErrInvalid, h)
		}
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("%w: query: %w", ErrInvalid, err)
	}
	for _, h := range list[1:] {
		q.Add("addr", h)
	}
	plain := strings.TrimSuffix(scheme, "+cluster") + "://" + userinfo + list[0]
	if enc := q.Encode(); enc != "" {
		plain += "?" + enc
	}
	o, err := redis.ParseClusterURL(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, withoutURL(err))
	}
	o.MaintNotificationsConfig = &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}
	return o, nil
}

// Redact returns a Redis Cluster URL with its password replaced by
// "xxxxx", for logs and errors; "<invalid URL>" when it cannot be read.
func Redact(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "<invalid URL>"
	}
	end := len(rest)
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		end = i
	}
	i := strings.LastIndex(rest[:end], "@")
	if i < 0 {
		return raw
	}
	user, _, hasPass := strings.Cut(rest[:i], ":")
	if hasPass {
		user += ":xxxxx"
	}
	return scheme + "://" + user + "@" + rest[i+1:]
}

// NodeOptions returns the options of a client of the single node at addr,
// with the credentials, TLS and timeouts of o.
func NodeOptions(o *redis.ClusterOptions, addr string) *redis.Options {
	return &redis.Options{
		Addr:                         addr,
		ClientName:                   o.ClientName,
		Dialer:                       o.Dialer,
		OnConnect:                    o.OnConnect,
		Protocol:                     o.Protocol,
		Username:                     o.Username,
		Password:                     o.Password,
		CredentialsProvider:          o.CredentialsProvider,
		CredentialsProviderContext:   o.CredentialsProviderContext,
		StreamingCredentialsProvider: o.StreamingCredentialsProvider,
		MaxRetries:                   o.MaxRetries,
		MinRetryBackoff:              o.MinRetryBackoff,
		MaxRetryBackoff:              o.MaxRetryBackoff,
		DialTimeout:                  o.DialTimeout,
		DialerRetries:                o.DialerRetries,
		ReadTimeout:                  o.ReadTimeout,
		WriteTimeout:                 o.WriteTimeout,
		PoolSize:                     o.PoolSize,
		PoolTimeout:                  o.PoolTimeout,
		TLSConfig:                    o.TLSConfig,
		MaintNotificationsConfig:     &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}
