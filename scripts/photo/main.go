// Command photo writes a 4000 x 3000 JPEG (12 MP, about 4.9 MB, a phone
// photo's size) for the picture point of scripts/perf.sh:
//
//	go run ./scripts/photo FILE
package main

import (
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: photo FILE")
		os.Exit(2)
	}
	const w, h = 4000, 3000
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(1, 2))
	for y := range h {
		for x := range w {
			n := uint8(r.IntN(40)) // grain, so that it compresses like a photo
			img.SetRGBA(x, y, color.RGBA{uint8(x/16) + n, uint8(y/12) + n, 128 + n, 255})
		}
	}
	f, err := os.Create(os.Args[1])
	if err == nil {
		err = jpeg.Encode(f, img, &jpeg.Options{Quality: 85})
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "photo:", err)
		os.Exit(1)
	}
}
