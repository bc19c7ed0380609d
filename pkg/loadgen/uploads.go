package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Bounds of the upload load (RunUploads).
const (
	// MaxUploaders is the most uploaders one RunUploads may run.
	MaxUploaders = 1000
	// uploadHead starts every upload body, so the server takes it for a PDF.
	uploadHead = "%PDF-1.4\n"
	// uploadTimeout bounds one upload, from the request to its answer read.
	uploadTimeout = 5 * time.Minute
	// deleteTimeout bounds the DELETE that withdraws an upload; it runs on
	// after the context is cancelled, so that no upload stays in the quota.
	deleteTimeout = 10 * time.Second
	// uploadErrorPause is an uploader's pause after a failure that tells
	// it no wait (a refused connection, a 503), so a failing server is
	// not hammered in a tight loop.
	uploadErrorPause = 200 * time.Millisecond
	// maxRetryAfter bounds the wait a Retry-After header may ask for.
	maxRetryAfter = time.Minute
	// maxUploadAnswer bounds the bytes read of an answer's body.
	maxUploadAnswer = 64 << 10
	// uploadWriteBuffer is the transport's write buffer: a body goes out
	// in writes of this size.
	uploadWriteBuffer = 64 << 10
)

// uploadFiller is what follows uploadHead in every upload body, repeated:
// printable bytes copied from one shared slice, never generated.
var uploadFiller = []byte(strings.Repeat("livechat bench upload filler 0123456789 abcdefghijklmnopqrstuvwxyz\n", 64))

// UploadConfig describes the file upload load of RunUploads: Uploaders
// users, each uploading files of Size bytes into Room over and over.
type UploadConfig struct {
	// BaseURL is the server's HTTP base, "http://host:port" (or https),
	// under which the files API is /api/files.
	BaseURL string
	// Room is the room every upload is for (?room=).
	Room string
	// Uploaders is the number of concurrent uploaders, 1 to MaxUploaders.
	Uploaders int
	// Size is the length of each upload body in bytes (at least 0): a
	// PDF header, "%PDF-1.4\n", and filler (a shorter Size cuts the header).
	Size int64
	// Token, if set, returns uploader i's token (0-based), sent as
	// "Authorization: Bearer <token>". It is called once per uploader
	// before the first upload (not timed); an uploader whose token fails
	// does not run and counts as error "token". Default (nil): no token.
	Token func(i int) (string, error)
}

// UploadResult is what RunUploads measured.
type UploadResult struct {
	Uploaders int   `json:"uploaders"`
	Size      int64 `json:"size"` // bytes per upload
	// Seconds is how long the uploaders ran.
	Seconds float64 `json:"seconds"`
	// Uploads counts uploads the server took (201); Deleted counts those
	// then withdrawn (DELETE answered 204).
	Uploads uint64 `json:"uploads"`
	Deleted uint64 `json:"deleted"`
	// Bytes counts body bytes handed to the connections, of every upload
	// (refused and cut ones too); MiBPerSec is Bytes / 2^20 / Seconds.
	Bytes     int64   `json:"bytes"`
	MiBPerSec float64 `json:"mib_per_s"`
	// Errors counts failures by kind: "<status> <code>" for an answer
	// other than 201 ("429 too_many_uploads", "413 too_large"), "delete
	// <status> <code>" for a failed DELETE, "refused", "reset", "timeout"
	// or "transport" for a request that got no answer, "bad answer" for a
	// 201 without a file id, and "token". Uploads cut by the end of the
	// run are not errors.
	Errors map[string]uint64 `json:"errors"`
	// P50 and P99 are the durations of the uploads counted in Uploads,
	// from the request to the answer read, in milliseconds.
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
}

