package media

import (
	"bytes"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"runtime"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

const (
	maxSide      = 65535 // pixels on a side of an image
	maxGIFFrames = 4096  // frames of an animated GIF
	maxJPEGScans = 1000  // SOS markers in a JPEG (each scan walks the whole image)
	jpegQuality  = 90
	thumbQuality = 80
)

// badImage is ErrBadImage with words.
func badImage(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadImage}, args...)...)
}

// processImage checks an image's header, decodes it, writes it re-encoded
// to w and makes its thumbnail. br is positioned at the image's first byte.
func processImage(k kind, br io.Reader, lr *limitReader, lim Limits, w *countWriter) (Result, error) {
	// The header: recorded as it is read, so the decoder reads it again.
	var rec bytes.Buffer
	cfg, err := decodeConfig(k, io.TeeReader(br, &rec))
	if lr.err != nil {
		return Result{}, lr.err
	}
	if h := rec.Bytes(); k == kindGIF && len(h) >= 8 && (string(h[6:8]) == "/*" || string(h[6:8]) == "//") {
		// "GIF89a/*": the width's bytes open a comment, the classic
		// GIF/JavaScript polyglot; re-encoded it would start so again.
		return Result{}, fmt.Errorf("%w: a GIF whose header reads as the start of a script (a GIF/JavaScript polyglot) is not accepted", ErrRefused)
	}
	if err != nil {
		return Result{}, badImage("%s does not decode: %v", k.desc(), err)
	}
	if err := checkSize(cfg.Width, cfg.Height, 1, lim); err != nil {
		return Result{}, err
	}
	if k == kindGIF {
		return processGIF(cfg, &rec, br, lr, lim, w)
	}

	src := io.MultiReader(bytes.NewReader(rec.Bytes()), br)
	if k == kindJPEG {
		src = &scanCounter{r: src}
	}
	img, err := decode(k, src)
	if lr.err != nil {
		return Result{}, lr.err
	}
	if err != nil {
		return Result{}, badImage("%s is truncated or damaged: %v", k.desc(), err)
	}
	// The rest of the stream (after the image's end) counts to the limit.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return Result{}, lr.failure(err)
	}

	res := Result{Type: TypePNG, Image: true}
	if k == kindJPEG {
		img = orient(img, jpegOrientation(rec.Bytes()))
		res.Type = TypeJPEG
	}
	rec = bytes.Buffer{}
	b := img.Bounds()
	res.Width, res.Height = b.Dx(), b.Dy()
	if k == kindJPEG {
		err = jpeg.Encode(w, img, &jpeg.Options{Quality: jpegQuality})
	} else {
		err = (&png.Encoder{CompressionLevel: png.DefaultCompression}).Encode(w, img)
	}
	if err != nil {
		return Result{}, encodeFailure(w, err)
	}
	if err := thumbnail(&res, img, b, lim.ThumbSize); err != nil {
		return Result{}, err
	}
	return res, nil
}

// processGIF reads the rest of a GIF (its header is in rec), counts its
// frames against lim.MaxPixels before decoding them, and writes it
// re-encoded with its frames, delays and loop count.
func processGIF(cfg image.Config, rec *bytes.Buffer, br io.Reader, lr *limitReader, lim Limits, w *countWriter) (Result, error) {
	if _, err := rec.ReadFrom(br); err != nil {
		return Result{}, lr.failure(err)
	}
	frames, err := gifFrames(rec.Bytes())
	if err != nil {
		return Result{}, err
	}
	if err := checkSize(cfg.Width, cfg.Height, frames, lim); err != nil {
		return Result{}, err
	}
	g, err := gif.DecodeAll(bytes.NewReader(rec.Bytes()))
	if err != nil {
		return Result{}, badImage("the GIF image is truncated or damaged: %v", err)
	}
	*rec = bytes.Buffer{}
	if len(g.Image) == 0 {
		return Result{}, badImage("the GIF image has no frame")
	}
	if err := gif.EncodeAll(w, g); err != nil {
		return Result{}, encodeFailure(w, err)
	}
	res := Result{Type: TypeGIF, Image: true, Width: g.Config.Width, Height: g.Config.Height}
	first := g.Image[0]
	canvas := image.Rect(0, 0, g.Config.Width, g.Config.Height)
	if err := thumbnail(&res, first, canvas, lim.ThumbSize); err != nil {
		return Result{}, err
	}
	return res, nil
}

// encodeFailure is the error of an encoder: out's, or ErrBadImage.
func encodeFailure(w *countWriter, err error) error {
	if w.err != nil {
		return w.err
	}
	return badImage("the image cannot be re-encoded: %v", err)
}

// checkSize refuses an image of w x h pixels and frames frames that is
// empty or too large.
func checkSize(w, h, frames int, lim Limits) error {
	switch {
	case w <= 0 || h <= 0:
		return badImage("the image has no pixels (%d x %d)", w, h)
	case w > maxSide || h > maxSide:
		return badImage("the image is %d x %d pixels, more than %d on a side", w, h, maxSide)
	case frames > maxGIFFrames:
		return badImage("the image has %d frames, more than %d", frames, maxGIFFrames)
	case int64(w)*int64(h)*int64(frames) > lim.MaxPixels:
		if frames > 1 {
			return badImage("the image is %d x %d pixels in %d frames, more than %d pixels in all", w, h, frames, lim.MaxPixels)
		}
		return badImage("the image is %d x %d pixels, more than %d", w, h, lim.MaxPixels)
	}
	return nil
}

func decodeConfig(k kind, r io.Reader) (image.Config, error) {
	switch k {
	case kindPNG:
		return png.DecodeConfig(r)
	case kindJPEG:
		return jpeg.DecodeConfig(r)
	case kindGIF:
		return gif.DecodeConfig(r)
	default:
		return webp.DecodeConfig(r)
	}
}

