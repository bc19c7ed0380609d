package engine

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// ErrOrigin is returned by Upgrade for a request whose Origin
// Options.CheckOrigin refuses (answered 403).
var ErrOrigin = errors.New("engine: origin not allowed")

// Upgrade answers a WebSocket handshake and returns the connection, which
// reads nothing until Serve. On failure it has answered the request itself
// (403 for a refused origin, with ErrOrigin; 400 for a bad handshake) and
// returns the error. It blocks for the handshake (at most 10s).
func (e *Engine) Upgrade(w http.ResponseWriter, r *http.Request) (*Conn, error) {
	check := e.opt.CheckOrigin
	if check == nil {
		check = sameOrigin
	}
	if !check(r) {
		http.Error(w, ErrOrigin.Error(), http.StatusForbidden)
		return nil, ErrOrigin
	}
	ws, err := e.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return nil, fmt.Errorf("engine: upgrade: %w", err)
	}
	// From here on the engine reads and writes the socket itself: gorilla's
	// Conn, which holds no buffered bytes (see readLoop), is dropped.
	return newConn(e, ws.NetConn()), nil
}

// sameOrigin allows a request without Origin (not a browser) and one from
// the request's own host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}
