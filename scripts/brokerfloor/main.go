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
// wakes for its client's message instead); -mode livechat the append mode
// through livechat's history (pkg/history's script, dedup key included) and
// broker (pkg/broker's inline subscriptions), without the chat server. Each process prints one JSON line: its CPU,
// the messages it sent and received in the window. scripts/perf.sh BIN
// brokerfloor starts Redis and S processes on core 0 and adds Redis's CPU.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/pkg/broker"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/protocol"
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
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the window to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "brokerfloor:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*addr, *servers, *rate, *rooms, *size, *mode, *start, *dur); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "brokerfloor:", err)
		os.Exit(1)
	}
}

func run(addr string, servers, rate, rooms, size int, mode string, startMS int64, dur time.Duration) error {
	ctx := context.Background()
	switch mode {
	case "append", "publish", "none":
	case "livechat":
		return runLivechat(ctx, addr, servers, rate, rooms, size, startMS, dur)
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
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
	payload := strings.Repeat("x", size)
	return paced(mode, servers, rate, startMS, dur, &received, func(n int) error {
		room := strconv.Itoa(n % rooms)
		switch mode {
		case "none":
			return nil
		case "publish":
			return c.Publish(ctx, "floor."+room, payload).Err()
		}
		return appendScript.EvalSha(ctx, c, []string{"{floor." + room + "}.seq", "{floor." + room + "}.msgs", "floor." + room}, payload).Err()
	})
}

// runLivechat is the append mode through livechat's own libraries: the
// history's append script (pkg/history, with its dedup key) and the
// broker's inline subscriptions (pkg/broker), without the chat server.
func runLivechat(ctx context.Context, addr string, servers, rate, rooms, size int, startMS int64, dur time.Duration) error {
	url := "redis://" + addr
	hs, err := history.OpenRedis(ctx, url, history.Options{})
	if err != nil {
		return err
	}
	defer hs.Close()
	b, err := broker.OpenRedis(ctx, url, broker.Options{})
	if err != nil {
		return err
	}
	defer b.Close()
	var received atomic.Int64
	subjects := make([]string, rooms)
	for i := range subjects {
		subjects[i] = protocol.RoomSubject("livechat", "floor"+strconv.Itoa(i))
		if _, err := broker.SubscribeInline(ctx, b, subjects[i], func(broker.Message) { received.Add(1) }); err != nil {
			return err
		}
	}
	text := strings.Repeat("x", size)
	return paced("livechat", servers, rate, startMS, dur, &received, func(n int) error {
		i := n % rooms
		id := strconv.FormatInt(startMS, 36) + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(n)
		m := &protocol.Message{Type: "message", Room: "floor" + strconv.Itoa(i), ID: id, From: "floor", User: "floor",
			Text: text, TS: time.Now().UnixMilli(), Server: "floor", CID: id}
		_, _, err := hs.AppendPublish(ctx, m, "floor\x00"+id, subjects[i])
		return err
	})
}

// paced waits for the window's start (startMS, or 1 s from now), then calls
// send(0), send(1), ... at rate/servers a second until the window ends, and
// prints the process's JSON line.
func paced(mode string, servers, rate int, startMS int64, dur time.Duration, received *atomic.Int64, send func(n int) error) error {
	start := time.Now().Add(time.Second)
	if startMS > 0 {
		start = time.UnixMilli(startMS)
	}
	time.Sleep(time.Until(start))
	every := time.Duration(float64(time.Second) * float64(servers) / float64(rate))
	cpu0, got0 := rusage.CPU(), received.Load()
	sent := 0
	for time.Since(start) < dur {
		if d := time.Until(start.Add(time.Duration(sent) * every)); d > 0 {
			time.Sleep(d)
		}
		if err := send(sent); err != nil {
			return err
		}
		sent++
	}
	report(mode, sent, received.Load()-got0, rusage.CPU()-cpu0, time.Since(start))
	return nil
}

// report prints one process's JSON line.
func report(mode string, sent int, got int64, cpu, el time.Duration) {
	out, _ := json.Marshal(map[string]any{
		"mode": mode, "sent": sent, "received": got, "window_s": el.Seconds(),
		"cpu_s": cpu.Seconds(), "us_per_message_received": float64(cpu.Microseconds()) / float64(max(got, 1)),
	})
	fmt.Println(string(out))
}
