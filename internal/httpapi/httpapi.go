// Package httpapi holds what livechat's JSON endpoints (/api/...) share:
// the error shape, reading a bounded JSON body, writing JSON, and refusing
// cross-origin requests that change state.
//
// Every answer is JSON. An error is
//
//	{"error": {"code": "bad_credentials", "message": "wrong name or password"}}
//
// with an HTTP status that matches it (400, 401, 403, 404, 409, 413, 429, 503).
package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// MaxBody bounds a request body, in bytes.
const MaxBody = 16 << 10

// Error is an API error: an HTTP status, a stable code for programs and a
// message for people.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter, when positive, is sent as the Retry-After header.
	RetryAfter time.Duration `json:"-"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error.
func Errorf(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

// Common errors.
var (
	ErrCrossOrigin = Errorf(http.StatusForbidden, "cross_origin", "cross-origin requests may not change anything here")
	ErrSignedOut   = Errorf(http.StatusUnauthorized, "signed_out", "sign in first")
	ErrNotFound    = Errorf(http.StatusNotFound, "not_found", "not found")
	ErrInternal    = Errorf(http.StatusInternalServerError, "internal", "something went wrong on the server; try again")
	ErrUnavailable = Errorf(http.StatusServiceUnavailable, "unavailable", "the store is not answering; try again in a moment")
)

// WriteJSON writes v as JSON with status. Answers are never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes err: an *Error as itself, anything else as ErrInternal
// (its text is not shown: it may hold internals).
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = ErrInternal
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}
	WriteJSON(w, e.Status, struct {
		Error *Error `json:"error"`
	}{e})
}

// ReadJSON decodes r's body (a JSON object of at most MaxBody bytes, no
// unknown fields, nothing after it) into v, or returns an *Error saying
// what is wrong.
func ReadJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return Errorf(http.StatusUnsupportedMediaType, "bad_request", "send the body as application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Errorf(http.StatusRequestEntityTooLarge, "too_large", "the request body is over "+strconv.Itoa(MaxBody)+" bytes")
		}
		return Errorf(http.StatusBadRequest, "bad_request", "the body is not the expected JSON object: "+err.Error())
	}
	if dec.Decode(&struct{}{}) != io.EOF {
		return Errorf(http.StatusBadRequest, "bad_request", "the body holds more than one JSON value")
	}
	return nil
}

// SameOrigin reports whether r may change state: a request without an
// Origin header (not a browser, or a same-origin GET) passes unless the
// browser says it is cross-site (Sec-Fetch-Site); with an Origin, its host
// must be r's own Host or match one of allowed (path.Match patterns, "*"
// for any).
func SameOrigin(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		site := r.Header.Get("Sec-Fetch-Site")
		return site == "" || site == "same-origin" || site == "none"
	}
	return OriginAllowed(origin, r.Host, allowed)
}

// OriginAllowed reports whether the Origin header value origin names host
// itself or a host matching one of allowed (path.Match patterns, "*" for
// any).
func OriginAllowed(origin, host string, allowed []string) bool {
	if i := strings.Index(origin, "://"); i >= 0 {
		origin = origin[i+3:]
	}
	if strings.EqualFold(origin, host) {
		return true
	}
	for _, p := range allowed {
		if p == "*" {
			return true
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(origin)); ok {
			return true
		}
	}
	return false
}

// Changes reports whether r's method changes state (anything but GET,
// HEAD and OPTIONS).
func Changes(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}
