package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/livechat/livechat/pkg/protocol"
)

// Timing and buffer constants of the connections.
const (
	defaultWriteWait = 10 * time.Second // bound on one frame write (Config.writeWait)
	closeWait        = time.Second      // bound on writing our close frame
	readBufferSize   = 8 << 10          // per connection; a backlog is read in big chunks
	drainPoll        = 10 * time.Millisecond
)

// writeBufferPool shares write buffers: subscribers write only their join.
var writeBufferPool = &sync.Pool{}

// conn is one WebSocket connection: a subscriber (pub < 0) or a publisher.
type conn struct {
	idx  int
	room int
	pub  int // publisher index, -1 for a subscriber
	url  string
	src  net.IP
	// header is sent with the handshake: the Authorization of
	// Config.Token, nil without one.
	header http.Header
	ws     *websocket.Conn
	// hc is the connection under ws when the frame reader reads it itself
	// (ws://; nil for wss://, read by gorilla).
	hc *headerConn

	joined chan struct{} // closed by the reader on "joined"
	done   chan struct{} // closed when the reader returns

	// Counters read live by the coordinator and the progress reporter.
	delivered atomic.Uint64
	dupes     atomic.Uint64
	acks      atomic.Uint64
	dupAcks   atomic.Uint64 // acks with "dup":true, counted in acks too
	errFrames atomic.Uint64
	sent      atomic.Uint64 // publisher only

	// Owned by the reader goroutine; read by others only after done.
	h          *histShard // its latencies, shared with other connections
	rx         rxStamper  // the socket's receive times, nil if it gives none
	lastSeq    []uint64   // per publisher of its room, by p / Rooms
	gaps       uint64
	bytes      uint64
	lastRecv   int64 // UnixNano of the last delivery
	isJoined   bool
	excluded   atomic.Bool // did not join in time: closed before publishing, not a member
	connectDur time.Duration
}

// rxStamper is a connection that knows when the kernel received the data
// of its last read (stampConn).
type rxStamper interface{ lastRx() int64 }

type bench struct {
	cfg       Config
	shards    [histShards]histShard
	runPrefix []byte // "b<run>:"
	runID     string
	conns     []*conn
	pubs      []*conn
	start     time.Time

	// Set by run once publishing is over, for collect.
	members  []uint64 // joined connections per room
	pubStart time.Time
	pubEnd   time.Time

	progressMu   sync.Mutex
	lastProgress Progress

	phase     atomic.Value // string
	connected atomic.Int64
	joinedN   atomic.Int64
	closing   atomic.Bool
	// retried counts the batched publisher's sends that found a control
	// frame's write deadline passed and went out at the publisher's next
	// turn instead (publishBatched).
	retried atomic.Uint64

	mu          sync.Mutex
	errorFrames map[string]uint64
	disconnects map[string]uint64
	dialErrors  map[string]int
	firstErr    string
}

// writeWait bounds one frame write: Config.writeWait, else defaultWriteWait.
func (b *bench) writeWait() time.Duration {
	if b.cfg.writeWait > 0 {
		return b.cfg.writeWait
	}
	return defaultWriteWait
}

