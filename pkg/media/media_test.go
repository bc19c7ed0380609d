package media

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// decodeAs decodes b (as the type typ says) and checks its size.
func decodeAs(t *testing.T, b []byte, typ string, w, h int) image.Image {
	t.Helper()
	m, format, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("output does not decode: %v", err)
	}
	if "image/"+format != typ {
		t.Fatalf("output is %s, Type says %s", format, typ)
	}
	if got := m.Bounds(); got.Dx() != w || got.Dy() != h {
		t.Fatalf("output is %v, want %d x %d", got, w, h)
	}
	return m
}

func TestProcessImages(t *testing.T) {
	webpAlpha, err := os.ReadFile("testdata/lossless_alpha.webp")
	if err != nil {
		t.Fatal(err)
	}
	webpLossy, err := os.ReadFile("testdata/lossy.webp")
	if err != nil {
		t.Fatal(err)
	}
	transparent := image.NewNRGBA(image.Rect(0, 0, 30, 20))
	transparent.Set(3, 3, color.NRGBA{255, 0, 0, 255})
	cases := []struct {
		name      string
		data      []byte
		typ       string
		w, h      int
		thumbType string
	}{
		{"a.png", pngBytes(t, gradient(50, 40)), TypePNG, 50, 40, TypeJPEG},
		{"alpha.PNG", pngBytes(t, transparent), TypePNG, 30, 20, TypePNG},
		{"a.jpg", jpegBytes(t, gradient(33, 17)), TypeJPEG, 33, 17, TypeJPEG},
		{"a.gif", gifBytes(t, &gif.GIF{Image: []*image.Paletted{palettedFrame(20, 10, 0)}, Delay: []int{0}}), TypeGIF, 20, 10, TypeJPEG},
		{"alpha.webp", webpAlpha, TypePNG, 16, 12, TypePNG},
		{"no name", webpLossy, TypePNG, 40, 30, TypeJPEG},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, out, err := process(t, c.data, c.name, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Type != c.typ || !res.Image || res.Width != c.w || res.Height != c.h {
				t.Fatalf("res = %+v", res)
			}
			decodeAs(t, out, c.typ, c.w, c.h)
			if res.ThumbType != c.thumbType || res.ThumbWidth != c.w || res.ThumbHeight != c.h {
				t.Fatalf("thumb %s %d x %d, want %s (never enlarged)", res.ThumbType, res.ThumbWidth, res.ThumbHeight, c.thumbType)
			}
			decodeAs(t, res.Thumb, res.ThumbType, c.w, c.h)
		})
	}
}

