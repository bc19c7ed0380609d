//go:build linux

// Command connectbench times a burst of WebSocket clients that connect to a
// chat server and join one room, speaking either livechat's protocol or
// Centrifugo's (JSON), so that the two servers are measured by the same
// outside client.
//
//	connectbench -proto livechat   -url ws://127.0.0.1:18080/ws
//	connectbench -proto centrifugo -url ws://127.0.0.1:18000/connection/websocket
//
// N clients (-n) start at once; at most -conc of them are between their dial
// and their join's confirmation at any time (a storm as a real network
// delivers it). A client's time runs from its dial to the confirmation:
// livechat: the handshake, the welcome, the join, the joined answer;
// Centrifugo: the handshake, the connect command and its reply, the
// subscribe command and its reply. With -pipeline the client does not wait
// for the welcome (livechat) or the connect reply (Centrifugo, one frame
// carries both commands). Every client keeps its connection open, reading
// what comes, until all are done.
//
// With -reconnect URL it then measures a reconnect storm: once every client
// has joined it kills the process -kill-pid names (SIGKILL) or, without
// -kill-pid, drops every connection itself (no close frame, as a network
// or proxy failure does), and each client whose connection ends dials URL
// at once (under the same -conc) and joins again. Against a loopback URL the clients bind 127.0.0.1–127.0.0.254 in
// turn, so no per-address cap refuses them.
//
// It prints one JSON line: the totals, per-client percentiles and failures
// of the connect phase, and of the reconnect phase when there is one.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

type options struct {
	proto     string
	url       string
	reconnect string
	killPID   int
	n         int
	conc      int
	room      string
	timeout   time.Duration
	pipeline  bool
	sourceIPs bool
}

func main() {
	var o options
	flag.StringVar(&o.proto, "proto", "livechat", "protocol: livechat or centrifugo")
	flag.StringVar(&o.url, "url", "ws://127.0.0.1:18080/ws", "WebSocket URL")
	flag.StringVar(&o.reconnect, "reconnect", "", "after the burst, kill -kill-pid (or drop every connection) and reconnect every client to this URL")
	flag.IntVar(&o.killPID, "kill-pid", 0, "process to SIGKILL once every client joined (with -reconnect); 0: drop the connections instead")
	flag.IntVar(&o.n, "n", 5000, "clients")
	flag.IntVar(&o.conc, "conc", 500, "clients at most between dial and join confirmation at once")
	flag.StringVar(&o.room, "room", "general", "room (channel) to join")
	flag.DurationVar(&o.timeout, "timeout", 60*time.Second, "longest one client's connect and join")
	flag.BoolVar(&o.pipeline, "pipeline", false, "send the join (subscribe) without waiting for the welcome (connect reply)")
	flag.BoolVar(&o.sourceIPs, "source-ips", true, "bind 127.0.0.1-254 in turn when the URL is on loopback")
	flag.Parse()
	res, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "connectbench:", err)
		os.Exit(1)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Connect.Failed > 0 || res.Reconnect != nil && res.Reconnect.Failed > 0 {
		os.Exit(1)
	}
}

// phase is the figures of one burst.
type phase struct {
	OK     int            `json:"ok"`
	Failed int            `json:"failed"`
	TotalS float64        `json:"total_s"`
	P50    float64        `json:"p50_ms"`
	P90    float64        `json:"p90_ms"`
	P99    float64        `json:"p99_ms"`
	Max    float64        `json:"max_ms"`
	Errors map[string]int `json:"errors,omitempty"`
	// Steps are the p50 and p99 of each step of a client's time, in ms:
	// tcp (the TCP connect), upgrade (the HTTP handshake after it), first
	// (to the welcome or the connect reply), join (to the confirmation).
	Steps map[string][2]float64 `json:"steps_p50_p99_ms"`
}

type result struct {
	Proto     string    `json:"proto"`
	URL       string    `json:"url"`
	Clients   int       `json:"clients"`
	Conc      int       `json:"conc"`
	Pipeline  bool      `json:"pipeline"`
	Date      time.Time `json:"date"`
	Connect   phase     `json:"connect"`
	Reconnect *phase    `json:"reconnect,omitempty"`
}

// The steps of a client's connect.
const (
	stepTCP = iota
	stepUpgrade
	stepFirst
	stepJoin
	nSteps
)

var stepNames = [nSteps]string{"tcp", "upgrade", "first", "join"}

// client is one simulated client.
type client struct {
	i   int
	src net.IP
	ws  *websocket.Conn
	dur time.Duration // the last connect and join
	// steps are the durations of its steps (phase.Steps).
	steps [nSteps]time.Duration
	err   error
	// dropped is closed by the reader when the connection ends.
	dropped chan struct{}
	// dropAt is when it noticed the end.
	dropAt time.Time
}