// Run executes one benchmark as cfg describes (see the package comment) and
// returns what it measured. It blocks until the run is over; every goroutine
// it started has ended when it returns. It returns an error wrapping ErrConfig
// for a bad cfg, and an error naming the URLs when no connection could be made
// or none joined its room. Cancelling ctx during the connection phase aborts
// the run with ctx's error; during publishing or draining it ends the run
// early with Result.Interrupted set.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RunID == "" {
		id, err := NewRunID()
		if err != nil {
			return nil, err
		}
		cfg.RunID = id
	}
	b := &bench{
		cfg:         cfg,
		runID:       cfg.RunID,
		errorFrames: map[string]uint64{},
		disconnects: map[string]uint64{},
		dialErrors:  map[string]int{},
	}
	b.runPrefix = []byte("b" + b.runID + ":")
	b.phase.Store("connecting")
	n := cfg.Clients + cfg.Publishers
	b.conns = make([]*conn, n)
	for i := range b.conns {
		c := &conn{idx: i, pub: -1, joined: make(chan struct{}), done: make(chan struct{}),
			url: cfg.URLs[i%len(cfg.URLs)]}
		rooms := cfg.roomCount()
		if i < cfg.Clients {
			c.room = cfg.subscriberRoom(i)
		} else {
			c.pub = i - cfg.Clients
			c.room = c.pub % rooms
			b.pubs = append(b.pubs, c)
		}
		c.h = &b.shards[i%histShards]
		// Publisher p is in room p % rooms: the room's are its (p / rooms)th.
		c.lastSeq = make([]uint64, (cfg.Publishers-c.room+rooms-1)/rooms)
		if len(cfg.SourceIPs) > 0 {
			c.src = cfg.SourceIPs[i%len(cfg.SourceIPs)]
		}
		b.conns[i] = c
	}
	if cfg.Token != nil {
		// Before the clock starts: the connect figures time the server.
		for _, c := range b.conns {
			tok, err := cfg.Token(c.idx)
			if err != nil {
				return nil, fmt.Errorf("loadgen: token of client %d (%s): %w", c.idx, cfg.ClientName(c.idx), err)
			}
			c.header = http.Header{"Authorization": {"Bearer " + tok}}
		}
	}

	b.start = time.Now()
	stopProgress := b.startProgress()
	res, err := b.run(ctx)
	b.closeAll()
	stopProgress()
	if err != nil {
		return nil, err
	}
	b.collect(res)
	return res, nil
}

func (b *bench) run(ctx context.Context) (*Result, error) {
	cfg := &b.cfg
	res := &Result{RunID: b.runID, URLs: cfg.URLs, Rooms: cfg.Rooms, BigRoom: cfg.BigRoom, Clients: cfg.Clients, Publishers: cfg.Publishers,
		SourceIPs: len(cfg.SourceIPs), Size: cfg.Size, Rate: cfg.Rate, Tokens: cfg.Token != nil}
	ru0 := rusage()

	// Connect.
	connectHist := &histogram{}
	b.connectAll(ctx)
	res.Connect.TotalSeconds = time.Since(b.start).Seconds()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: interrupted while connecting: %w", err)
	}
	res.Connect.Attempted = len(b.conns)
	for _, c := range b.conns {
		if c.ws != nil {
			res.Connect.Established++
			connectHist.record(c.connectDur)
		}
	}
	res.Connect.Failed = res.Connect.Attempted - res.Connect.Established
	res.Connect.Time = connectHist.summary()
	b.mu.Lock()
	res.Connect.Errors, res.Connect.FirstError = b.dialErrors, b.firstErr
	b.mu.Unlock()
	if res.Connect.Established == 0 {
		return nil, fmt.Errorf("loadgen: no connection to %s succeeded (%d attempted): %s",
			urlList(cfg.URLs), res.Connect.Attempted, res.Connect.FirstError)
	}

	// Wait for every "joined".
	b.phase.Store("joining")
	b.report()
	joinCtx, cancel := context.WithTimeout(ctx, cfg.JoinTimeout)
	for _, c := range b.conns {
		if c.ws == nil {
			continue
		}
		select {
		case <-c.joined:
		case <-c.done:
		case <-joinCtx.Done():
		}
	}
	cancel()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loadgen: interrupted while joining: %w", err)
	}
	res.Connect.JoinSeconds = time.Since(b.start).Seconds()
	members := make([]uint64, cfg.roomCount())
	for _, c := range b.conns {
		if c.ws == nil {
			continue
		}
		select {
		case <-c.joined:
			members[c.room]++
			res.Members++
		default:
			c.excluded.Store(true)
			res.Connect.NotJoined++
			_ = c.ws.Close()
		}
	}
	if res.Members == 0 {
		return nil, fmt.Errorf("loadgen: no connection to %s joined its room within %v (%d connected)",
			urlList(cfg.URLs), cfg.JoinTimeout, res.Connect.Established)
	}

	// Warm up.
	if cfg.Warmup > 0 {
		b.phase.Store("warmup")
		b.report()
		t := time.NewTimer(cfg.Warmup)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("loadgen: interrupted while warming up: %w", ctx.Err())
		}
	}

	// Publish.
	b.phase.Store("publishing")
	b.report()
	ru1 := rusage()
	pubStart := time.Now()
	stop := pubStart.Add(cfg.Duration)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) * float64(cfg.Publishers) / cfg.Rate)
	if b.publishBatched(ctx, pubStart, stop, interval) {
		goto published
	}
	for _, c := range b.pubs {
		if c.ws == nil || c.excluded.Load() {
			continue
		}
		wg.Add(1)
		offset := interval * time.Duration(c.pub) / time.Duration(cfg.Publishers)
		go func() {
			defer wg.Done()
			b.publish(ctx, c, pubStart.Add(offset), stop, interval)
		}()
	}
	wg.Wait()
