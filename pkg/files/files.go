// Package files takes the pictures and files members attach to messages:
// the upload endpoint, the download endpoints, the attachment of uploads to
// messages (the chat server's FileAttacher) and the sweep of uploads never
// attached. What an upload is, and the re-encoding of images, is
// pkg/media's; where the bytes live is pkg/blob's; the records are
// pkg/store's Upload.
//
// The HTTP API (Handler, under /api/files; docs/API.md):
//
//	GET    /api/files            the limits and the caller's usage
//	POST   /api/files?room=R&name=N  the raw file as the body: 201 {"file": File}
//	GET    /api/files/{id}       the file (an image inline, anything else a download)
//	GET    /api/files/{id}/thumb an image's thumbnail
//	DELETE /api/files/{id}       the uploader withdraws an upload not yet attached
//
// Access is denied by default: an upload is made by a signed-in or token
// user (or a guest with an upload token, when allowed) into a room that
// user may enter, and read by a user who may enter
// its room (a guest, when guests are allowed: public rooms only), once it
// is attached to a message (before that, by its uploader only). A missing
// id and a forbidden one give the same 404, byte for byte.
package files

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/media"
	"github.com/livechat/livechat/pkg/store"
)

// Defaults of Config.
const (
	DefaultMaxBytes   = 10 << 20 // 10 MiB
	DefaultQuota      = 1 << 30  // 1 GiB per user
	DefaultPerUser    = 4        // uploads in flight per user, per server
	DefaultInFlight   = 32       // uploads in flight per server
	DefaultTimeout    = 2 * time.Minute
	DefaultKeep       = time.Hour // an upload never attached is deleted after
	DefaultSweepEvery = 10 * time.Minute
	// DefaultRatePerCore is Config.Rate's default for each processor
	// (GOMAXPROCS): bytes a second read from all uploads. On one core it
	// keeps the 1,000-member room's p99 below 100 ms while 20 clients
	// upload (docs/BENCHMARKS.md).
	DefaultRatePerCore = 16 << 20
)

// rateBurst is the most bytes an upload reads at once past the rate.
const rateBurst = 256 << 10

// idLen is the number of random characters of an upload id (5 bits each:
// 130 bits, never guessed). Ids have no '_', so a thumbnail's blob id
// (store.ThumbSuffix) is never another upload's.
const idLen = 26