func TestProcessWebPKeepsPixels(t *testing.T) {
	data, err := os.ReadFile("testdata/lossless_alpha.webp")
	if err != nil {
		t.Fatal(err)
	}
	_, out, err := process(t, data, "x.webp", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	m := decodeAs(t, out, TypePNG, 16, 12)
	// The fixture is lossless: pixel (5, 4) was NRGBA{200, 80, 40, 80}.
	if got := color.NRGBAModel.Convert(m.At(5, 4)).(color.NRGBA); got != (color.NRGBA{200, 80, 40, 80}) {
		t.Fatalf("pixel (5, 4) = %v", got)
	}
}

func TestProcessAnimatedGIF(t *testing.T) {
	g := &gif.GIF{
		Image:     []*image.Paletted{palettedFrame(40, 30, 0), palettedFrame(40, 30, 1), palettedFrame(40, 30, 2)},
		Delay:     []int{10, 20, 30},
		LoopCount: 2,
	}
	g.Image[1].Rect = image.Rect(0, 0, 40, 30) // full frames
	data := gifBytes(t, g)
	res, out, err := process(t, data, "anim.gif", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != TypeGIF || res.Width != 40 || res.Height != 30 {
		t.Fatalf("res = %+v", res)
	}
	back, err := gif.DecodeAll(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Image) != 3 || back.Delay[0] != 10 || back.Delay[1] != 20 || back.Delay[2] != 30 || back.LoopCount != 2 {
		t.Fatalf("frames %d delays %v loop %d", len(back.Image), back.Delay, back.LoopCount)
	}
	// The thumbnail is the first frame: red.
	thumb := decodeAs(t, res.Thumb, res.ThumbType, 40, 30)
	if r, g, b, _ := thumb.At(20, 15).RGBA(); r>>8 < 200 || g>>8 > 60 || b>>8 > 60 {
		t.Fatalf("thumbnail pixel = %v, want red", thumb.At(20, 15))
	}

	// 3 frames of 40 x 30 = 3600 pixels.
	_, _, err = process(t, data, "anim.gif", Limits{MaxPixels: 3599})
	wantErr(t, err, ErrBadImage)
	if _, _, err := process(t, data, "anim.gif", Limits{MaxPixels: 3600}); err != nil {
		t.Fatal(err)
	}
}

func TestProcessGIFFirstFrameSmallerThanCanvas(t *testing.T) {
	f := palettedFrame(10, 10, 0)
	f.Rect = image.Rect(10, 10, 20, 20)
	data := gifBytes(t, &gif.GIF{Image: []*image.Paletted{f}, Delay: []int{0}, Config: image.Config{Width: 40, Height: 40, ColorModel: f.Palette}})
	res, _, err := process(t, data, "x.gif", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	// Around the frame the canvas is transparent: a PNG thumbnail.
	if res.ThumbType != TypePNG {
		t.Fatalf("thumb type %s", res.ThumbType)
	}
	thumb := decodeAs(t, res.Thumb, TypePNG, 40, 40)
	if _, _, _, a := thumb.At(2, 2).RGBA(); a != 0 {
		t.Fatal("outside the frame is not transparent")
	}
	if r, _, _, a := thumb.At(15, 15).RGBA(); a != 0xffff || r>>8 < 200 {
		t.Fatalf("the frame is not drawn at its place: %v", thumb.At(15, 15))
	}
}

func TestProcessThumbnailSize(t *testing.T) {
	cases := []struct{ w, h, size, tw, th int }{
		{1000, 500, 0, 320, 160},
		{500, 1000, 0, 160, 320},
		{640, 640, 0, 320, 320},
		{320, 100, 0, 320, 100},
		{1000, 2, 0, 320, 1},
		{1000, 500, 100, 100, 50},
	}
	for _, c := range cases {
		res, _, err := process(t, pngBytes(t, gradient(c.w, c.h)), "", Limits{ThumbSize: c.size})
		if err != nil {
			t.Fatal(err)
		}
		if res.ThumbWidth != c.tw || res.ThumbHeight != c.th {
			t.Errorf("%d x %d: thumbnail %d x %d, want %d x %d", c.w, c.h, res.ThumbWidth, res.ThumbHeight, c.tw, c.th)
		}
		decodeAs(t, res.Thumb, res.ThumbType, c.tw, c.th)
	}
}

func TestProcessJPEGMetadataRemovedAndOriented(t *testing.T) {
	// 64 x 32, red in the top-left 16 x 16 corner, green elsewhere.
	src := image.NewRGBA(image.Rect(0, 0, 64, 32))
	for y := range 32 {
		for x := range 64 {
			c := color.RGBA{0, 200, 0, 255}
			if x < 16 && y < 16 {
				c = color.RGBA{220, 0, 0, 255}
			}
			src.Set(x, y, c)
		}
	}
	for _, bigEndian := range []bool{false, true} {
		data := withSegments(jpegBytes(t, src), exifSegment(6, bigEndian), comSegment(commentMarker))
		for _, m := range []string{gpsMarker, exifMarker, commentMarker, string(gpsLatitude), "Exif"} {
			if !bytes.Contains(data, []byte(m)) {
				t.Fatalf("fixture lacks %q", m)
			}
		}
		if o := jpegOrientation(data); o != 6 {
			t.Fatalf("orientation read %d, want 6", o)
		}
		res, out, err := process(t, data, "photo.JPG", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		// Orientation 6: turned 90° clockwise, the red corner is top right.
		if res.Type != TypeJPEG || res.Width != 32 || res.Height != 64 {
			t.Fatalf("res = %+v, want a 32 x 64 JPEG", res)
		}
		m := decodeAs(t, out, TypeJPEG, 32, 64)
		isRed := func(m image.Image, x, y int) bool {
			r, g, _, _ := m.At(x, y).RGBA()
			return r>>8 > 150 && g>>8 < 80
		}
		if !isRed(m, 24, 8) || isRed(m, 8, 8) || isRed(m, 24, 56) {
			t.Fatal("the image is not turned 90° clockwise")
		}
		thumb := decodeAs(t, res.Thumb, res.ThumbType, 32, 64)
		if !isRed(thumb, 24, 8) || isRed(thumb, 8, 8) {
			t.Fatal("the thumbnail is not turned")
		}
		for _, b := range [][]byte{out, res.Thumb} {
			for _, m := range []string{gpsMarker, exifMarker, commentMarker, string(gpsLatitude), "Exif"} {
				if bytes.Contains(b, []byte(m)) {
					t.Fatalf("%q survived", m)
				}
			}
		}
	}
}

func TestJPEGOrientationParsing(t *testing.T) {
	base := jpegBytes(t, gradient(8, 8))
	cases := []struct {
		name string
		data []byte
		want int
	}{
		{"none", base, 1},
		{"little-endian 3", withSegments(base, exifSegment(3, false)), 3},
		{"big-endian 8", withSegments(base, exifSegment(8, true)), 8},
		{"after a comment", withSegments(base, comSegment("hi"), exifSegment(5, false)), 5},
		{"out of range", withSegments(base, exifSegment(9, false)), 1},
		{"truncated segment", withSegments(base, exifSegment(6, false)[:30]), 1},
		{"not a JPEG", []byte("hello"), 1},
	}
	for _, c := range cases {
		if got := jpegOrientation(c.data); got != c.want {
			t.Errorf("%s: orientation %d, want %d", c.name, got, c.want)
		}
	}
}

func TestOrient(t *testing.T) {
	// Where the source's top-left and top-right pixels go, per orientation
	// (as EXIF defines them), in a w x h source shown as dw x dh.
	const w, h = 6, 4
	type pt struct{ x, y int }
	corners := map[int][2]pt{
		1: {{0, 0}, {w - 1, 0}},
		2: {{w - 1, 0}, {0, 0}},
		3: {{w - 1, h - 1}, {0, h - 1}},
		4: {{0, h - 1}, {w - 1, h - 1}},
		5: {{0, 0}, {0, w - 1}},
		6: {{h - 1, 0}, {h - 1, w - 1}},
		7: {{h - 1, w - 1}, {h - 1, 0}},
		8: {{0, w - 1}, {0, 0}},
	}
	// forward maps a source pixel to where it shows.
	forward := func(x, y, o int) (int, int) {
		tl, tr := corners[o][0], corners[o][1]
		// Moving right in the source moves from tl towards tr.
		dx, dy := sign(tr.x-tl.x), sign(tr.y-tl.y)
		// Moving down in the source: perpendicular, towards the far side.
		var ex, ey int
		switch o {
		case 1, 2:
			ex, ey = 0, 1
		case 3, 4:
			ex, ey = 0, -1
		case 5, 8:
			ex, ey = 1, 0
		default:
			ex, ey = -1, 0
		}
		return tl.x + dx*x + ex*y, tl.y + dy*x + ey*y
	}
	images := map[string]func() image.Image{
		"gray":  func() image.Image { return image.NewGray(image.Rect(0, 0, w, h)) },
		"rgba":  func() image.Image { return image.NewRGBA(image.Rect(0, 0, w, h)) },
		"cmyk":  func() image.Image { return image.NewCMYK(image.Rect(0, 0, w, h)) },
		"444":   func() image.Image { return image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio444) },
		"420":   func() image.Image { return image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420) },
		"422":   func() image.Image { return image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio422) },
		"440":   func() image.Image { return image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio440) },
		"411":   func() image.Image { return image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio411) },
		"nrgba": func() image.Image { return image.NewNRGBA(image.Rect(0, 0, w, h)) },
	}
	fill := func(m image.Image) {
		rng := rand.New(rand.NewPCG(1, 2))
		switch m := m.(type) {
		case *image.Gray:
			for i := range m.Pix {
				m.Pix[i] = uint8(rng.IntN(256))
			}
		case *image.RGBA:
			for i := range m.Pix {
				m.Pix[i] = uint8(rng.IntN(256))
			}
		case *image.CMYK:
			for i := range m.Pix {
				m.Pix[i] = uint8(rng.IntN(256))
			}
		case *image.NRGBA:
			for i := range m.Pix {
				m.Pix[i] = uint8(rng.IntN(256))
			}
		case *image.YCbCr:
			for i := range m.Y {
				m.Y[i] = uint8(rng.IntN(256))
			}
			for i := range m.Cb {
				m.Cb[i], m.Cr[i] = uint8(rng.IntN(256)), uint8(rng.IntN(256))
			}
		}
	}
	for name, mk := range images {
		for o := 1; o <= 8; o++ {
			src, ref := mk(), mk()
			fill(src)
			fill(ref) // the same pixels: orient may take src's planes
			got := orient(src, o)
			dw, dh := w, h
			if o >= 5 {
				dw, dh = h, w
			}
			if b := got.Bounds(); b != image.Rect(0, 0, dw, dh) {
				t.Fatalf("%s %d: bounds %v", name, o, b)
			}
			for y := range h {
				for x := range w {
					dx, dy := forward(x, y, o)
					a := color.RGBAModel.Convert(ref.At(x, y))
					b := color.RGBAModel.Convert(got.At(dx, dy))
					if a != b {
						t.Fatalf("%s %d: source (%d, %d) %v shows at (%d, %d) as %v", name, o, x, y, a, dx, dy, b)
					}
				}
			}
		}
	}
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