type bench struct {
	o   options
	sem chan struct{}
}

func run(o options) (*result, error) {
	if o.proto != "livechat" && o.proto != "centrifugo" {
		return nil, fmt.Errorf("unknown -proto %q (livechat or centrifugo)", o.proto)
	}
	u, err := url.Parse(o.url)
	if err != nil {
		return nil, fmt.Errorf("parse -url: %w", err)
	}
	loop := strings.HasPrefix(u.Hostname(), "127.") || u.Hostname() == "localhost"
	b := &bench{o: o, sem: make(chan struct{}, o.conc)}
	cs := make([]*client, o.n)
	for i := range cs {
		cs[i] = &client{i: i}
		if loop && o.sourceIPs {
			cs[i].src = net.IPv4(127, 0, 0, byte(1+i%254))
		}
	}
	res := &result{Proto: o.proto, URL: o.url, Clients: o.n, Conc: o.conc, Pipeline: o.pipeline, Date: time.Now().UTC()}

	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { b.connect(c, o.url) })
	}
	wg.Wait()
	res.Connect = summarize(cs, time.Since(start))
	if o.reconnect == "" {
		for _, c := range cs {
			if c.ws != nil {
				_ = c.ws.Close()
			}
		}
		return res, nil
	}

	// The storm: kill the server; each client reconnects when it sees its
	// connection end.
	var first atomic.Int64
	for _, c := range cs {
		if c.ws == nil {
			continue
		}
		wg.Go(func() {
			<-c.dropped
			first.CompareAndSwap(0, c.dropAt.UnixNano())
			c.err, c.dur = nil, 0
			b.connect(c, o.reconnect)
		})
	}
	if o.killPID != 0 {
		if err := syscall.Kill(o.killPID, syscall.SIGKILL); err != nil {
			return nil, fmt.Errorf("kill %d: %w", o.killPID, err)
		}
	} else {
		// The network drops every connection (no close frame): the
		// server sees them end as the clients reconnect.
		for _, c := range cs {
			if c.ws != nil {
				_ = c.ws.NetConn().Close()
			}
		}
	}
	wg.Wait()
	rc := summarize(cs, time.Since(time.Unix(0, first.Load())))
	res.Reconnect = &rc
	for _, c := range cs {
		if c.ws != nil {
			_ = c.ws.Close()
		}
	}
	return res, nil
}

// summarize is the figures of the clients' last connect.
func summarize(cs []*client, total time.Duration) phase {
	p := phase{TotalS: round(total.Seconds(), 3)}
	var ds []time.Duration
	for _, c := range cs {
		if c.err != nil {
			p.Failed++
			if p.Errors == nil {
				p.Errors = make(map[string]int)
			}
			p.Errors[errKind(c.err)]++
			continue
		}
		p.OK++
		ds = append(ds, c.dur)
	}
	p.P50, p.P90, p.P99, p.Max = quantile(ds, 0.50), quantile(ds, 0.90), quantile(ds, 0.99), quantile(ds, 1)
	p.Steps = make(map[string][2]float64)
	for st := range nSteps {
		var sd []time.Duration
		for _, c := range cs {
			if c.err == nil {
				sd = append(sd, c.steps[st])
			}
		}
		p.Steps[stepNames[st]] = [2]float64{quantile(sd, 0.50), quantile(sd, 0.99)}
	}
	return p
}

// quantile is ds's q quantile in ms (it sorts ds).
func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := min(int(q*float64(len(ds))), len(ds)-1)
	return round(float64(ds[i])/float64(time.Millisecond), 2)
}

func round(v float64, digits int) float64 {
	m := 1.0
	for range digits {
		m *= 10
	}
	return float64(int64(v*m+0.5)) / m
}

func errKind(err error) string {
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// connect dials u, joins the room and waits for the confirmation, then
// leaves a reader on the connection. The time counts from the dial (once
// the client is let through the concurrency bound).
func (b *bench) connect(c *client, u string) {
	b.sem <- struct{}{}
	defer func() { <-b.sem }()
	nd := &net.Dialer{Timeout: b.o.timeout}
	if c.src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: c.src}
	}
	var tcpAt time.Time
	d := &websocket.Dialer{
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := nd.DialContext(ctx, network, addr)
			tcpAt = time.Now()
			return nc, err
		},
		HandshakeTimeout: b.o.timeout,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.o.timeout)
	defer cancel()
	t0 := time.Now()
	ws, resp, err := d.DialContext(ctx, u, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("dial: HTTP %d", resp.StatusCode)
		}
		c.err = fmt.Errorf("dial: %w", err)
		return
	}
	upAt := time.Now()
	c.steps[stepTCP], c.steps[stepUpgrade] = tcpAt.Sub(t0), upAt.Sub(tcpAt)
	_ = ws.SetReadDeadline(t0.Add(b.o.timeout))
	var firstAt time.Time
	if b.o.proto == "livechat" {
		firstAt, err = b.joinLivechat(c, ws)
	} else {
		firstAt, err = b.joinCentrifugo(c, ws)
	}
	if err != nil {
		c.err = err
		_ = ws.Close()
		return
	}
	now := time.Now()
	c.dur = now.Sub(t0)
	c.steps[stepFirst], c.steps[stepJoin] = firstAt.Sub(upAt), now.Sub(firstAt)
	_ = ws.SetReadDeadline(time.Time{})
	c.ws = ws
	c.dropped = make(chan struct{})
	go drain(c)
}

