// Package media decides what an uploaded byte stream is and makes it safe
// to serve: the type comes from the content (never the name or a client's
// header) against an allowlist, images are checked for their pixel count
// before they are decoded, then re-encoded without their metadata (EXIF,
// GPS, comments) and given a thumbnail. It knows nothing of HTTP, stores or
// users.
package media

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// The types Process gives (Result.Type).
const (
	TypePNG   = "image/png"
	TypeJPEG  = "image/jpeg"
	TypeGIF   = "image/gif"
	TypePDF   = "application/pdf"
	TypeText  = "text/plain; charset=utf-8"
	TypeOther = "application/octet-stream" // only with Limits.AllowOther
)

// Errors of Process and CleanName; each wraps one of these (compare with
// errors.Is) with words for the uploader.
var (
	// ErrTooLarge: the stream is longer than Limits.MaxBytes.
	ErrTooLarge = errors.New("media: too large")
	// ErrRefused: the content is of a type not allowed (markup: HTML,
	// SVG, XML, even with AllowOther; other than text without
	// AllowOther), does not match what its name says (.png that is not a
	// PNG), its name is .svg, .html and the like, or it is a GIF whose
	// header also opens a script comment (a GIF/JavaScript polyglot).
	ErrRefused = errors.New("media: type refused")
	// ErrBadImage: an image that does not decode (truncated, corrupt),
	// has more than Limits.MaxPixels pixels or 65535 on a side, or would
	// cost too much to decode (over 4096 GIF frames, over 1000 JPEG
	// scans).
	ErrBadImage = errors.New("media: bad image")
	// ErrBadName: a file name that is empty, too long, has a path
	// separator, "..", NUL or another control character.
	ErrBadName = errors.New("media: bad file name")
)

// Defaults and bounds.
const (
	DefaultMaxPixels = 40_000_000 // about 7,700 x 5,200
	DefaultThumbSize = 320        // the longest side of a thumbnail, pixels
	MaxNameLen       = 255        // bytes of a file name
)

// Limits bound Process.
type Limits struct {
	// MaxBytes is the most bytes read from the stream; one more gives
	// ErrTooLarge. Required (> 0).
	MaxBytes int64
	// MaxPixels caps width x height (times the frames of an animated
	// GIF), checked from the header before decoding. Default:
	// DefaultMaxPixels.
	MaxPixels int64
	// AllowOther takes content of any other type as TypeOther (served as
	// a download). Default: false, ErrRefused.
	AllowOther bool
	// ThumbSize is the longest side of thumbnails. Default:
	// DefaultThumbSize.
	ThumbSize int
}

// Result is what Process decided and wrote.
type Result struct {
	Type          string // one of the Type constants
	Size          int64  // bytes written to out
	Image         bool   // Type is an image: Width, Height and Thumb are set
	Width, Height int
	Thumb         []byte // an image's thumbnail, encoded as ThumbType
	ThumbType     string // TypeJPEG or TypePNG
	ThumbWidth    int
	ThumbHeight   int
}

// Process reads an upload from r (at most lim.MaxBytes: the byte after
// them gives ErrTooLarge, and no more is read), decides its type from the
// content and writes what is to be stored to out: an image re-encoded
// without metadata (a WebP as PNG, a JPEG turned upright by its EXIF
// orientation), anything else as received, streamed. name is the
// uploader's file name, used only to refuse a content that does not match
// its extension (and .svg, .html names). Every error wraps ErrTooLarge,
// ErrRefused, ErrBadImage or ErrBadName, or is an error of r (other than
// io.EOF) or of out, wrapped. On error, what was written to out must be
// discarded. It holds at most one decoded image (the frames of an animated
// GIF) and its thumbnail in memory. A zero lim.MaxBytes gives ErrTooLarge.
func Process(r io.Reader, name string, lim Limits, out io.Writer) (Result, error) {
	if lim.MaxBytes <= 0 {
		return Result{}, fmt.Errorf("%w: no upload size limit is set (Limits.MaxBytes %d)", ErrTooLarge, lim.MaxBytes)
	}
	lim = lim.withDefaults()
	named, err := nameKind(name)
	if err != nil {
		return Result{}, err
	}
	lr := &limitReader{r: r, max: lim.MaxBytes}
	br := bufio.NewReaderSize(lr, readBuf)
	head, err := br.Peek(sniffLen)
	if err != nil && !errors.Is(err, io.EOF) {
		return Result{}, lr.failure(err)
	}
	k := sniff(head)
	if named != kindNone && named != k {
		return Result{}, fmt.Errorf("%w: the file is named %s but is not %s", ErrRefused, extOf(name), named.desc())
	}
	if k == kindWebP && animatedWebP(head) {
		return Result{}, fmt.Errorf("%w: animated WebP images are not accepted (a GIF is)", ErrRefused)
	}
	w := &countWriter{w: out}
	var res Result
	switch k {
	case kindPNG, kindJPEG, kindGIF, kindWebP:
		// A picture takes about a second of processor a 12 MP photo: it
		// yields between small steps, so that the chat sharing the core
		// runs in between (yield.go).
		w.w = yieldWriter{out}
		res, err = processImage(k, yieldReader{br}, lr, lim, w)
	case kindPDF:
		res, err = stream(br, lr, w, nil)
		res.Type = TypePDF
	default:
		res, err = streamText(head, br, lr, w, lim)
	}
	if err != nil {
		return Result{}, err
	}
	res.Size = w.n
	return res, nil
}

// withDefaults fills the zero fields of l.
func (l Limits) withDefaults() Limits {
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.ThumbSize <= 0 {
		l.ThumbSize = DefaultThumbSize
	}
	return l
}

// CleanName returns the display name of an uploaded file: name with
// surrounding spaces trimmed, or ErrBadName when it is empty, longer than
// MaxNameLen bytes, not UTF-8, has a control character (bidirectional
// overrides and isolates too), a '/' or '\\', or is "." or "..".
func CleanName(name string) (string, error) {
	return cleanName(name)
}