func TestProcessStreamsDocuments(t *testing.T) {
	pdf := []byte("%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n")
	text := []byte("\xef\xbb\xbfHello, wörld ✓\r\n\ttab\fform feed\nnot markup: <b>\n")
	cases := []struct {
		name string
		data []byte
		typ  string
	}{
		{"doc.pdf", pdf, TypePDF},
		{"notes.txt", text, TypeText},
		{"", []byte{}, TypeText},
	}
	for _, c := range cases {
		res, out, err := process(t, c.data, c.name, Limits{})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if res.Type != c.typ || res.Image || res.Size != int64(len(c.data)) || !bytes.Equal(out, c.data) {
			t.Fatalf("%s: res = %+v, out %q", c.name, res, out)
		}
	}
}

func TestProcessTextAcrossChunks(t *testing.T) {
	// Multibyte runes cut by every read (one byte at a time), and a long
	// text past the 32 KiB read buffer.
	text := strings.Repeat("日本語のテキスト ✓ ", 5000)
	for _, r := range []io.Reader{iotest.OneByteReader(strings.NewReader(text)), strings.NewReader(text)} {
		var out bytes.Buffer
		res, err := Process(r, "t.txt", Limits{MaxBytes: 1 << 20}, &out)
		if err != nil {
			t.Fatal(err)
		}
		if res.Type != TypeText || out.String() != text {
			t.Fatalf("res = %+v", res)
		}
	}
	// A rune's start cut by a read, then no continuation: not UTF-8, and
	// the verdict is the same one byte at a time.
	for _, bad := range []string{"ok \xe2\x82A", "ok \xe2\x82\xe2\x82\xac", "\xf0\x9f\x98 x"} {
		for _, allow := range []bool{false, true} {
			var out bytes.Buffer
			res, err := Process(iotest.OneByteReader(strings.NewReader(bad)), "", Limits{MaxBytes: 100, AllowOther: allow}, &out)
			if allow && (err != nil || res.Type != TypeOther) || !allow && !errors.Is(err, ErrRefused) {
				t.Fatalf("%q (AllowOther %v): %+v, %v", bad, allow, res, err)
			}
		}
	}
	// The same with a rune cut at the very end: not UTF-8.
	_, _, err := process(t, []byte(text+"\xe6\x97"), "t.txt", Limits{})
	wantErr(t, err, ErrRefused)
	// Invalid far past the first chunk.
	_, _, err = process(t, []byte(text+"\xff"+text), "t.txt", Limits{})
	wantErr(t, err, ErrRefused)
}

