package media

import (
	"bytes"
	"encoding/binary"
	"image"
)

// jpegOrientation is the EXIF orientation (1 to 8) of a JPEG whose first
// bytes (up to its frame header at least) are b: tag 0x0112 of IFD0 in an
// APP1 "Exif" segment. 1 (as stored) when there is none.
func jpegOrientation(b []byte) int {
	if len(b) < 2 || b[0] != 0xFF || b[1] != 0xD8 {
		return 1
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return 1
		}
		m := b[i+1]
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == 0x01 || m >= 0xD0 && m <= 0xD8: // no length
			i += 2
			continue
		case m == 0xDA || m == 0xD9: // start of scan, end of image: no EXIF past here
			return 1
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 {
			return 1
		}
		end := i + 2 + n
		if end > len(b) {
			return 1
		}
		if m == 0xE1 {
			if o, ok := exifOrientation(b[i+4 : end]); ok {
				return o
			}
		}
		i = end
	}
	return 1
}

// exifOrientation reads the orientation tag from an APP1 segment's payload.
func exifOrientation(seg []byte) (int, bool) {
	t, ok := bytes.CutPrefix(seg, []byte("Exif\x00\x00"))
	if !ok || len(t) < 8 {
		return 0, false
	}
	var bo binary.ByteOrder
	switch string(t[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 0, false
	}
	off := int64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > int64(len(t)) {
		return 0, false
	}
	count := int(bo.Uint16(t[off:]))
	for k := range count {
		e := int(off) + 2 + 12*k
		if e+12 > len(t) {
			break
		}
		if bo.Uint16(t[e:]) != 0x0112 {
			continue
		}
		var v int
		switch typ := bo.Uint16(t[e+2:]); typ {
		case 3: // SHORT
			v = int(bo.Uint16(t[e+8:]))
		case 4: // LONG
			v = int(bo.Uint32(t[e+8:]))
		default:
			return 0, false
		}
		if v < 1 || v > 8 {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

// srcPoint is the pixel of a w x h source shown at (x, y) once turned by
// orientation o (EXIF: 2 mirrored, 3 turned 180°, 4 flipped, 5 transposed,
// 6 turned 90° clockwise, 7 transversed, 8 turned 90° counterclockwise).
func srcPoint(x, y, w, h, o int) (int, int) {
	switch o {
	case 2:
		return w - 1 - x, y
	case 3:
		return w - 1 - x, h - 1 - y
	case 4:
		return x, h - 1 - y
	case 5:
		return y, x
	case 6:
		return y, h - 1 - x
	case 7:
		return w - 1 - y, h - 1 - x
	case 8:
		return w - 1 - y, x
	}
	return x, y
}

// orient turns img as EXIF orientation o says, so that it shows upright
// once the orientation tag is gone. The planes of the common decoded types
// are turned one at a time and the old one dropped, so that at most one
// plane more than the image is held.
func orient(img image.Image, o int) image.Image {
	if o < 2 || o > 8 {
		return img
	}
	b := img.Bounds()
	if b.Min != (image.Point{}) {
		return orientAny(img, o)
	}
	w, h := b.Dx(), b.Dy()
	tw, th := w, h
	if o >= 5 {
		tw, th = h, w
	}
	switch m := img.(type) {
	case *image.Gray:
		pix, stride := turnPlane(m.Pix, m.Stride, w, h, 1, o)
		return &image.Gray{Pix: pix, Stride: stride, Rect: image.Rect(0, 0, tw, th)}
	case *image.RGBA:
		pix, stride := turnPlane(m.Pix, m.Stride, w, h, 4, o)
		return &image.RGBA{Pix: pix, Stride: stride, Rect: image.Rect(0, 0, tw, th)}
	case *image.CMYK:
		pix, stride := turnPlane(m.Pix, m.Stride, w, h, 4, o)
		return &image.CMYK{Pix: pix, Stride: stride, Rect: image.Rect(0, 0, tw, th)}
	case *image.YCbCr:
		ratio := m.SubsampleRatio
		var cw, ch int
		switch ratio {
		case image.YCbCrSubsampleRatio444:
			cw, ch = w, h
		case image.YCbCrSubsampleRatio420:
			cw, ch = (w+1)/2, (h+1)/2
		case image.YCbCrSubsampleRatio422:
			cw, ch = (w+1)/2, h
			if o >= 5 {
				ratio = image.YCbCrSubsampleRatio440
			}
		case image.YCbCrSubsampleRatio440:
			cw, ch = w, (h+1)/2
			if o >= 5 {
				ratio = image.YCbCrSubsampleRatio422
			}
		default:
			return orientAny(img, o)
		}
		out := &image.YCbCr{SubsampleRatio: ratio, Rect: image.Rect(0, 0, tw, th)}
		out.Y, out.YStride = turnPlane(m.Y, m.YStride, w, h, 1, o)
		m.Y = nil
		out.Cb, out.CStride = turnPlane(m.Cb, m.CStride, cw, ch, 1, o)
		m.Cb = nil
		out.Cr, _ = turnPlane(m.Cr, m.CStride, cw, ch, 1, o)
		m.Cr = nil
		return out
	}
	return orientAny(img, o)
}

// turnPlane turns a plane of w x h pixels of bpp bytes as orientation o
// says, into a new plane (and its stride).
func turnPlane(pix []byte, stride, w, h, bpp, o int) ([]byte, int) {
	tw, th := w, h
	if o >= 5 {
		tw, th = h, w
	}
	ts := tw * bpp
	out := make([]byte, ts*th)
	for y := range th {
		row := out[y*ts : (y+1)*ts]
		for x := range tw {
			sx, sy := srcPoint(x, y, w, h, o)
			s := sy*stride + sx*bpp
			copy(row[x*bpp:(x+1)*bpp], pix[s:s+bpp])
		}
	}
	return out, ts
}

// orientAny turns an image of any other type into a new RGBA image.
func orientAny(img image.Image, o int) image.Image {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	tw, th := w, h
	if o >= 5 {
		tw, th = h, w
	}
	out := image.NewRGBA(image.Rect(0, 0, tw, th))
	for y := range th {
		for x := range tw {
			sx, sy := srcPoint(x, y, w, h, o)
			out.Set(x, y, img.At(b.Min.X+sx, b.Min.Y+sy))
		}
	}
	return out
}
