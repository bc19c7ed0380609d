// Package mediatest makes the pictures the tests of uploads need: photos
// and screenshots carrying a GPS tag that must never leave a server.
package mediatest

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
)

// GPSMarker is in the EXIF of every picture made here (its image
// description, next to the GPS IFD): a server's output must not hold it.
const GPSMarker = "LIVECHAT-SECRET-GPS-51.5007N-0.1246W"

// EXIF is a big-endian TIFF as EXIF holds it: IFD0 with an
// ImageDescription (GPSMarker) and a GPS IFD pointer; the GPS IFD with
// GPSLatitudeRef "N".
func EXIF() []byte {
	be := binary.BigEndian
	desc := GPSMarker + "\x00"
	entry := func(tag, typ uint16, count, value uint32) []byte {
		e := make([]byte, 12)
		be.PutUint16(e[0:], tag)
		be.PutUint16(e[2:], typ)
		be.PutUint32(e[4:], count)
		be.PutUint32(e[8:], value)
		return e
	}
	// IFD0 at 8: 2 entries (2 + 2*12 + 4 = 30 bytes), then the GPS IFD at
	// 38 (2 + 12 + 4 = 18 bytes), then the description at 56.
	b := []byte("MM\x00\x2a\x00\x00\x00\x08")
	b = be.AppendUint16(b, 2)
	b = append(b, entry(0x010e, 2, uint32(len(desc)), 56)...) // ImageDescription
	b = append(b, entry(0x8825, 4, 1, 38)...)                 // GPSInfo IFD
	b = be.AppendUint32(b, 0)
	b = be.AppendUint16(b, 1)
	b = append(b, entry(0x0001, 2, 2, 'N'<<24)...) // GPSLatitudeRef "N"
	b = be.AppendUint32(b, 0)
	return append(b, desc...)
}

// PhotoWithGPS is a w x h JPEG (a gradient) with an APP1 Exif segment
// holding EXIF() right after its SOI.
func PhotoWithGPS(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{200, uint8(x), uint8(y), 255})
		}
	}
	var j bytes.Buffer
	_ = jpeg.Encode(&j, img, &jpeg.Options{Quality: 90}) // a bytes.Buffer does not fail
	payload := append([]byte("Exif\x00\x00"), EXIF()...)
	seg := binary.BigEndian.AppendUint16([]byte{0xff, 0xe1}, uint16(len(payload)+2))
	jb := j.Bytes()
	out := append([]byte{}, jb[:2]...)
	out = append(out, seg...)
	out = append(out, payload...)
	return append(out, jb[2:]...)
}

// ScreenshotWithGPS is a w x h PNG "screenshot" (a title bar over noise,
// so that it weighs about 2.6 bytes a pixel and its upload takes a while)
// with an eXIf chunk holding EXIF() right after its IHDR.
func ScreenshotWithGPS(w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	rnd := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			c := color.NRGBA{uint8(rnd.IntN(256)), uint8(rnd.IntN(256)), uint8(rnd.IntN(256)), 255}
			if y < h/8 {
				c = color.NRGBA{40, 60, 90, 255}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	body := append([]byte("eXIf"), EXIF()...)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(body)-4))
	chunk = append(chunk, body...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(body))
	p := b.Bytes()
	const afterIHDR = 8 + 25
	out := append([]byte{}, p[:afterIHDR]...)
	out = append(out, chunk...)
	return append(out, p[afterIHDR:]...)
}