func TestProcessRefuses(t *testing.T) {
	png1 := pngBytes(t, gradient(4, 4))
	js := []byte("var x = 1;\nfetch('/api/steal?c=' + document.cookie);\n")
	cases := []struct {
		what string
		name string
		data []byte
		word string // in the message
		// other: taken as TypeOther with AllowOther (not markup, no name
		// that says otherwise).
		other bool
	}{
		{"HTML named .png", "cat.png", []byte("<html><script>alert(1)</script></html>"), "not a PNG", false},
		{"JavaScript named .png", "cat.png", js, "not a PNG", false},
		{"PNG named .jpg", "cat.jpg", png1, "not a JPEG", false},
		{"text named .pdf", "a.pdf", []byte("hello"), "not a PDF", false},
		{"PNG named .svg", "x.svg", png1, "SVG", false},
		{"PNG named .HTML.", "x.HTML.", png1, "HTML", false},
		{"text named .htm", "x.htm", []byte("hi"), "HTML", false},
		{"text named .xhtml", "x.xhtml", []byte("hi"), "XHTML", false},
		{"SVG", "x.txt", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), "SVG", false},
		{"SVG with a prologue", "x", []byte("<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), "SVG", false},
		{"XML", "x", []byte("<?xml version=\"1.0\"?><a/>"), "XML", false},
		{"HTML", "page.txt", []byte("<!DOCTYPE html><p>hi"), "HTML", false},
		{"HTML after blanks and a BOM", "x", []byte("\xef\xbb\xbf \r\n\t<html>"), "HTML", false},
		{"HTML after 40 KiB of blanks", "x", append(bytes.Repeat([]byte(" \n"), 20<<10), "<script>alert(1)</script>"...), "HTML", false},
		{"text with NUL", "a.txt", []byte("abc\x00def"), "U+0000", true},
		{"text with ESC", "a.txt", []byte("abc\x1b[31mred"), "U+001B", true},
		{"text with a vertical tab", "a.txt", []byte("\x0b<html>"), "U+000B", true},
		{"invalid UTF-8", "a.txt", []byte("caf\xe9"), "UTF-8", true},
		{"animated WebP", "a.webp", animatedWebPFixture(t), "animated", false},
		{"a WebP named .gif", "a.gif", []byte("RIFF\x00\x00\x00\x00WEBPVP8 "), "not a GIF", false},
	}
	for _, c := range cases {
		_, _, err := process(t, c.data, c.name, Limits{})
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: err = %v, want ErrRefused", c.what, err)
			continue
		}
		wantErr(t, err, ErrRefused)
		if !strings.Contains(err.Error(), c.word) {
			t.Errorf("%s: message %q lacks %q", c.what, err, c.word)
		}
		res, _, err := process(t, c.data, c.name, Limits{AllowOther: true})
		switch {
		case c.other && (err != nil || res.Type != TypeOther):
			t.Errorf("%s with AllowOther: %+v, %v; want TypeOther", c.what, res, err)
		case !c.other && !errors.Is(err, ErrRefused):
			t.Errorf("%s with AllowOther: err = %v, want ErrRefused", c.what, err)
		}
	}
}

