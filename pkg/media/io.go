package media

import (
	"errors"
	"fmt"
	"io"
)

const (
	sniffLen = 512      // bytes looked at to decide the type (as net/http does)
	readBuf  = 32 << 10 // the read buffer and the streaming chunk
)

// limitReader reads at most max+1 bytes from r: the byte past max is never
// given to the caller, it turns into ErrTooLarge. Its first error (too
// large, or r's error other than io.EOF, wrapped) sticks in err, so a
// decoder's own error can be told from the stream's.
type limitReader struct {
	r   io.Reader
	max int64
	n   int64 // bytes read from r
	err error
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	if rem := l.max + 1 - l.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		l.err = fmt.Errorf("%w: the file is larger than %d bytes", ErrTooLarge, l.max)
		return n - int(l.n-l.max), l.err
	}
	if err != nil && !errors.Is(err, io.EOF) {
		l.err = fmt.Errorf("media: reading the upload: %w", err)
		return n, l.err
	}
	return n, err
}

// failure is the error to return for err, met while reading through l:
// the stream's own error if it had one, else err wrapped as a read error
// (bufio's io.ErrNoProgress for a reader that returns nothing).
func (l *limitReader) failure(err error) error {
	if l.err != nil {
		return l.err
	}
	return fmt.Errorf("media: reading the upload: %w", err)
}

// countWriter counts the bytes written to w and keeps w's first error, so
// an encoder's error can be told from the destination's.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		c.err = fmt.Errorf("media: writing the upload: %w", err)
		return n, c.err
	}
	return n, nil
}

// stream copies br to w as it comes, giving each chunk to check first (nil:
// no check); a check error ends the copy.
func stream(br io.Reader, lr *limitReader, w *countWriter, check func([]byte) error) (Result, error) {
	buf := make([]byte, readBuf)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if check != nil {
				if cerr := check(buf[:n]); cerr != nil {
					return Result{}, cerr
				}
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return Result{}, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return Result{}, nil
		}
		if err != nil {
			return Result{}, lr.failure(err)
		}
	}
}
