// Package loadgen is livechat's WebSocket load generator, the engine behind
// `livechat bench`.
//
// Run opens Clients subscriber connections and Publishers publisher
// connections, spread round-robin over the URLs, the source addresses and
// Rooms rooms; every connection joins its room, and once all have joined and
// a warm-up has passed, the publishers send Rate messages per second in total
// for Duration. Every connection (publishers included: the server delivers a
// message to its sender too) counts the messages it receives, so at the end
// Run knows how many deliveries were expected, how many arrived, were lost or
// duplicated, and their end-to-end latency.
//
// The hot path is cheap: each connection has one reader goroutine that reads
// frames into a reused buffer and finds the few fields it needs with
// bytes.Index, never decoding JSON. A message's text carries its publisher,
// sequence number and send time: "b<run>:<publisher>:<seq>:<unixnano>:"
// padded to Size bytes. Latencies go into per-connection histograms merged at
// the end, so recording takes no lock.
//
// Names and cids are unique per run: connections join as
// "bench-<run>-p<n>" (publishers) and "bench-<run>-s<i>" (Config.ClientName),
// and publishers' cids are "<run>-<seq>". A history de-duplicates sends on
// sender name (or user id) and cid, so a run reusing an earlier run's would
// have its sends answered as retries ("dup":true in the ack, counted in
// Result.DupAcks) and delivered to nobody.
//
// With Config.Token set, every connection presents a connection token at
// its handshake (Authorization: Bearer) and joins with the name
// ClientName gives it, which the token must assert. Run gets all the
// tokens before the first dial, so the connect figures time the server,
// not the minting.
package loadgen

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/livechat/livechat/pkg/protocol"
)

// ErrConfig is wrapped by every error that Config.Validate returns: a
// mistake of the caller, not a failure of the system under test.
var ErrConfig = errors.New("loadgen: invalid configuration")

// MinSize is the smallest message size (bytes of text) that holds the
// header every bench message starts with.
const MinSize = 48

// MaxPublishers is the most publisher connections one run may have.
const MaxPublishers = 999_999

// Defaults of Config.
const (
	DefaultURL                = "ws://127.0.0.1:8080/ws"
	DefaultClients            = 100
	DefaultRate               = 100
	DefaultSize               = 100
	DefaultDuration           = 10 * time.Second
	DefaultRoom               = "bench"
	DefaultMaxRatePerConn     = 20
	DefaultConnectConcurrency = 100
	DefaultConnectTimeout     = 10 * time.Second
	DefaultJoinTimeout        = 30 * time.Second
	DefaultWarmup             = time.Second
	DefaultDrain              = 5 * time.Second
	DefaultRooms              = 1
	DefaultProgressInterval   = 500 * time.Millisecond
)

