package broker_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/broker/brokertest"
)

const testKey = "operator-key-for-tests-0123456789"

// opsNode is a node's broker (in-process) behind the operator API on a
// real socket.
type opsNode struct {
	b   *broker.Memory
	h   *broker.HTTPHandler
	srv *httptest.Server
}

func startOpsNode(t testing.TB, key string) *opsNode {
	t.Helper()
	n := &opsNode{b: broker.NewMemory(broker.Options{})}
	n.h = broker.NewHTTPHandler(n.b, []byte(key), nil)
	mux := http.NewServeMux()
	mux.Handle(broker.OpsPath, n.h)
	n.srv = httptest.NewServer(mux)
	t.Cleanup(func() {
		n.h.Close()
		n.srv.Close()
		_ = n.b.Close()
	})
	return n
}

func openHTTP(t testing.TB, url string, o broker.Options) broker.Broker {
	t.Helper()
	if o.Key == "" {
		o.Key = testKey
	}
	b, err := broker.OpenHTTP(context.Background(), url, o)
	if err != nil {
		t.Fatalf("OpenHTTP: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// TestHTTPConformance runs the broker suite against a real operator API.
// One node serves every subtest (each uses its own subjects), started
// before the suite so that its goroutines do not count as leaks.
func TestHTTPConformance(t *testing.T) {
	n := startOpsNode(t, testKey)
	brokertest.Run(t, func(t testing.TB, o broker.Options) broker.Broker {
		return openHTTP(t, n.srv.URL, o)
	})
}

// TestHTTPKeyRequired: a wrong, missing or empty key is refused with 401 on
// every route, and OpenHTTP says so; an API without a key refuses all.
func TestHTTPKeyRequired(t *testing.T) {
	n := startOpsNode(t, testKey)
	ctx := context.Background()
	for _, key := range []string{"wrong", testKey + "x", strings.TrimSuffix(testKey, "9")} {
		_, err := broker.OpenHTTP(ctx, n.srv.URL, broker.Options{Key: key})
		if !errors.Is(err, broker.ErrUnauthorized) {
			t.Errorf("OpenHTTP with key %q: %v, want ErrUnauthorized", key, err)
		}
		if err != nil && strings.Contains(err.Error(), key) {
			t.Errorf("error %q shows the key", err)
		}
	}
	for _, tc := range []struct{ method, path, auth string }{
		{"GET", "/api/ops/ping", ""},
		{"GET", "/api/ops/ping", "Bearer wrong"},
		{"GET", "/api/ops/ping", testKey},
		{"GET", "/api/ops/ping", "Basic " + testKey},
		{"POST", "/api/ops/publish?subject=a.b", "Bearer "},
		{"GET", "/api/ops/subscribe?subject=a.>", "Bearer wrong"},
		{"GET", "/api/ops/nothing", ""},
	} {
		if code := opsStatus(t, n.srv.URL+tc.path, tc.method, tc.auth); code != http.StatusUnauthorized {
			t.Errorf("%s %s with %q: %d, want 401", tc.method, tc.path, tc.auth, code)
		}
	}
	if code := opsStatus(t, n.srv.URL+"/api/ops/ping", "GET", "Bearer "+testKey); code != http.StatusNoContent {
		t.Errorf("ping with the key: %d, want 204", code)
	}
	if code := opsStatus(t, n.srv.URL+"/api/ops/publish?subject=a.*", "POST", "Bearer "+testKey); code != http.StatusBadRequest {
		t.Errorf("publish to a pattern: %d, want 400", code)
	}

	off := startOpsNode(t, "")
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		if code := opsStatus(t, off.srv.URL+"/api/ops/ping", "GET", auth); code != http.StatusUnauthorized {
			t.Errorf("API without a key, auth %q: %d, want 401", auth, code)
		}
	}
}

func opsStatus(t *testing.T, url, method, auth string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	// A timeout: a stream let through by mistake must fail the test, not hang it.
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestHTTPHandlerOffWithoutKey: without a key every request is refused,
// also one whose bearer value is empty (which would match an empty key).
func TestHTTPHandlerOffWithoutKey(t *testing.T) {
	m := broker.NewMemory(broker.Options{})
	t.Cleanup(func() { _ = m.Close() })
	h := broker.NewHTTPHandler(m, nil, nil)
	defer h.Close()
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		req := httptest.NewRequest("GET", "/api/ops/ping", nil)
		req.Header["Authorization"] = []string{auth}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("no key, Authorization %q: %d, want 401", auth, w.Code)
		}
	}
}

// TestHTTPReconnects cuts every connection to the node: the subscription
// reports reconnecting, re-requests its stream, reports connected, and
// messages flow again.
func TestHTTPReconnects(t *testing.T) {
	n := startOpsNode(t, testKey)
	var mu sync.Mutex
	var states []broker.State
	b := openHTTP(t, n.srv.URL, broker.Options{OnStateChange: func(s broker.State) {
		mu.Lock()
		states = append(states, s)
		mu.Unlock()
	}})
	p := brokertest.Prefix(t)
	got := make(chan broker.Message, 16)
	if _, err := broker.SubscribeChan(context.Background(), b, p+".>", got); err != nil {
		t.Fatal(err)
	}
	n.srv.CloseClientConnections()
	brokertest.WaitFor(t, 10*time.Second, "reconnecting then connected", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(states) >= 2 && states[0] == broker.StateReconnecting && states[len(states)-1] == broker.StateConnected
	})
	// Publish on the node until the new stream delivers.
	brokertest.WaitFor(t, 10*time.Second, "delivery after the reconnect", func() bool {
		if err := n.b.Publish(context.Background(), p+".x", []byte("back")); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			return string(m.Data) == "back" && m.Subject == p+".x"
		case <-time.After(20 * time.Millisecond):
			return false
		}
	})
}

// TestHTTPHandlerCloseEndsStreams: closing the handler (the node shuts
// down) ends its streams, so http.Server.Shutdown does not wait for them.
func TestHTTPHandlerCloseEndsStreams(t *testing.T) {
	n := startOpsNode(t, testKey)
	req, err := http.NewRequest("GET", n.srv.URL+"/api/ops/subscribe?subject=a.>", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req) //nolint:bodyclose // closed below, read by the goroutine
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(resp.Body)
		done <- err
	}()
	n.h.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end after Close")
	}
}

func TestOpenHTTPRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"http://", "http://h:1/path", "http://h:1?x=1", "http://u:p@h:1"} {
		_, err := broker.OpenHTTP(context.Background(), u, broker.Options{Key: testKey})
		if !errors.Is(err, broker.ErrUnsupportedURL) {
			t.Errorf("OpenHTTP(%q) = %v, want ErrUnsupportedURL", u, err)
		}
	}
}
