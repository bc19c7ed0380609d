// Package blob keeps the bytes of uploaded pictures and files: a blob is an
// immutable byte string under an id the caller made (random), with its size,
// SHA-256 and creation time. It does not decide who may read a blob, which
// message it belongs to or what type it is; its callers do.
//
// Three backends implement Store, chosen by URL in Open:
//
//   - memory:// keeps everything in this process (tests).
//   - file:///abs/dir keeps one file per blob in a directory on one node,
//     confined with os.Root.
//   - postgres:// (postgresql://) keeps blobs in 256 KiB rows, so every
//     server of a cluster reaches them.
//
// Guarantees shared by every backend, checked by the conformance suite in
// blobtest:
//
//   - Put streams: it never needs the whole blob in memory (except the
//     memory backend), and it is all or nothing. A body over max bytes
//     (ErrTooLarge), a reader that fails, a cancelled context or a crash
//     leave no blob behind: Stat gives ErrNotFound.
//   - An id is 1 to MaxIDLen bytes of [A-Za-z0-9_-]; anything else gives
//     ErrInvalid before the backend is touched, so an id never names a path
//     of its own.
//   - A blob is never replaced: Put on an existing id gives ErrExists, also
//     when two Puts race.
//   - Times are returned in UTC with microsecond precision.
//
// Every method honours its context, blocks until the backend answered and is
// safe for concurrent use. Errors carry the "blob:" prefix and wrap their
// cause; compare them with errors.Is.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"time"
)

// Errors returned by stores. Compare with errors.Is.
var (
	// ErrNotFound: no blob has that id.
	ErrNotFound = errors.New("blob: not found")
	// ErrExists: Put was given the id of an existing blob.
	ErrExists = errors.New("blob: already exists")
	// ErrTooLarge: Put's reader gave more than max bytes.
	ErrTooLarge = errors.New("blob: too large")
	// ErrInvalid wraps errors about arguments: a malformed id, a negative
	// max.
	ErrInvalid = errors.New("blob: invalid argument")
	// ErrClosed is returned by every call on a closed Store.
	ErrClosed = errors.New("blob: closed")
	// ErrUnsupportedURL is returned by Open for an unknown scheme or a
	// malformed URL.
	ErrUnsupportedURL = errors.New("blob: unsupported URL")
)

// Bounds.
const (
	MaxIDLen = 128  // bytes of an id; non-empty
	MaxPage  = 1000 // the most Infos List returns
)

// Info describes a stored blob.
type Info struct {
	ID      string
	Size    int64     // bytes
	SHA256  string    // lower-case hex of the content's SHA-256
	Created time.Time // when Put began, UTC, microseconds
}

// Reader reads one blob. Seek works as on a file (io.SeekStart, SeekCurrent,
// SeekEnd within [0, Size]; reading at Size gives io.EOF), so an HTTP handler
// can serve ranges (http.ServeContent). A Reader is not safe for concurrent
// use; Close releases it and is required.
type Reader interface {
	io.ReadSeekCloser
}

// Store keeps blobs. All methods are safe for concurrent use; see the
// package doc for the shared guarantees.
type Store interface {
	// Put streams r into a new blob under id and returns its Info. It reads
	// r to EOF and stores nothing unless everything succeeded: more than
	// max bytes gives ErrTooLarge, an existing id ErrExists.
	Put(ctx context.Context, id string, r io.Reader, max int64) (Info, error)
	// Open returns a Reader over the blob and its Info, or ErrNotFound.
	// The Reader stays usable after ctx ends only where the backend says so.
	Open(ctx context.Context, id string) (Reader, Info, error)
	// Stat returns the blob's Info, or ErrNotFound.
	Stat(ctx context.Context, id string) (Info, error)
	// Delete removes the blob, or gives ErrNotFound. Readers already open
	// may keep reading it (dir, memory) or fail (postgres).
	Delete(ctx context.Context, id string) error
	// List returns up to limit blobs (limit <= 0 or > MaxPage means
	// MaxPage) with ID > after, ordered by ID; pass the last ID for the next
	// page. A sweeper walks all blobs this way and deletes those created
	// long enough ago that nothing refers to.
	List(ctx context.Context, after string, limit int) ([]Info, error)
	// Close releases the store; later calls give ErrClosed. Safe to call
	// more than once.
	Close() error
}

// Open returns the Store named by rawURL: memory://, file:///abs/dir (the
// directory is created when missing) or postgres:// (postgresql://). ctx
// bounds connecting and creating the schema.
func Open(ctx context.Context, rawURL string) (Store, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnsupportedURL, err)
	}
	switch u.Scheme {
	case "memory":
		return NewMemory(), nil
	case "file":
		if (u.Host != "" && u.Host != "localhost") || u.Path == "" || u.Path[0] != '/' ||
			u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("%w: %q: want file:///abs/dir", ErrUnsupportedURL, rawURL)
		}
		return OpenDir(u.Path)
	case "postgres", "postgresql":
		return OpenPostgres(ctx, rawURL)
	}
	return nil, fmt.Errorf("%w: scheme %q (want memory, file or postgres)", ErrUnsupportedURL, u.Scheme)
}

// CheckID returns nil when id is a valid blob id (1 to MaxIDLen bytes of
// [A-Za-z0-9_-]) and an error wrapping ErrInvalid otherwise.
func CheckID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty id", ErrInvalid)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: id longer than %d bytes", ErrInvalid, MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idByte(id[i]) {
			return fmt.Errorf("%w: id has byte %#x at %d (want [A-Za-z0-9_-])", ErrInvalid, id[i], i)
		}
	}
	return nil
}

// idByte reports whether c may appear in an id.
func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-'
}

func checkPut(id string, max int64) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if max < 0 {
		return fmt.Errorf("%w: negative max %d", ErrInvalid, max)
	}
	return nil
}

// pageLimit applies List's limit rule.
func pageLimit(limit int) int {
	if limit <= 0 || limit > MaxPage {
		return MaxPage
	}
	return limit
}

// now is the creation time of a new blob.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// limited reads r on ctx up to max+1 bytes: one byte past max is enough to
// tell ErrTooLarge (max+1 saturates, so math.MaxInt64 means no limit).
func limited(ctx context.Context, r io.Reader, max int64) io.Reader {
	n := max
	if n < math.MaxInt64 {
		n++
	}
	return io.LimitReader(ctxReader{ctx, r}, n)
}

// ctxReader fails with ctx's error once ctx is done, so a Put copying from
// a slow or endless reader stops when its caller gives up.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// seekPos computes a new position for Seek over a blob of the given size.
func seekPos(pos, size, offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += pos
	case io.SeekEnd:
		offset += size
	default:
		return pos, fmt.Errorf("%w: whence %d", ErrInvalid, whence)
	}
	if offset < 0 {
		return pos, fmt.Errorf("%w: seek to negative offset %d", ErrInvalid, offset)
	}
	return offset, nil
}