// drain reads and drops what comes until the connection ends.
func drain(c *client) {
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			c.dropAt = time.Now()
			_ = c.ws.Close()
			close(c.dropped)
			return
		}
	}
}

// joinLivechat reads the welcome (unless -pipeline), joins and reads until
// the joined answer. It returns when the welcome came (the join's sending
// with -pipeline).
func (b *bench) joinLivechat(c *client, ws *websocket.Conn) (time.Time, error) {
	join := fmt.Appendf(nil, `{"type":"join","room":%q,"name":"cb%d"}`, b.o.room, c.i)
	if !b.o.pipeline {
		if err := readUntil(ws, func(m []byte) (bool, error) {
			return bytes.Contains(m, []byte(`"type":"welcome"`)), nil
		}); err != nil {
			return time.Time{}, fmt.Errorf("welcome: %w", err)
		}
	}
	first := time.Now()
	if err := ws.WriteMessage(websocket.TextMessage, join); err != nil {
		return first, fmt.Errorf("join: %w", err)
	}
	return first, readUntil(ws, func(m []byte) (bool, error) {
		switch {
		case bytes.Contains(m, []byte(`"type":"joined"`)):
			return true, nil
		case bytes.Contains(m, []byte(`"type":"error"`)):
			return false, fmt.Errorf("join refused: %s", m)
		}
		return false, nil
	})
}

// centrifugoReply is the part of a Centrifugo reply read here.
type centrifugoReply struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// joinCentrifugo sends connect, reads its reply, subscribes and reads the
// subscribe reply (with -pipeline both commands go in one frame). It
// returns when the connect reply came.
func (b *bench) joinCentrifugo(c *client, ws *websocket.Conn) (time.Time, error) {
	connect := fmt.Appendf(nil, `{"id":1,"connect":{"name":"cb%d"}}`, c.i)
	sub := fmt.Appendf(nil, `{"id":2,"subscribe":{"channel":%q}}`, b.o.room)
	reply := func(id uint32) func([]byte) (bool, error) {
		return func(m []byte) (bool, error) {
			// A frame may carry several replies, one JSON object a line.
			for line := range bytes.SplitSeq(m, []byte("\n")) {
				if len(line) == 0 {
					continue
				}
				var r centrifugoReply
				if err := json.Unmarshal(line, &r); err != nil {
					return false, fmt.Errorf("reply: %w", err)
				}
				if r.ID != id {
					continue
				}
				if r.Error != nil {
					return false, fmt.Errorf("reply %d: error %d %s", id, r.Error.Code, r.Error.Message)
				}
				return true, nil
			}
			return false, nil
		}
	}
	if b.o.pipeline {
		batch := slices.Concat(connect, []byte("\n"), sub)
		if err := ws.WriteMessage(websocket.TextMessage, batch); err != nil {
			return time.Time{}, fmt.Errorf("connect: %w", err)
		}
		var first time.Time
		err := readUntil(ws, func(m []byte) (bool, error) {
			ok, err := reply(1)(m)
			if err != nil {
				return false, err
			}
			if ok && first.IsZero() {
				first = time.Now()
			}
			seen1 := !first.IsZero()
			ok2, err := reply(2)(m)
			if err != nil {
				return false, err
			}
			return seen1 && ok2, nil
		})
		return first, err
	}
	if err := ws.WriteMessage(websocket.TextMessage, connect); err != nil {
		return time.Time{}, fmt.Errorf("connect: %w", err)
	}
	if err := readUntil(ws, reply(1)); err != nil {
		return time.Time{}, fmt.Errorf("connect: %w", err)
	}
	first := time.Now()
	if err := ws.WriteMessage(websocket.TextMessage, sub); err != nil {
		return first, fmt.Errorf("subscribe: %w", err)
	}
	return first, readUntil(ws, reply(2))
}

// readUntil reads messages until done says so or fails.
func readUntil(ws *websocket.Conn, done func([]byte) (bool, error)) error {
	for {
		_, m, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		ok, err := done(m)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
}