// Config describes one benchmark run. Fill it and call Run; zero values take
// the defaults noted on each field.
type Config struct {
	// URLs are the WebSocket endpoints; connection i goes to URLs[i%len].
	// Default: [DefaultURL].
	URLs []string
	// Clients is the number of subscriber connections, publishers not
	// included. Default: 100.
	Clients int
	// Publishers is the number of publisher connections, which also join
	// and receive. Default (0): enough that none exceeds MaxRatePerConn, and
	// at least one per room.
	Publishers int
	// Rate is the total messages per second of all publishers, spread evenly
	// over them. Default: 100.
	Rate float64
	// MaxRatePerConn is the highest rate one publisher may be asked for, the
	// server's per-connection limit. Default: 20.
	MaxRatePerConn float64
	// Size is the length of each message's text in bytes, at least MinSize
	// and at most protocol.MaxTextLen. Default: 100.
	Size int
	// Duration is how long the publishers send. Default: 10s.
	Duration time.Duration
	// Room is the room name, or the prefix "<Room>-<i>" of the room names
	// when Rooms > 1. Default: "bench".
	Room string
	// Rooms spreads clients and publishers round-robin over this many rooms.
	// Default: 1.
	Rooms int
	// BigRoom, if above 0, puts the last BigRoom of the Clients in one more
	// room, "<Room>-big" (BigRoomName), and the others round-robin over the
	// Rooms rooms: many small rooms beside one big one. Publishers go
	// round-robin over all the rooms, the big one included, each at the same
	// rate (Rate / Publishers). Default: 0, no big room.
	BigRoom int
	// ConnectConcurrency bounds the handshakes in flight. Default: 100.
	ConnectConcurrency int
	// ConnectTimeout bounds one dial plus handshake. Default: 10s.
	ConnectTimeout time.Duration
	// JoinTimeout bounds the wait, after the last connection is made, for
	// every connection's "joined". Default: 30s.
	JoinTimeout time.Duration
	// Warmup is the pause between "everyone joined" and the first message,
	// so presence traffic settles. Default: 1s; negative means none.
	Warmup time.Duration
	// Drain is how long to wait after the last message for outstanding
	// deliveries; it ends early once every expected delivery arrived.
	// Default: 5s; negative means none.
	Drain time.Duration
	// SourceIPs are local addresses that connections bind to, round-robin,
	// so many clients from one machine look like many hosts to the server's
	// per-IP limit. Nil means the system's choice. See ParseSourceIPs.
	SourceIPs []net.IP
	// Progress, if set, is called every ProgressInterval from one goroutine
	// while Run runs, and once more at the end of each phase. It must not
	// block for long.
	Progress func(Progress)
	// ProgressInterval defaults to 500ms.
	ProgressInterval time.Duration
	// RunID tags the run: its names (ClientName), cids and message texts.
	// 1 to 8 ASCII letters or digits. Default (""): Run makes a random one
	// (NewRunID). Set it only to know the names before Run, for Token;
	// two runs with one RunID into one server's history collide in its
	// de-duplication (Result.DupAcks).
	RunID string
	// Token, if set, returns the connection token of client i (0-based:
	// the subscribers, then the publishers; see ClientName), which the
	// client sends at its handshake as "Authorization: Bearer <token>".
	// The token must assert the name ClientName(i): the client joins with
	// it. Run calls Token once per client, from one goroutine, before the
	// first dial (not timed); an error ends Run before any connection.
	// Default (nil): no token, guests named by ClientName.
	Token func(client int) (string, error)

	// writeWait bounds one frame write after the join (sends, pongs, the
	// answer to a close): 0 means defaultWriteWait. The tests shorten it.
	writeWait time.Duration
}

