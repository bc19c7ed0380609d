//go:build linux

// Command writefloor measures the floor under a chat server's fan-out on
// this host: the CPU that one small write to one of many loopback TCP
// sockets costs the writing core, with nothing else done (no WebSocket, no
// JSON, no queue). On loopback the kernel runs the receiving socket's TCP
// work on the sending core, so the figure is the sender's and the
// receiver's kernel work together.
//
//	writefloor write -conns N -size B -rate R   # listens, writes, prints the cost
//	writefloor read  -conns N                   # dials N connections, reads all
//
// Run the writer first, pinned to one core, and the reader on another:
// scripts/perf.sh BIN floor does that.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/livechat/livechat/scripts/internal/rusage"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: writefloor write|read [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:19999", "address to listen on or dial")
	conns := fs.Int("conns", 6155, "connections")
	size := fs.Int("size", 500, "bytes per write")
	rate := fs.Int("rate", 12, "writes per second to each connection")
	dur := fs.Duration("duration", 10*time.Second, "how long to write")
	_ = fs.Parse(os.Args[2:])
	var err error
	switch os.Args[1] {
	case "write":
		err = write(*addr, *conns, *size, *rate, *dur)
	case "read":
		err = read(*addr, *conns)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "writefloor:", err)
		os.Exit(1)
	}
}

// write accepts n connections, then writes size bytes to each in turn, rate
// rounds a second, and prints the process's CPU per write.
func write(addr string, n, size, rate int, dur time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	cs := make([]net.Conn, 0, n)
	for len(cs) < n {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		cs = append(cs, c)
	}
	buf := make([]byte, size)
	cpu0 := rusage.CPU()
	start := time.Now()
	writes := 0
	every := time.Second / time.Duration(rate)
	for round := 0; time.Since(start) < dur; round++ {
		if d := time.Until(start.Add(time.Duration(round) * every)); d > 0 {
			time.Sleep(d)
		}
		for _, c := range cs {
			if _, err := c.Write(buf); err != nil {
				return err
			}
			writes++
		}
	}
	el := time.Since(start)
	cpu := rusage.CPU() - cpu0
	fmt.Printf(`{"conns": %d, "size": %d, "writes_per_s": %.0f, "cpu_percent": %.1f, "us_per_write": %.2f}`+"\n",
		n, size, float64(writes)/el.Seconds(), 100*cpu.Seconds()/el.Seconds(), float64(cpu.Nanoseconds())/1e3/float64(writes))
	return nil
}

// read dials n connections and reads them until the writer closes them.
// The first dial is retried for up to 5 s while the writer starts.
func read(addr string, n int) error {
	done := make(chan struct{}, n)
	for i := range n {
		c, err := net.Dial("tcp", addr)
		for t := time.Now(); i == 0 && err != nil && time.Since(t) < 5*time.Second; {
			time.Sleep(50 * time.Millisecond)
			c, err = net.Dial("tcp", addr)
		}
		if err != nil {
			return err
		}
		go func() {
			b := make([]byte, 4096)
			for {
				if _, err := c.Read(b); err != nil {
					done <- struct{}{}
					return
				}
			}
		}()
	}
	<-done
	return nil
}