published:
	pubEnd := time.Now()
	res.PublishSeconds = pubEnd.Sub(pubStart).Seconds()

	// Drain: wait for acks and deliveries, at most cfg.Drain.
	b.phase.Store("draining")
	b.report()
	deadline := time.NewTimer(max(cfg.Drain, 0))
	tick := time.NewTicker(drainPoll)
drain:
	for !b.drained(members) {
		select {
		case <-tick.C:
		case <-deadline.C:
			break drain
		case <-ctx.Done():
			break drain
		}
	}
	tick.Stop()
	deadline.Stop()
	res.Interrupted = ctx.Err() != nil
	end := time.Now()
	res.DrainSeconds = end.Sub(pubEnd).Seconds()
	ru2 := rusage()

	win := end.Sub(pubStart)
	res.CPU.UserSeconds = (ru2.user - ru1.user).Seconds()
	res.CPU.SystemSeconds = (ru2.sys - ru1.sys).Seconds()
	res.CPU.Percent = 100 * (res.CPU.UserSeconds + res.CPU.SystemSeconds) / win.Seconds()
	res.CPU.TotalPercent = 100 * ((ru2.user - ru0.user) + (ru2.sys - ru0.sys)).Seconds() / time.Since(b.start).Seconds()
	res.CPU.Saturated = res.CPU.Percent >= CPUWarnPercent
	b.members = members
	b.pubStart = pubStart
	b.pubEnd = pubEnd
	return res, nil
}

// connectAll dials every connection with at most ConnectConcurrency in
// flight; each one that connects starts its reader and sends its join.
func (b *bench) connectAll(ctx context.Context) {
	idx := make(chan *conn)
	var wg sync.WaitGroup
	workers := min(b.cfg.ConnectConcurrency, len(b.conns))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range idx {
				b.connect(ctx, c)
			}
		}()
	}
feed:
	for _, c := range b.conns {
		select {
		case idx <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(idx)
	wg.Wait()
}

func (b *bench) connect(ctx context.Context, c *conn) {
	d := &websocket.Dialer{
		HandshakeTimeout: b.cfg.ConnectTimeout,
		ReadBufferSize:   readBufferSize,
		WriteBufferPool:  writeBufferPool,
		Proxy:            nil, // traffic goes only where --url points
	}
	nd := &net.Dialer{Timeout: b.cfg.ConnectTimeout}
	if c.src != nil {
		nd.LocalAddr = &net.TCPAddr{IP: c.src}
	}
	d.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		nc = stamped(nc)
		if s, ok := nc.(rxStamper); ok {
			c.rx = s
		}
		if strings.HasPrefix(c.url, "ws://") {
			c.hc = &headerConn{Conn: nc}
			return c.hc, nil
		}
		return nc, nil
	}
	dctx, cancel := context.WithTimeout(ctx, b.cfg.ConnectTimeout)
	defer cancel()
	t0 := time.Now()
	ws, resp, err := d.DialContext(dctx, c.url, c.header)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		b.dialFailed(c, err, resp)
		return
	}
	c.connectDur = time.Since(t0)
	c.ws = ws
	b.connected.Add(1)
	go b.read(c)
	join := []byte(`{"type":"join","room":"` + b.cfg.RoomName(c.room) + `","name":"` + b.cfg.ClientName(c.idx) + `"}`)
	// The default bound, not writeWait: the tests shorten that one for
	// the publishing phase's writes, and a join cut short by it (a loaded
	// machine) would count as a disconnect.
	_ = ws.SetWriteDeadline(time.Now().Add(defaultWriteWait))
	if err := ws.WriteMessage(websocket.TextMessage, join); err != nil {
		// The reader sees the broken connection and records it; the
		// connection never joins and is left out.
		_ = ws.Close()
	}
}