func TestProcessAllowOther(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	bin := make([]byte, 100<<10)
	for i := range bin {
		bin[i] = byte(rng.IntN(256))
	}
	bin[0] = 0x7f // not '<', no magic
	_, _, err := process(t, bin, "data.bin", Limits{})
	wantErr(t, err, ErrRefused)
	res, out, err := process(t, bin, "data.bin", Limits{AllowOther: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Type != TypeOther || !bytes.Equal(out, bin) {
		t.Fatalf("res = %+v", res)
	}
	// Text with a NUL is other content when it is allowed.
	res, _, err = process(t, []byte("a\x00b"), "x.txt", Limits{AllowOther: true})
	if err != nil || res.Type != TypeOther {
		t.Fatalf("res = %+v, err = %v", res, err)
	}
}

func TestProcessGIFJavaScriptPolyglot(t *testing.T) {
	// A GIF whose header reads as JavaScript: "GIF89a/*" opens a comment
	// (the screen is 0x2A2F = 10799 pixels wide), closed in a GIF comment
	// extension before the payload.
	const payload = "*/=1;alert(document.cookie);/*"
	img := palettedFrame(10799, 1, 1)
	data := gifBytes(t, &gif.GIF{Image: []*image.Paletted{img}, Delay: []int{0}})
	if !bytes.HasPrefix(data, []byte("GIF89a/*")) {
		t.Fatalf("fixture starts %q", data[:8])
	}
	ext := append([]byte{0x21, 0xFE, byte(len(payload))}, payload...)
	ext = append(ext, 0)
	trailer := len(data) - 1
	poly := append(append(append([]byte{}, data[:trailer]...), ext...), data[trailer:]...)
	if !bytes.Contains(poly, []byte("alert(")) {
		t.Fatal("no payload")
	}
	// A valid GIF, and a script: refused, with words.
	_, out, err := process(t, poly, "funny.gif", Limits{})
	wantErr(t, err, ErrRefused)
	if !strings.Contains(err.Error(), "polyglot") || len(out) != 0 {
		t.Fatalf("err %v, %d bytes written", err, len(out))
	}
	// The same picture a pixel wider is an ordinary GIF.
	wide := gifBytes(t, &gif.GIF{Image: []*image.Paletted{palettedFrame(10800, 1, 1)}, Delay: []int{0}})
	if _, _, err := process(t, wide, "wide.gif", Limits{}); err != nil {
		t.Fatal(err)
	}
	// Not a valid GIF past its header: refused as well.
	_, _, err = process(t, []byte("GIF89a/*\n\n*/=1;alert(document.cookie);"), "funny.gif", Limits{})
	wantErr(t, err, ErrRefused)
}

func TestProcessBadImages(t *testing.T) {
	jpg := jpegBytes(t, gradient(64, 64))
	cases := []struct {
		what string
		data []byte
		lim  Limits
	}{
		{"truncated JPEG", jpg[:len(jpg)/2], Limits{}},
		{"JPEG header only", jpg[:200], Limits{}},
		{"truncated PNG", pngBytes(t, gradient(64, 64))[:100], Limits{}},
		{"PNG header only", pngHeader(10, 10), Limits{}},
		{"PNG 0 wide", pngHeader(0, 10), Limits{}},
		{"PNG 70000 x 1", pngHeader(70000, 1), Limits{}},
		{"PNG over MaxPixels", pngBytes(t, gradient(20, 20)), Limits{MaxPixels: 399}},
		{"GIF without frames", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), Limits{}},
		{"GIF cut", gifBytes(t, &gif.GIF{Image: []*image.Paletted{palettedFrame(20, 20, 0)}, Delay: []int{0}})[:30], Limits{}},
		{"WebP garbage", []byte("RIFF\x10\x00\x00\x00WEBPVP8L\x04\x00\x00\x00\x2f\x00\x00\x00"), Limits{}},
		{"JPEG with too many scans", withSegments(jpg, comSegment(strings.Repeat("\xff\xda", maxJPEGScans+1))), Limits{}},
	}
	for _, c := range cases {
		_, _, err := process(t, c.data, "", c.lim)
		if !errors.Is(err, ErrBadImage) {
			t.Errorf("%s: err = %v, want ErrBadImage", c.what, err)
			continue
		}
		wantErr(t, err, ErrBadImage)
		if c.what == "JPEG with too many scans" && !strings.Contains(err.Error(), "scans") {
			t.Errorf("%s: %v", c.what, err)
		}
	}
}

func TestProcessHugePNGHeaderRefusedCheaply(t *testing.T) {
	data := pngHeader(50000, 50000)
	if _, err := png.DecodeConfig(bytes.NewReader(data)); err != nil {
		t.Fatalf("the fixture's header is not valid: %v", err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	_, _, err := process(t, data, "big.png", Limits{})
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	wantErr(t, err, ErrBadImage)
	if !strings.Contains(err.Error(), "50000 x 50000") {
		t.Fatalf("message %q", err)
	}
	// Decoding it would take 10 GB; refusing takes the read buffer.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Fatalf("allocated %d bytes", alloc)
	}
	if elapsed > 2*time.Second {
		t.Fatalf("took %v", elapsed)
	}
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestProcessTooLarge(t *testing.T) {
	const max = 100 << 10
	text := bytes.Repeat([]byte("abcdefghi\n"), 20<<10) // 200 KiB
	noise := gradient(300, 300)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range noise.Pix {
		if i%4 != 3 {
			noise.Pix[i] = uint8(rng.IntN(256))
		}
	}
	bigPNG := pngBytes(t, noise)
	if len(bigPNG) <= 2000 {
		t.Fatalf("PNG of %d bytes", len(bigPNG))
	}
	cases := []struct {
		what string
		data []byte
		max  int64
	}{
		{"text, 1 byte over", text[:max+1], max},
		{"text, far over", text, max},
		{"PDF, 1 byte over", append([]byte("%PDF-1.4\n"), text[:max-8]...), max},
		{"PNG", bigPNG, 2000},
		{"PNG, 1 byte over", bigPNG, int64(len(bigPNG) - 1)},
		{"GIF", gifBytes(t, &gif.GIF{Image: []*image.Paletted{palettedFrame(200, 200, 0)}, Delay: []int{0}}), 100},
		{"tiny limit", []byte("ab"), 1},
	}
	for _, c := range cases {
		for _, oneByte := range []bool{false, true} {
			cr := &countingReader{r: bytes.NewReader(c.data)}
			var r io.Reader = cr
			if oneByte {
				r = iotest.OneByteReader(cr)
			}
			_, err := Process(r, "", Limits{MaxBytes: c.max}, io.Discard)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("%s: err = %v, want ErrTooLarge", c.what, err)
				continue
			}
			wantErr(t, err, ErrTooLarge)
			if cr.n > c.max+1 {
				t.Errorf("%s: read %d bytes, limit %d", c.what, cr.n, c.max)
			}
		}
	}
	// Exactly at the limit is fine.
	for _, data := range [][]byte{text[:max], bigPNG} {
		if _, _, err := process(t, data, "", Limits{MaxBytes: int64(len(data))}); err != nil {
			t.Errorf("%d bytes at the limit: %v", len(data), err)
		}
	}
	_, err := Process(strings.NewReader("x"), "", Limits{}, io.Discard)
	wantErr(t, err, ErrTooLarge)
}

func TestProcessReadAndWriteErrors(t *testing.T) {
	text := bytes.Repeat([]byte("hello\n"), 10<<10)
	png1 := pngBytes(t, gradient(200, 200))
	for _, data := range [][]byte{text, png1, []byte("%PDF-" + string(text))} {
		r := io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotest.ErrReader(os.ErrDeadlineExceeded))
		_, err := Process(r, "", Limits{MaxBytes: 1 << 20}, io.Discard)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("err = %v, want the reader's timeout", err)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				t.Fatalf("read error %v wraps %v", err, s)
			}
		}
		werr := errors.New("disk full")
		_, err = Process(bytes.NewReader(data), "", Limits{MaxBytes: 1 << 20}, failWriter{werr})
		if !errors.Is(err, werr) {
			t.Fatalf("err = %v, want the writer's", err)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				t.Fatalf("write error %v wraps %v", err, s)
			}
		}
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