func decode(k kind, r io.Reader) (image.Image, error) {
	switch k {
	case kindPNG:
		return png.Decode(r)
	case kindJPEG:
		return jpeg.Decode(r)
	default:
		return webp.Decode(r)
	}
}

// gifFrames counts the frames of a GIF by walking its blocks, without
// decoding any. A GIF cut short counts the frames seen (the decoder then
// refuses it).
func gifFrames(b []byte) (int, error) {
	const header = 13 // signature, screen size, flags, background, aspect
	if len(b) < header {
		return 0, badImage("the GIF image is truncated")
	}
	pos := header
	if flags := b[10]; flags&0x80 != 0 {
		pos += 3 << (flags&7 + 1) // global color table
	}
	// subBlocks skips data sub-blocks from pos to past their terminator.
	subBlocks := func() {
		for pos < len(b) {
			n := int(b[pos])
			pos += 1 + n
			if n == 0 {
				return
			}
		}
	}
	frames := 0
	for pos < len(b) {
		switch b[pos] {
		case 0x21: // extension: label, sub-blocks
			pos += 2
			subBlocks()
		case 0x2C: // image descriptor: position, size, flags; then the LZW data
			if pos+10 > len(b) {
				return frames, nil
			}
			frames++
			if frames > maxGIFFrames {
				return frames, nil
			}
			if flags := b[pos+9]; flags&0x80 != 0 {
				pos += 3 << (flags&7 + 1) // local color table
			}
			pos += 11 // descriptor and LZW minimum code size
			subBlocks()
		case 0x3B: // trailer
			return frames, nil
		default:
			return 0, badImage("the GIF image is damaged (unknown block 0x%02x at byte %d)", b[pos], pos)
		}
	}
	return frames, nil
}

// scanCounter refuses a JPEG with more than maxJPEGScans start-of-scan
// markers (FF DA): each scan of a progressive JPEG costs a pass over the
// whole image, and one can be a few bytes. Markers inside other segments
// count too, which only makes the bound stricter.
type scanCounter struct {
	r     io.Reader
	prev  byte
	scans int
}

func (s *scanCounter) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	for _, c := range p[:n] {
		if s.prev == 0xFF && c == 0xDA {
			s.scans++
		}
		s.prev = c
	}
	if s.scans > maxJPEGScans {
		return 0, fmt.Errorf("more than %d scans", maxJPEGScans)
	}
	return n, err
}

// thumbnail sets res's thumbnail: the part sr of src (a GIF's first frame
// is a part of its canvas) drawn on a canvas the size of the image scaled
// to size pixels on its longest side, never enlarged. JPEG when it is
// opaque, PNG otherwise. Bilinear (area-weighted when shrinking, so no
// aliasing) costs half of Catmull-Rom on a 12 MP photo, for a difference
// not seen at thumbnail size.
func thumbnail(res *Result, src image.Image, sr image.Rectangle, size int) error {
	w, h := res.Width, res.Height
	tw, th := thumbSize(w, h, size)
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	fr := src.Bounds().Intersect(sr)
	o := fr.Sub(sr.Min) // the part drawn, on a canvas at (0, 0)
	dr := image.Rect(o.Min.X*tw/w, o.Min.Y*th/h, ceilDiv(o.Max.X*tw, w), ceilDiv(o.Max.Y*th, h))
	if !fr.Empty() && !dr.Empty() {
		scaleInBands(dst, dr, src, fr)
	}
	var buf bytes.Buffer
	var err error
	if dst.Opaque() {
		res.ThumbType = TypeJPEG
		err = jpeg.Encode(&buf, dst, &jpeg.Options{Quality: thumbQuality})
	} else {
		res.ThumbType = TypePNG
		err = png.Encode(&buf, dst)
	}
	if err != nil {
		return badImage("the thumbnail cannot be encoded: %v", err)
	}
	res.Thumb, res.ThumbWidth, res.ThumbHeight = buf.Bytes(), tw, th
	return nil
}

// thumbRows is the height of a band of scaleInBands, in thumbnail rows.
const thumbRows = 16

// scaleInBands draws src's part fr into dst's part dr, scaled bilinearly,
// thumbRows rows of dr at a time with the matching rows of fr, yielding
// the processor between bands (yield.go): one call on a 12 MP photo is
// 0.3 s of computation without a pause. At a band's edge the kernel sees
// only its own band's rows: invisible at thumbnail size.
func scaleInBands(dst *image.RGBA, dr image.Rectangle, src image.Image, fr image.Rectangle) {
	dh, fh := dr.Dy(), fr.Dy()
	for y := 0; y < dh; y += thumbRows {
		y1 := min(y+thumbRows, dh)
		sy0 := fr.Min.Y + y*fh/dh
		sy1 := fr.Min.Y + ceilDiv(y1*fh, dh)
		if sy1 <= sy0 {
			sy1 = sy0 + 1
		}
		d := image.Rect(dr.Min.X, dr.Min.Y+y, dr.Max.X, dr.Min.Y+y1)
		s := image.Rect(fr.Min.X, sy0, fr.Max.X, min(sy1, fr.Max.Y))
		draw.BiLinear.Scale(dst, d, src, s, draw.Src, nil)
		runtime.Gosched()
	}
}

// thumbSize is w x h scaled to max on the longest side, never enlarged,
// at least 1 x 1.
func thumbSize(w, h, maxSide int) (int, int) {
	if w <= maxSide && h <= maxSide {
		return w, h
	}
	if w >= h {
		return maxSide, max(1, (h*maxSide+w/2)/w)
	}
	return max(1, (w*maxSide+h/2)/h), maxSide
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