// Config configures a Service.
type Config struct {
	// Store keeps the upload records. Required; not closed by the Service.
	Store store.Store
	// Blobs keeps the bytes. Required; not closed by the Service.
	Blobs blob.Store
	// Identify says who makes an HTTP request (pkg/account's
	// Authenticate). Default: every request is signed out.
	Identify func(*http.Request) (auth.Identity, error)
	// Enter returns nil when id may enter room, auth.ErrNoRoom when the
	// room is missing or id may not enter it (pkg/rooms' Enter). Default:
	// public rooms only (protocol.PublicRoom).
	Enter func(ctx context.Context, id auth.Identity, room string) error
	// Guests lets requests without credentials read the files of public
	// rooms, as guests read those rooms (the server's guests). Uploads
	// always need an account or a token. Default: false, 401.
	Guests bool
	// GuestUploads lets guests identified by Identify (a guest's upload
	// token: kind guest with its id) upload into the rooms they may enter
	// (public ones), each guest id with its own quota. Default: false.
	GuestUploads bool
	// MaxBytes is the largest upload. Default: DefaultMaxBytes.
	MaxBytes int64
	// Quota is the most bytes of uploads one user keeps. Default:
	// DefaultQuota.
	Quota int64
	// MaxPixels caps an image's pixels. Default: media.DefaultMaxPixels.
	MaxPixels int64
	// AllowOther takes files of other types, served as downloads.
	// Default: false, refused with 415.
	AllowOther bool
	// PerUser bounds one user's uploads in flight on this server; more get
	// 429 too_many_uploads. Default: DefaultPerUser.
	PerUser int
	// InFlight bounds all uploads in flight on this server; more get 503.
	// Default: DefaultInFlight.
	InFlight int
	// Images bounds the images decoded at once on this server (each holds
	// its pixels in memory: at most 4 bytes x MaxPixels). Default:
	// GOMAXPROCS.
	Images int
	// Rate bounds the bytes a second read from all uploads on this server
	// together, so that uploads never take the processor from the chat
	// (the clients' sockets are not read faster: TCP slows them down).
	// Default: DefaultRatePerCore x GOMAXPROCS; negative: no bound.
	Rate int64
	// Timeout bounds an upload from its first byte to its answer; a slower
	// client gets 408. Default: DefaultTimeout.
	Timeout time.Duration
	// Keep is how long an upload may wait to be attached to a message
	// before the sweep deletes it. Default: DefaultKeep.
	Keep time.Duration
	// SweepEvery is the interval of the sweep started by Start. Default:
	// DefaultSweepEvery.
	SweepEvery time.Duration
	// AllowedOrigins are the other origins whose pages may upload and
	// delete (as pkg/rooms' Config.AllowedOrigins).
	AllowedOrigins []string
	// Logger receives failures of the stores. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

func (c Config) fill() (Config, error) {
	if c.Store == nil || c.Blobs == nil {
		return c, errors.New("files: Config.Store and Config.Blobs are required")
	}
	if c.Identify == nil {
		c.Identify = func(*http.Request) (auth.Identity, error) { return auth.Identity{}, auth.ErrNoCredentials }
	}
	if c.Enter == nil {
		c.Enter = publicOnly
	}
	pos := func(v *int64, d int64) {
		if *v <= 0 {
			*v = d
		}
	}
	pos(&c.MaxBytes, DefaultMaxBytes)
	pos(&c.Quota, DefaultQuota)
	pos(&c.MaxPixels, media.DefaultMaxPixels)
	if c.Rate == 0 {
		c.Rate = DefaultRatePerCore * int64(runtime.GOMAXPROCS(0))
	}
	posInt := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	posInt(&c.PerUser, DefaultPerUser)
	posInt(&c.InFlight, DefaultInFlight)
	posInt(&c.Images, runtime.GOMAXPROCS(0))
	posDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	posDur(&c.Timeout, DefaultTimeout)
	posDur(&c.Keep, DefaultKeep)
	posDur(&c.SweepEvery, DefaultSweepEvery)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c, nil
}

// Service is the files service. Its methods are safe for concurrent use.
type Service struct {
	cfg Config
	st  store.Store
	bl  blob.Store
	log *slog.Logger

	// slots bounds the uploads in flight; images the images decoded.
	slots  chan struct{}
	images chan struct{}
	// rate paces the reading of all uploads (Config.Rate); nil: no bound.
	rate *rate.Limiter

	// mu guards busy: the uploads in flight per user.
	mu   sync.Mutex
	busy map[string]int

	// sweep state: the cancel and the goroutine of Start; after is where
	// the walk of the blobs goes on.
	stop  context.CancelFunc
	wg    sync.WaitGroup
	after string
}

// New returns a Service. Start begins its sweep.
func New(cfg Config) (*Service, error) {
	cfg, err := cfg.fill()
	if err != nil {
		return nil, err
	}
	s := &Service{
		cfg:    cfg,
		st:     cfg.Store,
		bl:     cfg.Blobs,
		log:    cfg.Logger,
		slots:  make(chan struct{}, cfg.InFlight),
		images: make(chan struct{}, cfg.Images),
		busy:   make(map[string]int),
	}
	if cfg.Rate > 0 {
		s.rate = rate.NewLimiter(rate.Limit(cfg.Rate), rateBurst)
	}
	return s, nil
}

// newID returns a random upload id of idLen characters of [a-z2-7].
func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [idLen]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	for i := range b {
		b[i] = alphabet[b[i]&31]
	}
	return string(b[:])
}

// Limits is the answer of GET /api/files.
type Limits struct {
	MaxBytes   int64    `json:"max_bytes"`
	QuotaBytes int64    `json:"quota_bytes"`
	UsedBytes  int64    `json:"used_bytes"`
	Types      []string `json:"types"`
	Any        bool     `json:"any"` // other types are taken as downloads
}

// acceptedTypes are the types taken, as GET /api/files lists them.
var acceptedTypes = []string{"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"}

// Limits returns the limits and the usage of user.
func (s *Service) Limits(ctx context.Context, user string) (Limits, error) {
	_, used, err := s.st.UploadUsage(ctx, user)
	if err != nil {
		return Limits{}, fmt.Errorf("files: usage: %w", err)
	}
	return Limits{MaxBytes: s.cfg.MaxBytes, QuotaBytes: s.cfg.Quota, UsedBytes: used, Types: acceptedTypes, Any: s.cfg.AllowOther}, nil
}