// sendHead returns the start of publisher c's send frames, up to and
// including the run's part of the cid ("<run>-"): appendSend appends the
// send's number, so cids are unique per run and cost one append each.
func (b *bench) sendHead(c *conn) []byte {
	return []byte(`{"type":"send","room":"` + b.cfg.RoomName(c.room) + `","cid":"` + b.runID + `-`)
}

func (b *bench) dialFailed(c *conn, err error, resp *http.Response) {
	kind := "other"
	var ne net.Error
	switch {
	case errors.Is(err, websocket.ErrBadHandshake) && resp != nil:
		kind = "handshake " + strconv.Itoa(resp.StatusCode)
	case errors.Is(err, websocket.ErrBadHandshake):
		kind = "bad handshake"
	case errors.Is(err, syscall.ECONNREFUSED):
		kind = "refused"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		kind = "address not available"
	case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
		kind = "too many open files"
	case errors.Is(err, syscall.ECONNRESET):
		kind = "reset"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		kind = "timeout"
	case errors.Is(err, context.Canceled):
		kind = "canceled"
	}
	msg := fmt.Sprintf("%s: %v", c.url, err)
	if c.src != nil {
		msg = fmt.Sprintf("%s (from %s): %v", c.url, c.src, err)
	}
	if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
		msg += " (HTTP " + resp.Status + ")" // 401: the token was refused
	}
	b.mu.Lock()
	b.dialErrors[kind]++
	if b.firstErr == "" {
		b.firstErr = msg
	}
	b.mu.Unlock()
}

// read is a connection's only reader. It reads each frame into one reused
// buffer and reads its header (protocol.DecodeHeader), not the whole frame.
func (b *bench) read(c *conn) {
	defer close(c.done)
	if c.hc != nil {
		b.readFrames(c, c.hc)
		return
	}
	buf := make([]byte, 4096)
	for {
		_, r, err := c.ws.NextReader()
		if err != nil {
			b.readEnded(c, err)
			return
		}
		n := 0
		for {
			if n == len(buf) {
				buf = append(buf, make([]byte, len(buf))...)
			}
			m, err := r.Read(buf[n:])
			n += m
			if err == io.EOF {
				break
			}
			if err != nil {
				b.readEnded(c, err)
				return
			}
		}
		b.frame(c, buf[:n])
	}
}

func (b *bench) readEnded(c *conn, err error) {
	if b.closing.Load() || c.excluded.Load() {
		return
	}
	kind := "read error"
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		kind = strconv.Itoa(ce.Code)
	}
	b.mu.Lock()
	b.disconnects[kind]++
	b.mu.Unlock()
}

// frame handles one received frame.
func (b *bench) frame(c *conn, f []byte) {
	var h protocol.Header
	if !protocol.DecodeHeader(f, &h) {
		return
	}
	switch h.Type {
	case protocol.TypeMessage:
		b.message(c, f, &h)
	case protocol.TypeAck:
		c.acks.Add(1)
		if h.Dup {
			c.dupAcks.Add(1)
		}
	case protocol.TypeError:
		code := h.Code
		if code == "" {
			code = "unknown"
		}
		c.errFrames.Add(1)
		b.mu.Lock()
		b.errorFrames[code]++
		b.mu.Unlock()
	case protocol.TypeJoined:
		if !c.isJoined {
			c.isJoined = true
			b.joinedN.Add(1)
			close(c.joined)
		}
	}
}

