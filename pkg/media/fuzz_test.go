package media

import (
	"bytes"
	"errors"
	"image"
	"image/gif"
	"os"
	"testing"
)

func FuzzProcess(f *testing.F) {
	for _, name := range []string{"testdata/lossless_alpha.webp", "testdata/lossy.webp", "testdata/animated.webp"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "x.webp", false)
	}
	jpg := jpegBytes(f, gradient(24, 16))
	f.Add(pngBytes(f, gradient(20, 10)), "a.png", false)
	f.Add(jpg, "a.jpg", false)
	f.Add(withSegments(jpg, exifSegment(6, false), comSegment("c")), "a.jpg", false)
	f.Add(withSegments(jpg, exifSegment(7, true)), "", false)
	f.Add(gifBytes(f, &gif.GIF{Image: []*image.Paletted{palettedFrame(8, 6, 0), palettedFrame(8, 6, 1)}, Delay: []int{5, 5}}), "a.gif", false)
	f.Add(pngHeader(50000, 50000), "", false)
	f.Add([]byte("%PDF-1.7\n%%EOF"), "a.pdf", false)
	f.Add([]byte("hello ✓\n"), "a.txt", false)
	f.Add([]byte("<svg/>"), "", true)
	f.Add([]byte("\x00\x01\x02binary"), "", true)
	f.Add([]byte("GIF89a/*\n\n*/=1;"), "", false)

	f.Fuzz(func(t *testing.T, data []byte, name string, other bool) {
		var out bytes.Buffer
		lim := Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20, AllowOther: other, ThumbSize: 64}
		res, err := Process(bytes.NewReader(data), name, lim, &out)
		if err != nil {
			n := 0
			for _, s := range sentinels {
				if errors.Is(err, s) {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("err %v wraps %d sentinels", err, n)
			}
			return
		}
		if res.Size != int64(out.Len()) {
			t.Fatalf("Size %d, wrote %d", res.Size, out.Len())
		}
		if !res.Image {
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatal("a document was changed")
			}
			return
		}
		m, format, err := image.Decode(&out)
		if err != nil {
			t.Fatalf("the %s output does not decode: %v", res.Type, err)
		}
		if "image/"+format != res.Type || m.Bounds().Dx() != res.Width || m.Bounds().Dy() != res.Height {
			t.Fatalf("output %s %v, result %+v", format, m.Bounds(), res)
		}
		th, _, err := image.Decode(bytes.NewReader(res.Thumb))
		if err != nil {
			t.Fatalf("the thumbnail does not decode: %v", err)
		}
		if th.Bounds().Dx() != res.ThumbWidth || th.Bounds().Dy() != res.ThumbHeight || max(res.ThumbWidth, res.ThumbHeight) > 64 {
			t.Fatalf("thumbnail %v, result %+v", th.Bounds(), res)
		}
	})
}
