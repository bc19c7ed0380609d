package files

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/internal/httpapi"
	"github.com/livechat/livechat/pkg/auth"
	"github.com/livechat/livechat/pkg/blob"
	"github.com/livechat/livechat/pkg/media"
	"github.com/livechat/livechat/pkg/protocol"
	"github.com/livechat/livechat/pkg/store"
)

// storeTimeout bounds the store calls made after a request is answered
// or in the background.
const storeTimeout = 10 * time.Second

// Errors of the API besides httpapi's.
var (
	errTooLarge   = httpapi.Errorf(http.StatusRequestEntityTooLarge, "too_large", "")
	errRefused    = httpapi.Errorf(http.StatusUnsupportedMediaType, "type_refused", "")
	errBadImage   = httpapi.Errorf(http.StatusUnprocessableEntity, "bad_image", "")
	errBadName    = httpapi.Errorf(http.StatusBadRequest, "bad_name", "")
	errQuota      = httpapi.Errorf(http.StatusTooManyRequests, "quota_exceeded", "you have used all your storage for files: delete some, or ask the operator")
	errBusy       = &httpapi.Error{Status: http.StatusTooManyRequests, Code: "too_many_uploads", Message: "too many uploads at once: wait for some to finish", RetryAfter: time.Second}
	errServerBusy = &httpapi.Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the server is taking as many uploads as it can: try again in a moment", RetryAfter: 2 * time.Second}
	errTimeout    = httpapi.Errorf(http.StatusRequestTimeout, "timeout", "the upload took too long: try again on a faster connection")
	errBadRequest = httpapi.Errorf(http.StatusBadRequest, "bad_request", "give the room and the file name: POST /api/files?room=ROOM&name=NAME")
)

// Handler serves the API under /api/files (see the package doc). Every
// answer but a file's bytes is JSON and never cached.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/files", s.api(false, s.limits))
	mux.Handle("POST /api/files", s.api(false, s.upload))
	mux.Handle("GET /api/files/{id}", s.api(true, s.download(false)))
	mux.Handle("GET /api/files/{id}/thumb", s.api(true, s.download(true)))
	mux.Handle("DELETE /api/files/{id}", s.api(false, s.withdraw))
	return mux
}

type apiFunc func(w http.ResponseWriter, r *http.Request, id auth.Identity) error

// api wraps an endpoint: same-origin check for changes, identity (signed
// in or a token), error answer. A request without credentials is signed
// out, but for a read (guestReads) when Config.Guests lets guests read:
// then it is a guest, who may read what public rooms hold.
func (s *Service) api(guestReads bool, fn apiFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if httpapi.Changes(r) && !httpapi.SameOrigin(r, s.cfg.AllowedOrigins) {
			httpapi.WriteError(w, httpapi.ErrCrossOrigin)
			return
		}
		id, err := s.cfg.Identify(r)
		switch {
		case err == nil && id.UserID != "" && (!id.Guest() || s.cfg.GuestUploads):
		case guestReads && s.cfg.Guests && (errors.Is(err, auth.ErrNoCredentials) || errors.Is(err, auth.ErrSessionEnded)):
			id = auth.Identity{Kind: auth.KindGuest}
		case err == nil, errors.Is(err, auth.ErrNoCredentials), errors.Is(err, auth.ErrSessionEnded),
			errors.Is(err, auth.ErrAccountClosed), errors.Is(err, auth.ErrInvalidToken):
			s.fail(w, r, httpapi.ErrSignedOut)
			return
		default:
			s.fail(w, r, err)
			return
		}
		if err := fn(w, r, id); err != nil {
			s.fail(w, r, err)
		}
	})
}

// fail answers err: an *httpapi.Error as itself, media's and the service's
// errors with their codes, anything else (a store) as 503, logged.
func (s *Service) fail(w http.ResponseWriter, r *http.Request, err error) {
	var e *httpapi.Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, media.ErrTooLarge):
		e = withMessage(errTooLarge, fmt.Sprintf("the file is larger than %s", sizeWords(s.cfg.MaxBytes)))
	case errors.Is(err, media.ErrRefused):
		e = withMessage(errRefused, mediaWords(err))
	case errors.Is(err, media.ErrBadImage):
		e = withMessage(errBadImage, mediaWords(err))
	case errors.Is(err, media.ErrBadName):
		e = withMessage(errBadName, mediaWords(err))
	case errors.Is(err, ErrQuota):
		e = errQuota
	case errors.Is(err, ErrBusy):
		e = errBusy
	case errors.Is(err, ErrServerBusy):
		e = errServerBusy
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		e = errTimeout
	default:
		if r.Context().Err() == nil {
			s.log.Warn("files: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
		e = httpapi.ErrUnavailable
	}
	if r.Method == http.MethodPost {
		// An upload refused before its body was read: the connection is
		// closed after the answer instead of reading the rest.
		w.Header().Set("Connection", "close")
	}
	httpapi.WriteError(w, e)
}

func withMessage(e *httpapi.Error, msg string) *httpapi.Error {
	c := *e
	c.Message = msg
	return &c
}

// mediaWords is the uploader's part of a media error: the text after the
// "media: ...: " prefixes.
func mediaWords(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg
}

// sizeWords says n bytes for people: "10 MB".
func sizeWords(n int64) string {
	const mb = 1 << 20
	if n%mb == 0 {
		return strconv.FormatInt(n/mb, 10) + " MB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func (s *Service) limits(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	w.Header().Set("Cache-Control", "no-store")
	l, err := s.Limits(r.Context(), id.UserID)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, l)
	return nil
}

