package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"testing"
)

var sentinels = []error{ErrTooLarge, ErrRefused, ErrBadImage, ErrBadName}

// wantErr fails unless err wraps want and no other sentinel.
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("err = %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if !errors.Is(s, want) && errors.Is(err, s) {
			t.Fatalf("err = %v wraps %v too", err, s)
		}
	}
}

// process runs Process with a 1 MiB limit.
func process(t *testing.T, data []byte, name string, lim Limits) (Result, []byte, error) {
	t.Helper()
	if lim.MaxBytes == 0 {
		lim.MaxBytes = 1 << 20
	}
	var out bytes.Buffer
	res, err := Process(bytes.NewReader(data), name, lim, &out)
	if err == nil && res.Size != int64(out.Len()) {
		t.Fatalf("Size %d, %d bytes written", res.Size, out.Len())
	}
	return res, out.Bytes(), err
}

// gradient is an opaque w x h picture.
func gradient(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			i := m.PixOffset(x, y)
			copy(m.Pix[i:i+4], []uint8{uint8(x * 255 / max(w-1, 1)), uint8(y * 255 / max(h-1, 1)), 90, 255})
		}
	}
	return m
}

func pngBytes(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// palettedFrame is a w x h frame of one color of a 4-color palette.
func palettedFrame(w, h int, idx uint8) *image.Paletted {
	p := color.Palette{color.RGBA{255, 0, 0, 255}, color.RGBA{0, 255, 0, 255}, color.RGBA{0, 0, 255, 255}, color.RGBA{0, 0, 0, 0}}
	m := image.NewPaletted(image.Rect(0, 0, w, h), p)
	for i := range m.Pix {
		m.Pix[i] = idx
	}
	return m
}

func gifBytes(t testing.TB, g *gif.GIF) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeader is a PNG signature and an IHDR chunk (8-bit RGBA) declaring
// w x h, with a correct CRC, and nothing else.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	data := binary.BigEndian.AppendUint32(nil, w)
	data = binary.BigEndian.AppendUint32(data, h)
	data = append(data, 8, 6, 0, 0, 0)
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	chunk := append([]byte("IHDR"), data...)
	b = append(b, chunk...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(chunk))
}

// Markers planted in a JPEG's metadata; none may survive Process.
const (
	gpsMarker     = "GPS-SECRET-LOCATION-48.8584N"
	exifMarker    = "EXIF-DESCRIPTION-MARKER"
	commentMarker = "JPEG-COMMENT-MARKER"
)

// gpsLatitude is the GPS latitude planted (3 rationals), as its bytes.
var gpsLatitude = []byte{48, 0, 0, 0, 1, 0, 0, 0, 51, 0, 0, 0, 1, 0, 0, 0, 0x1F, 0x85, 0x03, 0x00, 0x10, 0x27, 0x00, 0x00}

// exifSegment is an APP1 Exif segment (little-endian TIFF) whose IFD0 has
// ImageDescription, Orientation and a GPS IFD pointer; the GPS IFD has a
// latitude and a processing method.
func exifSegment(orientation uint16, bigEndian bool) []byte {
	type byteOrder interface {
		binary.ByteOrder
		binary.AppendByteOrder
	}
	var bo byteOrder = binary.LittleEndian
	tiff := []byte("II*\x00")
	if bigEndian {
		bo, tiff = binary.BigEndian, []byte("MM\x00*")
	}
	tiff = bo.AppendUint32(tiff, 8)
	// IFD0 at 8: 3 entries (2 + 36 bytes) + next IFD (4) = ends at 50.
	desc := append([]byte(exifMarker), 0)
	descOff := uint32(50)
	gpsOff := descOff + uint32(len(desc))
	entry := func(b []byte, tag, typ uint16, count, value uint32, short bool) []byte {
		b = bo.AppendUint16(b, tag)
		b = bo.AppendUint16(b, typ)
		b = bo.AppendUint32(b, count)
		if short {
			b = bo.AppendUint16(b, uint16(value))
			return append(b, 0, 0)
		}
		return bo.AppendUint32(b, value)
	}
	tiff = bo.AppendUint16(tiff, 3)
	tiff = entry(tiff, 0x010E, 2, uint32(len(desc)), descOff, false)
	tiff = entry(tiff, 0x0112, 3, 1, uint32(orientation), true)
	tiff = entry(tiff, 0x8825, 4, 1, gpsOff, false)
	tiff = bo.AppendUint32(tiff, 0)
	tiff = append(tiff, desc...)
	// GPS IFD: 3 entries (2 + 36) + 4 = 42 bytes, then the values.
	latOff := gpsOff + 42
	methOff := latOff + uint32(len(gpsLatitude))
	tiff = bo.AppendUint16(tiff, 3)
	tiff = entry(tiff, 0x0001, 2, 2, 'N', false)
	tiff = entry(tiff, 0x0002, 5, 3, latOff, false)
	tiff = entry(tiff, 0x001B, 7, uint32(len(gpsMarker)), methOff, false)
	tiff = bo.AppendUint32(tiff, 0)
	tiff = append(tiff, gpsLatitude...)
	tiff = append(tiff, gpsMarker...)

	payload := append([]byte("Exif\x00\x00"), tiff...)
	seg := []byte{0xFF, 0xE1}
	seg = binary.BigEndian.AppendUint16(seg, uint16(len(payload)+2))
	return append(seg, payload...)
}

// withSegments inserts segments after a JPEG's SOI marker.
func withSegments(jpg []byte, segs ...[]byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	for _, s := range segs {
		out = append(out, s...)
	}
	return append(out, jpg[2:]...)
}

func comSegment(text string) []byte {
	seg := []byte{0xFF, 0xFE}
	seg = binary.BigEndian.AppendUint16(seg, uint16(len(text)+2))
	return append(seg, text...)
}
