package blob

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Dir is a Store in a directory of one node. Every file access goes through
// an os.Root, so no name, symlink or ".." can reach outside the directory.
//
// Layout: blobs/<id> holds one blob (a headerSize-byte header with its
// SHA-256 and creation time, then the content); tmp/ holds Puts in progress.
// Put writes a new file in tmp/, fsyncs it, hard-links it to blobs/<id>
// (which fails when the id exists, so a blob is never replaced), removes the
// temporary name and fsyncs blobs/. OpenDir removes the files of tmp/ older
// than a day, dropping what a crash left there; several processes may share
// the directory.
//
// Close waits for the calls in flight; Readers already returned stay usable.
type Dir struct {
	mu     sync.RWMutex // held for reading by every call, for writing by Close
	root   *os.Root
	closed bool
}

var _ Store = (*Dir)(nil)

const (
	dirBlobs    = "blobs"
	dirTmp      = "tmp"
	headerSize  = 128
	headerMagic = "livechat-blob 1 "
)

// OpenDir opens the blob directory at path, creating it (mode 0700) when
// missing, and removes unfinished Puts left in its tmp/ more than a day ago.
func OpenDir(path string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("blob: %w", err)
	}
	err = root.MkdirAll(dirBlobs, 0o700)
	if err == nil {
		err = root.MkdirAll(dirTmp, 0o700)
	}
	if err == nil {
		err = removeStale(root, time.Now().Add(-staleTmp))
	}
	if err != nil {
		_ = root.Close()
		return nil, fmt.Errorf("blob: open %s: %w", path, err)
	}
	return &Dir{root: root}, nil
}

// staleTmp is the age past which a file in tmp/ is a crashed Put's: no
// Put of a live process takes that long (uploads are bounded in time).
const staleTmp = 24 * time.Hour

// removeStale removes the files in tmp/ last changed before cutoff. Newer
// ones may be Puts in progress of another process sharing the directory.
func removeStale(root *os.Root, cutoff time.Time) error {
	f, err := root.Open(dirTmp)
	if err != nil {
		return err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	if err != nil {
		return err
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue // gone meanwhile, or recent
		}
		if err := root.Remove(dirTmp + "/" + e.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// begin takes the read lock for one call; the caller must call d.mu.RUnlock
// when it returns nil.
func (d *Dir) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob: %w", err)
	}
	d.mu.RLock()
	if d.closed {
		d.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

// Put implements Store. It holds one 32 KiB buffer of the blob in memory.
func (d *Dir) Put(ctx context.Context, id string, r io.Reader, max int64) (info Info, err error) {
	if err := checkPut(id, max); err != nil {
		return Info{}, err
	}
	if err := d.begin(ctx); err != nil {
		return Info{}, err
	}
	defer d.mu.RUnlock()
	name := dirBlobs + "/" + id
	if _, err := d.root.Lstat(name); err == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrExists, id)
	}
	tmp := dirTmp + "/" + rand.Text()
	f, err := d.root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if rerr := d.root.Remove(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("blob: put %s: remove temporary file: %w", id, rerr)
		}
	}()
	info = Info{ID: id, Created: now()}
	h := sha256.New()
	if _, err := f.Write(make([]byte, headerSize)); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	n, err := io.Copy(io.MultiWriter(f, h), limited(ctx, r, max))
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	if n > max {
		return Info{}, fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, id, max)
	}
	info.Size, info.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	if _, err := f.WriteAt(header(info), 0); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	if err := d.root.Link(tmp, name); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Info{}, fmt.Errorf("%w: %s", ErrExists, id)
		}
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	if err := d.syncBlobs(); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	return info, nil
}

// syncBlobs makes the names in blobs/ durable.
func (d *Dir) syncBlobs() error {
	dir, err := d.root.Open(dirBlobs)
	if err != nil {
		return err
	}
	err = dir.Sync()
	if cerr := dir.Close(); err == nil {
		err = cerr
	}
	return err
}

// header encodes the fixed-size header of a blob file.
func header(info Info) []byte {
	h := fmt.Appendf(nil, "%s%s %d\n", headerMagic, info.SHA256, info.Created.UnixMicro())
	return append(h, bytes.Repeat([]byte{' '}, headerSize-len(h))...)
}

