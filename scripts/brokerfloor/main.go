//go:build linux

// Command brokerfloor measures the floor under a shared Redis broker on this
// host: the CPU that carrying one chat message through Redis costs when
// nothing else is done (no WebSocket, no JSON, no rooms, no delivery). One
// process stands for one chat server: it subscribes to every room's channel
// and sends its share of the messages, each in one round trip that stores and
// publishes it, as livechat's append script does; every process receives
// every message. What a real server spends above the in-process broker can
// then be set against this floor.
//
//	brokerfloor -redis ADDR -servers S -rate R -start UNIXMS -duration D
//
// -mode publish sends a bare PUBLISH (the floor of any Redis broker);
// -mode append (the default) an EVALSHA that INCRs the room's seq, ZADDs
// the message and PUBLISHes it; -mode none only keeps the pace (its cost,
// the timer's wake-ups, is to be taken off the other two: a chat server
// wakes for its client's message instead). Each process prints one JSON line: its CPU,
// the messages it sent and received in the window. scripts/perf.sh BIN
// brokerfloor starts Redis and S processes on core 0 and adds Redis's CPU.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/scripts/internal/rusage"
)

var appendScript = redis.NewScript(`
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, seq .. ' ' .. ARGV[1])
redis.call('PUBLISH', KEYS[3], ARGV[1])
return seq
`)

func main() {
	addr := flag.String("redis", "127.0.0.1:6379", "Redis address")
	servers := flag.Int("servers", 4, "processes sharing the rate (this one sends rate/servers)")
	rate := flag.Int("rate", 500, "messages a second in all")
	rooms := flag.Int("rooms", 500, "rooms (channels), every one subscribed")
	size := flag.Int("size", 300, "bytes per message")
	mode := flag.String("mode", "append", "append | publish")
	start := flag.Int64("start", 0, "Unix ms at which the window starts (0: now + 1 s)")
	dur := flag.Duration("duration", 8*time.Second, "the window")
	flag.Parse()
	if err := run(*addr, *servers, *rate, *rooms, *size, *mode, *start, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "brokerfloor:", err)
		os.Exit(1)
	}
}

func run(addr string, servers, rate, rooms, size int, mode string, startMS int64, dur time.Duration) error {
	if mode != "append" && mode != "publish" && mode != "none" {
		return fmt.Errorf("unknown mode %q", mode)
	}
	ctx := context.Background()
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	chans := make([]string, rooms)
	for i := range chans {
		chans[i] = "floor." + strconv.Itoa(i)
	}
	ps := c.Subscribe(ctx, chans...)
	defer ps.Close()
	if _, err := ps.Receive(ctx); err != nil { // the first confirmation
		return err
	}
	if err := appendScript.Load(ctx, c).Err(); err != nil {
		return err
	}
	var received atomic.Int64
	go func() {
		for {
			if _, err := ps.ReceiveMessage(ctx); err != nil {
				return
			}
			received.Add(1)
		}
	}()
	start := time.Now().Add(time.Second)
	if startMS > 0 {
		start = time.UnixMilli(startMS)
	}
	time.Sleep(time.Until(start))
	payload := strings.Repeat("x", size)
	every := time.Duration(float64(time.Second) * float64(servers) / float64(rate))
	cpu0, got0 := rusage.CPU(), received.Load()
	sent := 0
	for time.Since(start) < dur {
		if d := time.Until(start.Add(time.Duration(sent) * every)); d > 0 {
			time.Sleep(d)
		}
		room := strconv.Itoa(sent % rooms)
		var err error
		switch mode {
		case "none":
		case "publish":
			err = c.Publish(ctx, "floor."+room, payload).Err()
		default:
			err = appendScript.EvalSha(ctx, c, []string{"{floor." + room + "}.seq", "{floor." + room + "}.msgs", "floor." + room}, payload).Err()
		}
		if err != nil {
			return err
		}
		sent++
	}
	cpu, got := rusage.CPU()-cpu0, received.Load()-got0
	el := time.Since(start)
	out, _ := json.Marshal(map[string]any{
		"mode": mode, "sent": sent, "received": got, "window_s": el.Seconds(),
		"cpu_s": cpu.Seconds(), "us_per_message_received": float64(cpu.Microseconds()) / float64(max(got, 1)),
	})
	fmt.Println(string(out))
	return nil
}
