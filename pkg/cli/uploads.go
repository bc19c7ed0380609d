package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/files"
)

// uploadOptions are the flags of pictures and files, shared by serve
// (where the bytes go, the limits) and publish --file (where the bytes go).
type uploadOptions struct {
	// BlobsURL is --blobs: "" means blobsURLFor's default.
	BlobsURL string
	// MaxBytes, Quota (--max-upload, --upload-quota) and AllowOther
	// (--upload-any) are files.Config's.
	MaxBytes   sizeFlag
	Quota      sizeFlag
	AllowOther bool
	// Guests is --guest-uploads: guests may send files too.
	Guests bool
	// Rate is --upload-rate: bytes a second of all uploads; 0 means no
	// bound, -1 (the default) files.DefaultRatePerCore per processor.
	Rate sizeFlag
	// Timeout is --upload-timeout.
	Timeout time.Duration
}

func defaultUploadOptions() uploadOptions {
	return uploadOptions{MaxBytes: files.DefaultMaxBytes, Quota: files.DefaultQuota, Rate: -1, Timeout: files.DefaultTimeout}
}

// addBlobsFlag registers --blobs.
func addBlobsFlag(f *pflag.FlagSet, dst *string) {
	f.StringVar(dst, "blobs", *dst, "store of uploaded pictures and files: file:///abs/dir (one node), postgres://... (shared by a cluster) or memory://; empty means the store's PostgreSQL with a postgres --store, blobs/ in --data with the default SQLite store. Every server of a cluster must use the same")
}

// addUploadFlags registers serve's flags of pictures and files.
func addUploadFlags(f *pflag.FlagSet, o *uploadOptions) {
	addBlobsFlag(f, &o.BlobsURL)
	f.Var(&o.MaxBytes, "max-upload", "largest picture or file a member may upload (e.g. 10MiB, 512KiB, or bytes)")
	f.Var(&o.Quota, "upload-quota", "most bytes of uploads one user keeps (e.g. 1GiB)")
	f.BoolVar(&o.Guests, "guest-uploads", o.Guests, "let guests (--guests) send pictures and files into public rooms, each connection with its own quota; false: only signed-in and token users")
	f.BoolVar(&o.AllowOther, "upload-any", o.AllowOther, "take files of any type as downloads; false takes pictures (PNG, JPEG, GIF, WebP), PDF and plain text only")
	f.Var(&o.Rate, "upload-rate", "bytes a second this server reads from all uploads together (e.g. 32MiB), so that uploads never slow the chat; 0: no bound")
	f.DurationVar(&o.Timeout, "upload-timeout", o.Timeout, "longest an upload may take; a slower client gets 408 and nothing is kept")
}

// validate checks the limits.
func (o *uploadOptions) validate() error {
	switch {
	case o.MaxBytes < 1:
		return usageErrorf("--max-upload must be at least 1 byte")
	case o.Quota < o.MaxBytes:
		return usageErrorf("--upload-quota (%s) must be at least --max-upload (%s)", o.Quota.String(), o.MaxBytes.String())
	case o.Timeout < time.Second:
		return usageErrorf("--upload-timeout must be at least 1s")
	}
	return nil
}

// blobsURLFor is the blob store of flag, else the default for the store
// at storeURL: the same PostgreSQL database (a cluster), memory:// for a
// memory store, else the data directory's blobs/ directory.
func blobsURLFor(flag, storeURL, dataDir string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	u, err := url.Parse(storeURL)
	if err == nil {
		switch u.Scheme {
		case "postgres", "postgresql":
			return storeURL, nil
		case "memory":
			return "memory://", nil
		}
	}
	abs, err := filepath.Abs(filepath.Join(dataDir, "blobs"))
	if err != nil {
		return "", fmt.Errorf("blobs directory: %w", err)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String(), nil
}

// openBlobs opens the blob store at raw with a bounded wait and an error
// that says what to set.
func openBlobs(ctx context.Context, raw string) (blob.Store, error) {
	ctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	bs, err := blob.Open(ctx, raw)
	if err != nil {
		if errors.Is(err, blob.ErrUnsupportedURL) {
			return nil, usageErrorf("--blobs: %v", err)
		}
		return nil, fmt.Errorf("%w (set --blobs)", err)
	}
	return bs, nil
}

// sizeFlag is a flag of a number of bytes, as parseByteSize reads it:
// 1048576, 512KiB, 10MiB, 1GiB.
type sizeFlag int64

func (b *sizeFlag) String() string {
	if *b < 0 { // --upload-rate's default
		return "16MiB per processor"
	}
	return strings.ReplaceAll(byteSize(int64(*b)), " ", "")
}

func (b *sizeFlag) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = sizeFlag(n)
	return nil
}

func (b *sizeFlag) Type() string { return "size" }

// rate is files.Config's Rate for --upload-rate (0: none).
func (o *uploadOptions) rate() int64 {
	switch o.Rate {
	case 0:
		return -1 // no bound
	case -1:
		return 0 // files' default
	}
	return int64(o.Rate)
}