// Validate fills the defaults and checks the configuration. Its errors wrap
// ErrConfig.
func (c *Config) Validate() error {
	c.setDefaults()
	for _, u := range c.URLs {
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "ws" && p.Scheme != "wss") || p.Host == "" {
			return fmt.Errorf("%w: --url %q must be ws://host:port/path or wss://host:port/path", ErrConfig, u)
		}
	}
	switch {
	case c.Clients < 1:
		return fmt.Errorf("%w: --clients must be at least 1, not %d", ErrConfig, c.Clients)
	case c.Rooms < 1:
		return fmt.Errorf("%w: --rooms must be at least 1, not %d", ErrConfig, c.Rooms)
	case c.BigRoom < 0 || c.BigRoom >= c.Clients:
		return fmt.Errorf("%w: --big-room must be 0 or below --clients %d (the other clients fill --rooms), not %d",
			ErrConfig, c.Clients, c.BigRoom)
	case c.Rooms > c.Clients:
		return fmt.Errorf("%w: --rooms %d is more than --clients %d: every room needs a client", ErrConfig, c.Rooms, c.Clients)
	case c.Rooms > c.Clients-c.BigRoom:
		return fmt.Errorf("%w: --rooms %d is more than the %d clients outside the big room: every room needs a client",
			ErrConfig, c.Rooms, c.Clients-c.BigRoom)
	case c.Rate <= 0 || math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0):
		return fmt.Errorf("%w: --rate must be above 0 messages per second, not %v", ErrConfig, c.Rate)
	case c.MaxRatePerConn <= 0:
		return fmt.Errorf("%w: --max-rate-per-conn must be above 0, not %v", ErrConfig, c.MaxRatePerConn)
	case c.Size < MinSize || c.Size > protocol.MaxTextLen:
		return fmt.Errorf("%w: --size must be %d..%d bytes (the text holds a %d-byte header), not %d",
			ErrConfig, MinSize, protocol.MaxTextLen, MinSize, c.Size)
	case c.Duration < 0:
		return fmt.Errorf("%w: --duration must be positive, not %v", ErrConfig, c.Duration)
	case c.ConnectConcurrency < 1:
		return fmt.Errorf("%w: --connect-concurrency must be at least 1, not %d", ErrConfig, c.ConnectConcurrency)
	case c.ConnectTimeout < 0 || c.JoinTimeout < 0:
		return fmt.Errorf("%w: timeouts must be positive", ErrConfig)
	case c.Publishers < 0:
		return fmt.Errorf("%w: --publishers must not be negative, not %d", ErrConfig, c.Publishers)
	}
	if !validRunID(c.RunID) {
		return fmt.Errorf("%w: run id %q must be 1 to %d ASCII letters or digits", ErrConfig, c.RunID, maxRunIDLen)
	}
	if err := protocol.ValidRoom(c.RoomName(c.roomCount() - 1)); err != nil {
		return fmt.Errorf("%w: --room %q: %w", ErrConfig, c.Room, err)
	}
	if c.Publishers == 0 {
		c.Publishers = max(int(math.Ceil(c.Rate/c.MaxRatePerConn)), c.roomCount())
	}
	if per := c.Rate / float64(c.Publishers); per > c.MaxRatePerConn {
		return fmt.Errorf("%w: --rate %v over %d publishers is %.4g msg/s per connection, above --max-rate-per-conn %v "+
			"(the server's per-connection limit): use --publishers %d or more",
			ErrConfig, c.Rate, c.Publishers, per, c.MaxRatePerConn, int(math.Ceil(c.Rate/c.MaxRatePerConn)))
	}
	if c.Publishers > MaxPublishers {
		return fmt.Errorf("%w: --publishers must be at most %d", ErrConfig, MaxPublishers)
	}
	return nil
}

// DefaultConfig returns the Config that Validate makes of the zero Config
// before it derives Publishers: every field with the default stated on it,
// Publishers 0 (derived from Rate), SourceIPs and Progress nil. A command
// line reads its defaults from it rather than repeating them. Each call
// returns a new value.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

// setDefaults gives every zero field the default stated on it; Validate
// and DefaultConfig both call it.
func (c *Config) setDefaults() {
	if len(c.URLs) == 0 {
		c.URLs = []string{DefaultURL}
	}
	c.Clients = cmp.Or(c.Clients, DefaultClients)
	c.Rate = cmp.Or(c.Rate, DefaultRate)
	c.MaxRatePerConn = cmp.Or(c.MaxRatePerConn, DefaultMaxRatePerConn)
	c.Size = cmp.Or(c.Size, DefaultSize)
	c.Duration = cmp.Or(c.Duration, DefaultDuration)
	c.Room = cmp.Or(c.Room, DefaultRoom)
	c.Rooms = cmp.Or(c.Rooms, DefaultRooms)
	c.ConnectConcurrency = cmp.Or(c.ConnectConcurrency, DefaultConnectConcurrency)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.JoinTimeout = cmp.Or(c.JoinTimeout, DefaultJoinTimeout)
	c.Warmup = cmp.Or(c.Warmup, DefaultWarmup)
	c.Drain = cmp.Or(c.Drain, DefaultDrain)
	c.ProgressInterval = cmp.Or(c.ProgressInterval, DefaultProgressInterval)
}

// RoomName returns the name of room i (0-based); room Rooms is the big
// room (BigRoomName) when BigRoom is set.
func (c *Config) RoomName(i int) string {
	switch {
	case c.BigRoom > 0 && i >= c.Rooms:
		return c.BigRoomName()
	case c.Rooms <= 1:
		return c.Room
	}
	return c.Room + "-" + strconv.Itoa(i)
}

// BigRoomName returns the name of the big room (Config.BigRoom):
// "<Room>-big".
func (c *Config) BigRoomName() string { return c.Room + "-big" }

