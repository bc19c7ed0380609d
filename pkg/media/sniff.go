package media

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// kind is a type decided from the content's first bytes.
type kind int

const (
	kindNone kind = iota // no type: not an image nor a PDF (text or other)
	kindPNG
	kindJPEG
	kindGIF
	kindWebP
	kindPDF
)

// desc names k for the uploader.
func (k kind) desc() string {
	switch k {
	case kindPNG:
		return "a PNG image"
	case kindJPEG:
		return "a JPEG image"
	case kindGIF:
		return "a GIF image"
	case kindWebP:
		return "a WebP image"
	case kindPDF:
		return "a PDF document"
	}
	return "a known type"
}

// sniff decides the kind of a content from its first bytes (magic numbers).
func sniff(head []byte) kind {
	switch {
	case bytes.HasPrefix(head, []byte("\x89PNG\r\n\x1a\n")):
		return kindPNG
	case bytes.HasPrefix(head, []byte("\xff\xd8\xff")):
		return kindJPEG
	case bytes.HasPrefix(head, []byte("GIF87a")), bytes.HasPrefix(head, []byte("GIF89a")):
		return kindGIF
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return kindWebP
	case bytes.HasPrefix(head, []byte("%PDF-")):
		return kindPDF
	}
	return kindNone
}

// animatedWebP reports a WebP whose VP8X header says it is animated (the
// decoder has no animation).
func animatedWebP(head []byte) bool {
	return len(head) > 20 && string(head[12:16]) == "VP8X" && head[20]&0x02 != 0
}

// The extensions that name a kind: a content under such a name must be of
// that kind.
var extKinds = map[string]kind{
	".png": kindPNG, ".jpg": kindJPEG, ".jpeg": kindJPEG, ".gif": kindGIF,
	".webp": kindWebP, ".pdf": kindPDF,
}

// The extensions refused whatever the content: a browser or a desktop
// opens them as markup that runs scripts.
var refusedExts = map[string]string{
	".svg": "SVG", ".svgz": "SVG", ".html": "HTML", ".htm": "HTML", ".xhtml": "XHTML",
	".xht": "XHTML", ".shtml": "HTML", ".mht": "MHTML", ".mhtml": "MHTML",
}

// extOf is the lowercased extension of name, trailing dots and spaces
// ignored (Windows drops them when saving: "x.html." is x.html).
func extOf(name string) string {
	name = strings.TrimRight(name, ". \t\r\n")
	i := strings.LastIndexByte(name, '.')
	if i < 0 || strings.ContainsAny(name[i:], "/\\") {
		return ""
	}
	return strings.ToLower(name[i:])
}

// nameKind is the kind name's extension promises (kindNone: none), or
// ErrRefused for an extension refused whatever the content.
func nameKind(name string) (kind, error) {
	ext := extOf(name)
	if what, ok := refusedExts[ext]; ok {
		return kindNone, fmt.Errorf("%w: %s files (%s) are not accepted", ErrRefused, what, ext)
	}
	return extKinds[ext], nil
}

// markupError refuses a content that a browser could take for markup; head
// is its first bytes.
func markupError(head []byte) error {
	h := bytes.ToLower(head)
	switch {
	case bytes.Contains(h, []byte("<svg")):
		return fmt.Errorf("%w: SVG is not accepted", ErrRefused)
	case bytes.Contains(h, []byte("<?xml")):
		return fmt.Errorf("%w: XML is not accepted", ErrRefused)
	}
	return fmt.Errorf("%w: HTML is not accepted", ErrRefused)
}

// streamText streams a content that is neither an image nor a PDF: text
// (UTF-8 over the whole stream, no control characters but \t \n \r \f)
// or, with lim.AllowOther, anything else but markup.
func streamText(head []byte, br io.Reader, lr *limitReader, w *countWriter, lim Limits) (Result, error) {
	if ct := http.DetectContentType(head); strings.HasPrefix(ct, "text/html") || strings.HasPrefix(ct, "text/xml") {
		return Result{}, markupError(head)
	}
	var sc textScan
	check := func(p []byte) error {
		sc.scan(p)
		if sc.markup {
			return markupError(head)
		}
		if sc.notText != "" && !lim.AllowOther {
			return fmt.Errorf("%w: the file is not an image, a PDF or text (%s)", ErrRefused, sc.notText)
		}
		return nil
	}
	if _, err := stream(br, lr, w, check); err != nil {
		return Result{}, err
	}
	sc.end()
	switch {
	case sc.notText == "":
		return Result{Type: TypeText}, nil
	case lim.AllowOther:
		return Result{Type: TypeOther}, nil
	}
	return Result{}, fmt.Errorf("%w: the file is not an image, a PDF or text (%s)", ErrRefused, sc.notText)
}

// textScan checks a stream, chunk by chunk, for being text: valid UTF-8
// (a rune may straddle two chunks) without control characters other than
// \t \n \r \f. It also finds the first character that is not blank (a
// space or a byte order mark): '<' is markup.
type textScan struct {
	carry   [utf8.UTFMax]byte // the start of a rune cut at the end of the last chunk
	nc      int
	started bool   // a non-blank character was seen
	markup  bool   // the first non-blank character is '<'
	notText string // why it is not text; "" while it is
}

// done reports that more bytes cannot change the verdict.
func (s *textScan) done() bool { return s.started && s.notText != "" }

func (s *textScan) scan(p []byte) {
	if s.nc > 0 {
		// Complete the cut rune with the first bytes of p.
		need := min(utf8.UTFMax-s.nc, len(p))
		var tmp [2 * utf8.UTFMax]byte
		n := copy(tmp[:], s.carry[:s.nc])
		n += copy(tmp[n:], p[:need])
		if !utf8.FullRune(tmp[:n]) {
			s.nc = copy(s.carry[:], tmp[:n])
			return
		}
		r, size := utf8.DecodeRune(tmp[:n])
		if size <= s.nc {
			// The cut bytes are no rune's start: invalid, whatever follows.
			s.rune(utf8.RuneError, 1)
		} else {
			s.rune(r, size)
			p = p[size-s.nc:]
		}
		s.nc = 0
	}
	for len(p) > 0 && !s.done() {
		if c := p[0]; c < utf8.RuneSelf {
			s.rune(rune(c), 1)
			p = p[1:]
			continue
		}
		if !utf8.FullRune(p) {
			s.nc = copy(s.carry[:], p)
			return
		}
		r, size := utf8.DecodeRune(p)
		s.rune(r, size)
		p = p[size:]
	}
}

// rune takes one decoded rune (utf8.RuneError of size 1: an invalid byte).
func (s *textScan) rune(r rune, size int) {
	if !s.started && !isBlank(r) {
		s.started = true
		s.markup = r == '<'
	}
	if s.notText != "" {
		return
	}
	switch {
	case r == utf8.RuneError && size == 1:
		s.notText = "it is not valid UTF-8"
	case r == '\t', r == '\n', r == '\r', r == '\f':
	case unicode.IsControl(r):
		s.notText = fmt.Sprintf("it has the control character %U", r)
	}
}

// isBlank reports the characters skipped before the first one that
// counts: spaces (not \v, a control character) and the byte order mark.
func isBlank(r rune) bool {
	switch r {
	case '\t', '\n', '\r', '\f', '\uFEFF':
		return true
	}
	return unicode.IsSpace(r) && !unicode.IsControl(r)
}

// end is called after the last chunk: a rune still cut is not UTF-8.
func (s *textScan) end() {
	if s.nc > 0 && s.notText == "" {
		s.notText = "it is not valid UTF-8"
	}
	s.nc = 0
}