// open opens blobs/<id> and reads its header.
func (d *Dir) open(id string) (*os.File, Info, error) {
	f, err := d.root.Open(dirBlobs + "/" + id)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, Info{}, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return nil, Info{}, fmt.Errorf("blob: open %s: %w", id, err)
	}
	info, err := readHeader(f, id)
	if err != nil {
		_ = f.Close()
		return nil, Info{}, err
	}
	return f, info, nil
}

func readHeader(f *os.File, id string) (Info, error) {
	st, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("blob: open %s: %w", id, err)
	}
	bad := fmt.Errorf("blob: open %s: not a blob file", id)
	if !st.Mode().IsRegular() || st.Size() < headerSize {
		return Info{}, bad
	}
	h := make([]byte, headerSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		return Info{}, fmt.Errorf("blob: open %s: %w", id, err)
	}
	rest, ok := bytes.CutPrefix(h, []byte(headerMagic))
	if !ok || len(rest) < 64+1 || rest[64] != ' ' {
		return Info{}, bad
	}
	sum := string(rest[:64])
	if _, err := hex.DecodeString(sum); err != nil {
		return Info{}, bad
	}
	end := bytes.IndexByte(rest[65:], '\n')
	if end < 0 {
		return Info{}, bad
	}
	us, err := strconv.ParseInt(string(rest[65:65+end]), 10, 64)
	if err != nil {
		return Info{}, bad
	}
	return Info{ID: id, Size: st.Size() - headerSize, SHA256: sum, Created: time.UnixMicro(us).UTC()}, nil
}

// Open implements Store. The Reader holds an open file and does not depend
// on ctx; it keeps reading a blob deleted meanwhile.
func (d *Dir) Open(ctx context.Context, id string) (Reader, Info, error) {
	if err := CheckID(id); err != nil {
		return nil, Info{}, err
	}
	if err := d.begin(ctx); err != nil {
		return nil, Info{}, err
	}
	defer d.mu.RUnlock()
	f, info, err := d.open(id)
	if err != nil {
		return nil, Info{}, err
	}
	return &fileReader{io.NewSectionReader(f, headerSize, info.Size), f}, info, nil
}

type fileReader struct {
	*io.SectionReader
	f *os.File
}

func (r *fileReader) Close() error { return r.f.Close() }

// Stat implements Store.
func (d *Dir) Stat(ctx context.Context, id string) (Info, error) {
	if err := CheckID(id); err != nil {
		return Info{}, err
	}
	if err := d.begin(ctx); err != nil {
		return Info{}, err
	}
	defer d.mu.RUnlock()
	f, info, err := d.open(id)
	if err != nil {
		return Info{}, err
	}
	_ = f.Close()
	return info, nil
}

// Delete implements Store.
func (d *Dir) Delete(ctx context.Context, id string) error {
	if err := CheckID(id); err != nil {
		return err
	}
	if err := d.begin(ctx); err != nil {
		return err
	}
	defer d.mu.RUnlock()
	if err := d.root.Remove(dirBlobs + "/" + id); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	if err := d.syncBlobs(); err != nil {
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	return nil
}

// List implements Store. It reads every name in blobs/ and the header of
// each blob it returns.
func (d *Dir) List(ctx context.Context, after string, limit int) ([]Info, error) {
	if err := d.begin(ctx); err != nil {
		return nil, err
	}
	defer d.mu.RUnlock()
	dir, err := d.root.Open(dirBlobs)
	if err != nil {
		return nil, fmt.Errorf("blob: list: %w", err)
	}
	names, err := dir.Readdirnames(-1)
	_ = dir.Close()
	if err != nil {
		return nil, fmt.Errorf("blob: list: %w", err)
	}
	slices.Sort(names)
	limit = pageLimit(limit)
	var out []Info
	for _, id := range names {
		if len(out) == limit {
			break
		}
		if id <= after || CheckID(id) != nil {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("blob: list: %w", err)
		}
		f, info, err := d.open(id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		_ = f.Close()
		out = append(out, info)
	}
	return out, nil
}

// Close implements Store.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if err := d.root.Close(); err != nil {
		return fmt.Errorf("blob: close: %w", err)
	}
	return nil
}