// RunUploads runs cfg.Uploaders uploaders until ctx is done and returns
// what they did. Each one loops: POST /api/files?room=Room&name=bench-<i>-<n>.pdf
// with a body of exactly Size bytes made while it is sent (no upload is
// held in memory), then, when the server took it (201), DELETE
// /api/files/{id} so the user's quota never fills up. An answer 429 with
// Retry-After (too_many_uploads) makes the uploader wait that long (at
// most a minute); other failures make it pause 200ms. The upload in flight
// when ctx is done is cut and not counted. It blocks until every uploader
// has ended; all use one http.Client whose idle connections it closes at
// the end. A cfg with no uploaders returns an empty result at once.
func RunUploads(ctx context.Context, cfg UploadConfig) UploadResult {
	n := min(max(cfg.Uploaders, 0), MaxUploaders)
	res := UploadResult{Uploaders: n, Size: max(cfg.Size, 0), Errors: map[string]uint64{}}
	if n == 0 {
		return res
	}
	tr := &http.Transport{
		Proxy:               nil, // bench measures the servers it is given, never a proxy from the environment
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * n,
		MaxIdleConnsPerHost: 2 * n,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
		WriteBufferSize:     uploadWriteBuffer,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	base := strings.TrimRight(cfg.BaseURL, "/")
	var sent atomic.Int64
	ups := make([]*uploader, n)
	for i := range ups {
		u := &uploader{idx: i, base: base, room: cfg.Room, size: res.Size, client: client, sent: &sent,
			errors: map[string]uint64{}}
		if cfg.Token != nil {
			tok, err := cfg.Token(i)
			if err != nil {
				u.errors["token"]++
				u.failed = true
			} else {
				u.auth = "Bearer " + tok
			}
		}
		ups[i] = u
	}
	start := time.Now()
	var wg sync.WaitGroup
	for _, u := range ups {
		if u.failed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			u.loop(ctx)
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	var h histogram
	for _, u := range ups {
		res.Uploads += u.uploads
		res.Deleted += u.deleted
		for k, v := range u.errors {
			res.Errors[k] += v
		}
		h.merge(&u.hist)
	}
	res.Bytes = sent.Load()
	if res.Seconds > 0 {
		res.MiBPerSec = float64(res.Bytes) / (1 << 20) / res.Seconds
	}
	res.P50, res.P99 = ms(h.quantile(0.50)), ms(h.quantile(0.99))
	return res
}

// uploader is one uploading user. Its counters are its own goroutine's
// until RunUploads merges them after it ended.
type uploader struct {
	idx    int
	base   string // BaseURL without a trailing slash
	room   string
	size   int64
	auth   string // Authorization header; "" for none
	failed bool   // no token: the uploader does not run
	client *http.Client
	sent   *atomic.Int64 // shared: body bytes read by the transport

	uploads, deleted uint64
	errors           map[string]uint64
	hist             histogram
}

// loop uploads until ctx is done, pausing as each attempt asks.
func (u *uploader) loop(ctx context.Context) {
	for n := 0; ctx.Err() == nil; n++ {
		if pause := u.upload(ctx, n); pause > 0 {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		}
	}
}

// upload makes upload n and withdraws it; it returns the pause to take
// before the next one.
func (u *uploader) upload(ctx context.Context, n int) time.Duration {
	q := url.Values{"room": {u.room}, "name": {"bench-" + strconv.Itoa(u.idx) + "-" + strconv.Itoa(n) + ".pdf"}}
	rctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, u.base+"/api/files?"+q.Encode(),
		&uploadBody{size: u.size, sent: u.sent})
	if err != nil {
		u.errors["bad request"]++
		return uploadErrorPause
	}
	req.ContentLength = u.size
	if u.size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/pdf")
	u.setAuth(req)
	start := time.Now()
	status, answer, header, err := u.do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0 // the run ended: the upload in flight is not a failure
		}
		u.errors[transportError(err)]++
		return uploadErrorPause
	}
	if status != http.StatusCreated {
		u.errors[strconv.Itoa(status)+errorCode(answer)]++
		if status == http.StatusTooManyRequests {
			if d, ok := retryAfter(header.Get("Retry-After")); ok {
				return max(d, uploadErrorPause)
			}
		}
		return uploadErrorPause
	}
	u.hist.record(time.Since(start))
	u.uploads++
	var created struct {
		File struct {
			ID string `json:"id"`
		} `json:"file"`
	}
	if json.Unmarshal(answer, &created) != nil || created.File.ID == "" {
		u.errors["bad answer"]++
		return uploadErrorPause
	}
	u.withdraw(ctx, created.File.ID)
	return 0
}

// withdraw deletes upload id. It outlives ctx (by at most deleteTimeout),
// so an upload the server took never stays in the user's quota.
func (u *uploader) withdraw(ctx context.Context, id string) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), deleteTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(dctx, http.MethodDelete, u.base+"/api/files/"+url.PathEscape(id), nil)
	if err != nil {
		u.errors["delete bad request"]++
		return
	}
	u.setAuth(req)
	status, answer, _, err := u.do(req)
	switch {
	case err != nil:
		u.errors["delete "+transportError(err)]++
	case status != http.StatusNoContent:
		u.errors["delete "+strconv.Itoa(status)+errorCode(answer)]++
	default:
		u.deleted++
	}
}

func (u *uploader) setAuth(req *http.Request) {
	if u.auth != "" {
		req.Header.Set("Authorization", u.auth)
	}
}

// do sends req and reads at most maxUploadAnswer bytes of the answer.
func (u *uploader) do(req *http.Request) (int, []byte, http.Header, error) {
	resp, err := u.client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUploadAnswer))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, body, resp.Header, nil
}

// errorCode returns " <code>" of an error answer {"error":{"code":...}},
// or "" when the answer has none.
func errorCode(answer []byte) string {
	var e struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(answer, &e) != nil || e.Error.Code == "" || len(e.Error.Code) > 64 {
		return ""
	}
	return " " + e.Error.Code
}

// retryAfter parses a Retry-After value (seconds or an HTTP date),
// bounded by maxRetryAfter.
func retryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(min(s, int(maxRetryAfter/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter), true
	}
	return 0, false
}

// transportError names the failure of a request that got no answer.
func transportError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE):
		return "reset"
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "transport"
}

// uploadBody is an upload's body: uploadHead then uploadFiller repeated,
// size bytes in all, made as it is read. It adds the bytes read to sent.
type uploadBody struct {
	size, pos int64
	sent      *atomic.Int64
}

// Read fills p with the body's next bytes.
func (b *uploadBody) Read(p []byte) (int, error) {
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if rest := b.size - b.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n := 0
	for n < len(p) {
		var c int
		if b.pos < int64(len(uploadHead)) {
			c = copy(p[n:], uploadHead[b.pos:])
		} else {
			c = copy(p[n:], uploadFiller[(b.pos-int64(len(uploadHead)))%int64(len(uploadFiller)):])
		}
		n += c
		b.pos += int64(c)
	}
	if b.sent != nil {
		b.sent.Add(int64(n))
	}
	return n, nil
}