// message handles a "message" frame f, whose header is h: if its text is
// one of this run's, it counts the delivery and records its latency.
func (b *bench) message(c *conn, f []byte, h *protocol.Header) {
	now := time.Now().UnixNano()
	t := h.Text // still escaped: this run's texts have no escapes
	if !bytes.HasPrefix(t, b.runPrefix) {
		return // someone else's message
	}
	t = t[len(b.runPrefix):]
	pub, t, ok1 := parseField(t)
	seq, t, ok2 := parseField(t)
	sent, _, ok3 := parseField(t)
	rooms := uint64(max(b.cfg.roomCount(), 1))
	if !ok1 || !ok2 || !ok3 || pub%rooms != uint64(c.room) || pub/rooms >= uint64(len(c.lastSeq)) {
		return
	}
	last := c.lastSeq[pub/rooms]
	if seq <= last {
		c.dupes.Add(1)
		return
	}
	c.gaps += seq - last - 1
	c.lastSeq[pub/rooms] = seq
	c.bytes += uint64(len(f))
	c.lastRecv = now
	c.h.all.record(time.Duration(now - int64(sent)))
	if c.rx != nil {
		if rx := c.rx.lastRx(); rx > 0 {
			c.h.sock.record(time.Duration(max(rx-int64(sent), 0)))
		}
	}
	if int(pub) == c.pub && h.TS > 0 {
		// Once per message, at its sender: how long until the server
		// accepted it (its "ts", in milliseconds).
		c.h.accept.record(time.Duration(max(h.TS*int64(time.Millisecond)-int64(sent), 0)))
	}
	c.delivered.Add(1)
}

// parseField parses the decimal number that starts b and ends with ':'.
func parseField(b []byte) (v uint64, rest []byte, ok bool) {
	for i, ch := range b {
		switch {
		case ch >= '0' && ch <= '9':
			v = v*10 + uint64(ch-'0')
		case ch == ':' && i > 0:
			return v, b[i+1:], true
		default:
			return 0, nil, false
		}
	}
	return 0, nil, false
}

// publish sends c's messages, one every interval from first until stop.
func (b *bench) publish(ctx context.Context, c *conn, first, stop time.Time, interval time.Duration) {
	head := b.sendHead(c)
	frame := make([]byte, 0, len(head)+b.cfg.Size+64)
	timer := time.NewTimer(0)
	<-timer.C
	defer timer.Stop()
	for seq := uint64(1); ; seq++ {
		at := first.Add(time.Duration(seq-1) * interval)
		if !at.Before(stop) {
			return
		}
		if wait := time.Until(at); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			case <-c.done:
				return
			}
		}
		frame = b.appendSend(frame[:0], head, c, seq)
		_ = c.ws.SetWriteDeadline(time.Now().Add(b.writeWait()))
		if err := c.ws.WriteMessage(websocket.TextMessage, frame); err != nil {
			return // the reader records the disconnect
		}
		c.sent.Add(1)
	}
}

// appendSend appends publisher c's send number seq to frame: head (the
// frame's start up to the cid's run part, sendHead), seq to end the cid,
// and a text that carries the run,
// the publisher, seq and the send time, padded to the configured size.
func (b *bench) appendSend(frame, head []byte, c *conn, seq uint64) []byte {
	frame = append(frame, head...)
	frame = strconv.AppendUint(frame, seq, 10)
	frame = append(frame, `","text":"`...)
	textStart := len(frame)
	frame = append(frame, b.runPrefix...)
	frame = strconv.AppendInt(frame, int64(c.pub), 10)
	frame = append(frame, ':')
	frame = strconv.AppendUint(frame, seq, 10)
	frame = append(frame, ':')
	frame = strconv.AppendInt(frame, time.Now().UnixNano(), 10)
	frame = append(frame, ':')
	for len(frame)-textStart < b.cfg.Size {
		frame = append(frame, 'x')
	}
	return append(frame, `"}`...)
}