func TestCleanName(t *testing.T) {
	ok := []struct{ in, want string }{
		{"photo.png", "photo.png"},
		{"  my holiday photo (1).JPG \t", "my holiday photo (1).JPG"},
		{"Фото с отпуска.jpeg", "Фото с отпуска.jpeg"},
		{"日本語 ✓ 🐱.pdf", "日本語 ✓ 🐱.pdf"},
		{"...", "..."},
		{".hidden", ".hidden"},
		{strings.Repeat("a", MaxNameLen), strings.Repeat("a", MaxNameLen)},
	}
	for _, c := range ok {
		got, err := CleanName(c.in)
		if err != nil || got != c.want {
			t.Errorf("CleanName(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	bad := []string{
		"", "   ", "../x.png", "..", ".", "a/b", `a\b`, "a\x00b", "a\nb.png", "a\x7fb",
		"a\u0085b", "photo\u202Egnp.exe", "x\u202Ay", "x\u2066y", "x\u2069y", "a\u2028b",
		strings.Repeat("x", 10000), strings.Repeat("a", MaxNameLen+1), "caf\xe9.png",
	}
	for _, in := range bad {
		got, err := CleanName(in)
		if !errors.Is(err, ErrBadName) {
			t.Errorf("CleanName(%q) = %q, %v; want ErrBadName", in, got, err)
			continue
		}
		wantErr(t, err, ErrBadName)
	}
}

// The decoders registered for image.Decode in these tests.
var _ = jpeg.Decode

func TestProcessDropsTrailingData(t *testing.T) {
	// An image with a script after its end (a polyglot's usual place):
	// re-encoded, the tail is gone; the bytes still count to the limit.
	tail := []byte("<script>alert(document.cookie)</script>")
	for _, img := range [][]byte{pngBytes(t, gradient(8, 8)), jpegBytes(t, gradient(8, 8))} {
		data := append(append([]byte{}, img...), tail...)
		_, out, err := process(t, data, "", Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(out, []byte("<script>")) {
			t.Fatal("the tail survived")
		}
		_, _, err = process(t, data, "", Limits{MaxBytes: int64(len(data) - 1)})
		wantErr(t, err, ErrTooLarge)
	}
}

func TestProcessGIFFrameLimit(t *testing.T) {
	g := &gif.GIF{}
	for range maxGIFFrames + 1 {
		g.Image = append(g.Image, palettedFrame(1, 1, 0))
		g.Delay = append(g.Delay, 1)
	}
	data := gifBytes(t, g)
	_, _, err := process(t, data, "", Limits{})
	wantErr(t, err, ErrBadImage)
	if !strings.Contains(err.Error(), "frames") {
		t.Fatalf("message %q", err)
	}
	g.Image, g.Delay = g.Image[:maxGIFFrames], g.Delay[:maxGIFFrames]
	if _, _, err := process(t, gifBytes(t, g), "", Limits{}); err != nil {
		t.Fatal(err)
	}
}

func animatedWebPFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/animated.webp") // img2webp, 2 frames
	if err != nil {
		t.Fatal(err)
	}
	return b
}
