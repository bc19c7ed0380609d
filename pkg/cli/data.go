package cli

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/livechat/livechat/pkg/auth"
)

// The data directory of a single node (--data, LIVECHAT_DATA): what serve
// keeps there when no flag names another place. It is created with mode
// 0700 and the generated files with 0600.
const (
	// dataDBFile holds the message history and the store (accounts, rooms).
	dataDBFile = "livechat.db"
	// secretFile holds the token secret serve creates when none is given.
	secretFile = "secret"
	// operatorKeyFile holds the key of the node's operator API.
	operatorKeyFile = "operator.key"
	// maxKeyFile bounds a key file read.
	maxKeyFile = 64 << 10
)

// ensureDataDir creates dir (and its parents) with mode 0700 when missing.
func ensureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w (set --data or LIVECHAT_DATA to a writable directory)", err)
	}
	return nil
}

// dataSQLiteURL is the sqlite:// URL of the data directory's database.
func dataSQLiteURL(dir string) (string, error) {
	abs, err := filepath.Abs(filepath.Join(dir, dataDBFile))
	if err != nil {
		return "", fmt.Errorf("data directory %s: %w", dir, err)
	}
	return (&url.URL{Scheme: "sqlite", Path: filepath.ToSlash(abs)}).String(), nil
}

// createSecretFile writes n random bytes, base64, to path with mode 0600
// unless the file exists; it reports whether it wrote one. The file
// appears whole or not at all (written aside, then linked), so processes
// starting together on one data directory agree on one value.
func createSecretFile(path string, n int) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		return false, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return false, err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, err = io.WriteString(tmp, base64.StdEncoding.EncodeToString(raw)+"\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil // another process was first
		}
		return false, err
	}
	return true, nil
}

// readKeyFile returns the trimmed content of a key file (never shown in
// errors).
func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("%s: larger than %d bytes", path, maxKeyFile)
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return key, nil
}

// secretOptions are the flags that name the token secret, shared by serve
// and token.
type secretOptions struct {
	// File is --secret-file; FileSet says it was on the command line.
	File    string
	FileSet bool
}

// tokenSecret loads the token secret from the first source set:
// --secret-file, LIVECHAT_SECRET, LIVECHAT_SECRET_FILE, then the data
// directory's secret file, which create makes first when missing (serve).
// It returns the secret and where it came from (never the secret).
func tokenSecret(o secretOptions, dataDir string, create bool) ([]byte, string, error) {
	var (
		secret []byte
		err    error
		from   string
	)
	switch env, envFile := os.Getenv("LIVECHAT_SECRET"), os.Getenv("LIVECHAT_SECRET_FILE"); {
	case o.FileSet:
		from = "--secret-file " + o.File
		secret, err = auth.LoadSecret("", "", o.File)
	case env != "":
		from = "LIVECHAT_SECRET"
		secret, err = auth.LoadSecret("", env, "")
	case envFile != "":
		from = "LIVECHAT_SECRET_FILE " + envFile
		secret, err = auth.LoadSecret("", "", envFile)
	default:
		path := filepath.Join(dataDir, secretFile)
		from = path
		if create {
			if _, cerr := createSecretFile(path, 48); cerr != nil {
				return nil, "", fmt.Errorf("create the token secret %s: %w (set --secret-file, LIVECHAT_SECRET or LIVECHAT_SECRET_FILE, or --data)", path, cerr)
			}
		}
		secret, err = auth.LoadSecret("", "", path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("no token secret: --secret-file, LIVECHAT_SECRET and LIVECHAT_SECRET_FILE are unset and %s does not exist "+
				"(start `livechat serve` with the same --data once, or set one of them)", path)
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("token secret from %s: %w", from, err)
	}
	return secret, from, nil
}