// upload serves POST /api/files?room=ROOM&name=NAME.
func (s *Service) upload(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	q := r.URL.Query()
	room, name := q.Get("room"), q.Get("name")
	if room == "" || !q.Has("name") {
		return errBadRequest
	}
	if err := s.cfg.Enter(r.Context(), id, room); err != nil {
		if errors.Is(err, auth.ErrNoRoom) {
			return httpapi.ErrNotFound
		}
		return err
	}
	// The whole upload, from here to the answer, has Timeout: a client
	// sending slowly is cut off (and its partial file discarded).
	deadline := time.Now().Add(s.cfg.Timeout)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(deadline)
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	f, err := s.Ingest(ctx, id.UserID, room, name, r.Body, r.ContentLength)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", "/api/files/"+f.ID)
	httpapi.WriteJSON(w, http.StatusCreated, struct {
		File protocol.File `json:"file"`
	}{f})
	return nil
}

// visible returns the upload id when id may read it: it exists, its room
// admits id, and it is attached to a message or id uploaded it. Anything
// else is httpapi.ErrNotFound.
func (s *Service) visible(ctx context.Context, id auth.Identity, uploadID string) (store.Upload, error) {
	if blob.CheckID(uploadID) != nil {
		return store.Upload{}, httpapi.ErrNotFound
	}
	u, err := s.st.Upload(ctx, uploadID)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return store.Upload{}, httpapi.ErrNotFound
	case err != nil:
		return store.Upload{}, err
	case u.Message == "" && u.UserID != id.UserID:
		return store.Upload{}, httpapi.ErrNotFound
	}
	if err := s.cfg.Enter(ctx, id, u.Room); err != nil {
		if errors.Is(err, auth.ErrNoRoom) {
			return store.Upload{}, httpapi.ErrNotFound
		}
		return store.Upload{}, err
	}
	return u, nil
}

// download serves GET /api/files/{id} (thumb false) and its /thumb.
func (s *Service) download(thumb bool) apiFunc {
	return func(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
		u, err := s.visible(r.Context(), id, r.PathValue("id"))
		if err != nil {
			return err
		}
		blobID, typ := u.ID, u.Type
		if thumb {
			if !u.Thumb {
				return httpapi.ErrNotFound
			}
			blobID = u.ID + store.ThumbSuffix
		}
		rd, info, err := s.bl.Open(r.Context(), blobID)
		if errors.Is(err, blob.ErrNotFound) {
			return httpapi.ErrNotFound // deleted meanwhile
		}
		if err != nil {
			return err
		}
		defer rd.Close()
		if thumb {
			typ = thumbType(rd)
		}
		h := w.Header()
		h.Set("Content-Type", typ)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Referrer-Policy", "no-referrer")
		// A blob never changes: its own cache may keep it for a year, a
		// shared cache never (it is for members only).
		h.Set("Cache-Control", "private, max-age=31536000, immutable")
		h.Set("ETag", `"`+info.SHA256+`"`)
		h.Set("Content-Disposition", disposition(u, thumb))
		http.ServeContent(w, r, "", info.Created, rd)
		return nil
	}
}

// thumbType tells a thumbnail's type (JPEG or PNG) from its first bytes
// and rewinds rd.
func thumbType(rd blob.Reader) string {
	var head [3]byte
	n, _ := rd.Read(head[:])
	_, _ = rd.Seek(0, 0)
	if n == 3 && string(head[:]) == "\xff\xd8\xff" {
		return media.TypeJPEG
	}
	return media.TypePNG
}

// disposition is the Content-Disposition of an upload: inline for images
// (shown by the page), attachment for everything else (saved, never
// rendered by the browser), with the name the uploader gave, its
// extension made to match the type so that a saved text is never opened
// as HTML.
func disposition(u store.Upload, thumb bool) string {
	kind := "attachment"
	if strings.HasPrefix(u.Type, "image/") {
		kind = "inline"
	}
	name := u.Name
	if thumb {
		name = "thumbnail-" + name
	}
	name = withExtension(name, u.Type)
	if d := mime.FormatMediaType(kind, map[string]string{"filename": name}); d != "" {
		return d
	}
	return kind // never without the disposition, whatever the name
}

// extensions are the extensions kept for each type; the first is added
// to a name without one of them.
var extensions = map[string][]string{
	media.TypePNG:  {".png"},
	media.TypeJPEG: {".jpg", ".jpeg"},
	media.TypeGIF:  {".gif"},
	media.TypePDF:  {".pdf"},
	media.TypeText: {".txt", ".text", ".log", ".md", ".csv"},
}

func withExtension(name, typ string) string {
	exts, ok := extensions[typ]
	if !ok {
		return name // other types keep their name: saved, never opened by the browser
	}
	ext := strings.ToLower(path.Ext(name))
	for _, e := range exts {
		if ext == e {
			return name
		}
	}
	return name + exts[0]
}

// withdraw serves DELETE /api/files/{id}: the uploader's upload not yet
// attached is deleted; anything else is 404.
func (s *Service) withdraw(w http.ResponseWriter, r *http.Request, id auth.Identity) error {
	uploadID := r.PathValue("id")
	if blob.CheckID(uploadID) != nil {
		return httpapi.ErrNotFound
	}
	u, err := s.st.Upload(r.Context(), uploadID)
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrInvalid):
		return httpapi.ErrNotFound
	case err != nil:
		return err
	case u.UserID != id.UserID || u.Message != "":
		return httpapi.ErrNotFound
	}
	if err := s.deleteUpload(r.Context(), u); err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
	return nil
}