// drained reports whether every message sent was answered (ack or error)
// and every expected delivery arrived.
func (b *bench) drained(members []uint64) bool {
	acked := make([]uint64, len(members))
	for _, c := range b.pubs {
		a := c.acks.Load()
		if a+c.errFrames.Load() < c.sent.Load() {
			return false
		}
		acked[c.room] += a
	}
	var expected, delivered uint64
	for r, a := range acked {
		expected += a * members[r]
	}
	for _, c := range b.conns {
		delivered += c.delivered.Load()
	}
	return delivered >= expected
}

// closeAll closes every connection and waits for the readers.
func (b *bench) closeAll() {
	b.closing.Store(true)
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bench done")
	for _, c := range b.conns {
		if c.ws == nil {
			continue
		}
		_ = c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(closeWait))
		_ = c.ws.Close()
	}
	for _, c := range b.conns {
		if c.ws != nil {
			<-c.done
		}
	}
}

// collect fills res from the connections once their readers have ended.
func (b *bench) collect(res *Result) {
	res.Connect.Errors = b.dialErrors
	res.ErrorFrames = b.errorFrames
	res.Disconnects = b.disconnects
	res.retried = b.retried.Load()
	acked := make([]uint64, b.cfg.roomCount())
	for _, c := range b.pubs {
		res.Sent += c.sent.Load()
		a := c.acks.Load()
		res.Acked += a
		res.DupAcks += c.dupAcks.Load()
		acked[c.room] += a
	}
	for r, a := range acked {
		res.Expected += a * b.members[r]
	}
	all, accept, sock := &histogram{}, &histogram{}, &histogram{}
	var last int64
	var nbytes uint64
	for _, c := range b.conns {
		if c.ws == nil || c.excluded.Load() {
			continue
		}
		res.Delivered += c.delivered.Load()
		res.Duplicates += c.dupes.Load()
		res.Gaps += c.gaps
		nbytes += c.bytes
		last = max(last, c.lastRecv)
	}
	if res.Expected > res.Delivered {
		res.Lost = res.Expected - res.Delivered
	}
	for i := range b.shards {
		b.shards[i].all.addTo(all)
		b.shards[i].sock.addTo(sock)
		b.shards[i].accept.addTo(accept)
	}
	res.Latency = all.summary()
	res.AcceptLatency = accept.summary()
	res.SocketLatency = sock.summary()
	winEnd := b.pubEnd
	if last > 0 {
		winEnd = time.Unix(0, last)
	}
	win := winEnd.Sub(b.pubStart).Seconds()
	res.WindowSeconds = win
	if win > 0 {
		res.DeliveriesPerSec = float64(res.Delivered) / win
		res.BytesPerSec = float64(nbytes) / win
	}
	if res.PublishSeconds > 0 {
		res.ExpectedPerSec = float64(res.Expected) / res.PublishSeconds
	}
}

// startProgress starts the progress reporter, if any; the returned function
// stops it, reports phase "done" and waits for it.
func (b *bench) startProgress() func() {
	if b.cfg.Progress == nil {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	b.report()
	go func() {
		defer close(done)
		t := time.NewTicker(b.cfg.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				b.report()
			case <-stop:
				return
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		b.phase.Store("done")
		b.report()
	}
}

// report passes a snapshot to cfg.Progress. Calls are serialised.
func (b *bench) report() {
	if b.cfg.Progress == nil {
		return
	}
	b.progressMu.Lock()
	defer b.progressMu.Unlock()
	p := Progress{Phase: b.phase.Load().(string), Elapsed: time.Since(b.start),
		Connected: int(b.connected.Load()), Joined: int(b.joinedN.Load())}
	for _, c := range b.pubs {
		p.Sent += c.sent.Load()
		p.Acked += c.acks.Load()
	}
	for _, c := range b.conns {
		p.Delivered += c.delivered.Load()
	}
	if dt := p.Elapsed - b.lastProgress.Elapsed; dt > 0 && b.lastProgress.Elapsed > 0 {
		p.DeliveriesPerSec = float64(p.Delivered-b.lastProgress.Delivered) / dt.Seconds()
	}
	b.lastProgress = p
	b.cfg.Progress(p)
}

func urlList(urls []string) string {
	if len(urls) == 1 {
		return urls[0]
	}
	return fmt.Sprint(urls)
}
