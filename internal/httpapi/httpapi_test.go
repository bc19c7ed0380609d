package httpapi

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSameOrigin(t *testing.T) {
	for _, tc := range []struct {
		origin, site string
		want         bool
	}{
		{"", "", true},                           // not a browser
		{"", "same-origin", true},                // a browser's same-origin request without Origin
		{"", "none", true},                       // typed in the address bar
		{"", "cross-site", false},                // a browser says it comes from elsewhere
		{"", "same-site", false},                 // a sibling subdomain is another origin
		{"http://chat.example", "", true},        // the page's own host
		{"https://CHAT.example", "", true},       // hosts compare without case
		{"http://evil.example", "", false},       // another host
		{"null", "", false},                      // a sandboxed frame
		{"http://app.partner.example", "", true}, // allowed by pattern
	} {
		r := httptest.NewRequest("POST", "http://chat.example/api/x", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if tc.site != "" {
			r.Header.Set("Sec-Fetch-Site", tc.site)
		}
		if got := SameOrigin(r, []string{"*.partner.example"}); got != tc.want {
			t.Errorf("Origin %q, Sec-Fetch-Site %q: %v, want %v", tc.origin, tc.site, got, tc.want)
		}
	}
}

func TestReadJSON(t *testing.T) {
	for _, tc := range []struct {
		body, ctype string
		status      int // 0: accepted
	}{
		{`{"name":"a"}`, "application/json", 0},
		{`{"name":"a"}`, "", 0},
		{`{"name":"a"}`, "text/plain", http.StatusUnsupportedMediaType},
		{`{"name":"a","admin":true}`, "application/json", http.StatusBadRequest},
		{`{"name":"a"}{"name":"b"}`, "application/json", http.StatusBadRequest},
		{`[1]`, "application/json", http.StatusBadRequest},
		{`{"name":"` + strings.Repeat("a", MaxBody) + `"}`, "application/json", http.StatusRequestEntityTooLarge},
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
		if tc.ctype != "" {
			r.Header.Set("Content-Type", tc.ctype)
		}
		var v struct{ Name string }
		err := ReadJSON(httptest.NewRecorder(), r, &v)
		var e *Error
		switch {
		case tc.status == 0 && err != nil:
			t.Errorf("%.40q: %v", tc.body, err)
		case tc.status != 0 && (!errors.As(err, &e) || e.Status != tc.status):
			t.Errorf("%.40q (%s): %v, want status %d", tc.body, tc.ctype, err, tc.status)
		}
	}
}

func TestWriteError(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, errors.New("pq: password authentication failed for user secret"))
	if w.Code != http.StatusInternalServerError || strings.Contains(w.Body.String(), "secret") {
		t.Fatalf("an unexpected error: %d %s (its text must not be shown)", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	e := Errorf(http.StatusTooManyRequests, "throttled", "slow down")
	e.RetryAfter = 1500e6
	WriteError(w, e)
	if w.Code != 429 || w.Header().Get("Retry-After") != "2" || w.Body.String() != `{"error":{"code":"throttled","message":"slow down"}}`+"\n" {
		t.Fatalf("throttled: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Fatalf("headers %v", w.Header())
	}
}