// roomCount is the number of rooms: Rooms, plus the big room.
func (c *Config) roomCount() int {
	if c.BigRoom > 0 {
		return c.Rooms + 1
	}
	return c.Rooms
}

// subscriberRoom returns the room (0-based, as RoomName) of subscriber i:
// the last BigRoom subscribers are in the big room, the others round-robin
// in the Rooms rooms.
func (c *Config) subscriberRoom(i int) int {
	if i >= c.Clients-c.BigRoom {
		return c.Rooms
	}
	return i % c.Rooms
}

// maxRunIDLen bounds Config.RunID: "bench-<run>-s<i>" stays within
// protocol.MaxNameLen for i below 10^16.
const maxRunIDLen = 8

// validRunID reports whether id is "" (Run makes one) or a valid RunID.
func validRunID(id string) bool {
	if len(id) > maxRunIDLen {
		return false
	}
	for _, r := range id {
		if (r < '0' || r > '9') && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') {
			return false
		}
	}
	return true
}

// NewRunID returns a random run id (8 hex digits) for Config.RunID.
func NewRunID() (string, error) {
	var rb [4]byte
	if _, err := rand.Read(rb[:]); err != nil {
		return "", fmt.Errorf("loadgen: run id: %w", err)
	}
	return hex.EncodeToString(rb[:]), nil
}

// ClientName returns the name client i (0-based) joins with:
// "bench-<RunID>-s<i>" for subscriber i (i < Clients), "bench-<RunID>-p<n>"
// for publisher n = i - Clients. It is the name a Config.Token for client
// i must assert. It reads RunID and Clients (set them, or call Validate
// first for the default Clients); it is safe to call concurrently.
func (c *Config) ClientName(i int) string {
	if i >= c.Clients {
		return "bench-" + c.RunID + "-p" + strconv.Itoa(i-c.Clients)
	}
	return "bench-" + c.RunID + "-s" + strconv.Itoa(i)
}

// ParseSourceIPs turns a --source-ips value into addresses:
//   - "none" or "": nil, the system picks the source address;
//   - "auto": 127.0.0.1-127.0.0.254 when every URL's host is an IPv4
//     loopback address, else nil;
//   - "A-B": every IPv4 address from A to B inclusive (at most 65536);
//   - "A,B,C": a list.
func ParseSourceIPs(spec string, urls []string) ([]net.IP, error) {
	spec = strings.TrimSpace(spec)
	switch spec {
	case "", "none":
		return nil, nil
	case "auto":
		for _, u := range urls {
			p, err := url.Parse(u)
			if err != nil {
				return nil, nil
			}
			ip := net.ParseIP(p.Hostname())
			if ip == nil || ip.To4() == nil || !ip.IsLoopback() {
				return nil, nil
			}
		}
		return ParseSourceIPs("127.0.0.1-127.0.0.254", nil)
	}
	if from, to, ok := strings.Cut(spec, "-"); ok {
		a, b := net.ParseIP(strings.TrimSpace(from)).To4(), net.ParseIP(strings.TrimSpace(to)).To4()
		if a == nil || b == nil {
			return nil, fmt.Errorf("%w: --source-ips %q: a range is two IPv4 addresses A-B", ErrConfig, spec)
		}
		lo, hi := ipv4Int(a), ipv4Int(b)
		if hi < lo || hi-lo >= 1<<16 {
			return nil, fmt.Errorf("%w: --source-ips %q: the range must go upwards and hold at most 65536 addresses", ErrConfig, spec)
		}
		ips := make([]net.IP, 0, hi-lo+1)
		for v := lo; v <= hi; v++ {
			ips = append(ips, net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)))
		}
		return ips, nil
	}
	var ips []net.IP
	for _, s := range strings.Split(spec, ",") {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return nil, fmt.Errorf("%w: --source-ips %q: %q is not an IP address (want none, auto, A-B or A,B,...)", ErrConfig, spec, s)
		}
		ips = append(ips, ip)
	}
	return ips, nil
}

func ipv4Int(ip net.IP) uint32 {
	return uint32(ip[0])<<24 | uint32(ip[1])<<16 | uint32(ip[2])<<8 | uint32(ip[3])
}
