package history

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/internal/redisurl"
	"github.com/livechat/livechat/pkg/protocol"
)

// Redis is the shared, bounded Store (redis://, rediss://). Per room it
// keeps a seq counter ("<prefix>:{<room>}:seq") and a sorted set of the
// messages scored by seq ("<prefix>:{<room>}:msgs", members
// "<seq> <ts> <json>"), and per dedup key a string holding the seq
// ("<prefix>:{<room>}:cid:<key>", expiring after Options.DedupWindow).
//
// One Lua script does an append atomically: the dedup check, INCR, ZADD,
// the dedup key, trimming to Options.MaxLen messages and by Options.MaxAge
// (at most 100 aged messages per append), and refreshing the expiry of the
// room's keys to MaxAge. So appends from many servers get distinct
// consecutive seqs, and no seq exists without its message. A room idle for
// MaxAge expires entirely and restarts at seq 1; so does every room when
// Redis loses its data (no persistence): Bounds.Covers detects both.
//
// Appends go through one writer goroutine (groupCommit): it sends every
// Append that is waiting (up to Options.MaxBatch) in one pipeline, so under
// load a round trip carries many scripts, while a lone Append is sent at
// once. Reads go straight to the client's pool.
//
// On a Redis Cluster (redis+cluster://) a room's keys share its hash slot,
// so the script runs on the master serving the room; a batch is split by
// master, and each master's part ends with WAIT 1 so an acknowledged
// append is on a replica too (flushCluster).
type Redis struct {
	opts   Options
	url    string                // redacted
	client redis.UniversalClient // a *redis.Client, or a *redis.ClusterClient
	gc     *groupCommit[redisReq]
	closed atomic.Bool
	// noReplica maps a cluster master's address to the time until which
	// appends do not wait for its replica (flushCluster).
	noReplica sync.Map
}

// redisReq is one Append waiting for the writer.
type redisReq struct {
	ctx  context.Context
	room string
	keys []string
	args []any
	res  chan redisRes // buffered: the writer never blocks on it
}

type redisRes struct {
	reply []any
	err   error
}

var (
	_ Store           = (*Redis)(nil)
	_ AppendPublisher = (*Redis)(nil)
)

// appendScript appends one message.
//
// KEYS: seq counter, messages, dedup key (all in the room's hash slot).
// ARGV: json, ts, max len, ttl ms, cutoff ms, dedup window ms, "1" when
// the message has a dedup key; for AppendPublish also the channel, the
// frame without its seq and the offset where ,"seq":N goes (an empty
// channel publishes nothing).
// Returns {0, seq, member or false} for a duplicate, {1, seq} otherwise.
var appendScript = redis.NewScript(`
local ttl = tonumber(ARGV[4])
if ARGV[7] == '1' then
  local s = redis.call('GET', KEYS[3])
  if s then
    local m = redis.call('ZRANGE', KEYS[2], s, s, 'BYSCORE')
    return {0, tonumber(s), m[1] or false}
  end
end
local seq = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('ZADD', KEYS[2], seq, seq .. ' ' .. ARGV[2] .. ' ' .. ARGV[1])
redis.call('PEXPIRE', KEYS[2], ttl)
if ARGV[7] == '1' then
  redis.call('SET', KEYS[3], seq, 'PX', ARGV[6])
end
if ARGV[8] and ARGV[8] ~= '' then
  local at = tonumber(ARGV[10])
  redis.call('PUBLISH', ARGV[8], string.sub(ARGV[9], 1, at) .. ',"seq":' .. seq .. string.sub(ARGV[9], at + 1))
end
local n = redis.call('ZCARD', KEYS[2])
local maxlen = tonumber(ARGV[3])
if n > maxlen then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - maxlen - 1)
  n = maxlen
end
local cutoff = tonumber(ARGV[5])
for i = 1, math.min(n - 1, 100) do
  local old = redis.call('ZRANGE', KEYS[2], 0, 0)
  local ts = old[1] and tonumber(string.match(old[1], '^%d+ (%-?%d+) '))
  if not ts or ts >= cutoff then break end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, 0)
end
return {1, seq}
`)

// OpenRedis connects to the Redis server at rawURL
// ("redis://[user:password@]host:port[/db]", "rediss://" for TLS; go-redis
// query parameters are honoured) and loads the append script. It returns an
// error naming the URL with its password redacted when Redis cannot be
// reached, bounded by ctx, or by 5 s when ctx has no deadline.
//
// A Redis Cluster URL ("redis+cluster://[user:password@]host:port[,host:port...]",
// "rediss+cluster://" for TLS; go-redis cluster options are honoured) opens
// the store on the cluster: a room's keys share one hash slot, so its
// script runs on the master serving it, and a pipeline of appends is split
// by master. The script is loaded on every master; a master that does not
// have it (a replica promoted after a failover) gets it with EVAL.
func OpenRedis(ctx context.Context, rawURL string, opts Options) (*Redis, error) {
	opts.fill()
	redacted := Redact(rawURL)
	if redisurl.IsCluster(rawURL) {
		return openRedisCluster(ctx, rawURL, redacted, opts)
	}
	ro, err := redisurl.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, redacted, err)
	}
	// No automatic retries: an EVALSHA retried after a lost reply would
	// append the message twice (unless it has a dedup key), and a store
	// that is down must fail fast. The caller retries with its dedup key.
	ro.MaxRetries = -1
	ro.DialerRetries = 1
	client := redis.NewClient(ro)
	pctx, cancel := withTimeout(ctx, openTimeout)
	defer cancel()
	if err := appendScript.Load(pctx, client).Err(); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("%w: cannot reach redis at %s: %w", ErrUnavailable, redacted, err)
	}
	return newRedis(client, redacted, opts), nil
}

// openRedisCluster is OpenRedis on a Redis Cluster.
func openRedisCluster(ctx context.Context, rawURL, redacted string, opts Options) (*Redis, error) {
	co, err := redisurl.ParseCluster(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrUnsupportedURL, redacted, err)
	}
	// No automatic retries, as for a single server (redirections after a
	// slot moved are still followed: MaxRedirects).
	co.MaxRetries = -1
	co.DialerRetries = 1
	if co.ClusterStateReloadInterval == 0 {
		// go-redis's default, 60 s, would keep sending to a dead master
		// that long; a failed append also reloads it (flush).
		co.ClusterStateReloadInterval = 2 * time.Second
	}
	client := redis.NewClusterClient(co)
	pctx, cancel := withTimeout(ctx, openTimeout)
	defer cancel()
	err = client.ForEachMaster(pctx, func(ctx context.Context, c *redis.Client) error {
		return appendScript.Load(ctx, c).Err()
	})
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("%w: cannot reach redis cluster at %s: %w", ErrUnavailable, redacted, err)
	}
	return newRedis(client, redacted, opts), nil
}

func newRedis(client redis.UniversalClient, redacted string, opts Options) *Redis {
	s := &Redis{opts: opts, url: redacted, client: client}
	s.gc = newGroupCommit(opts.MaxBatch, groupHooks[redisReq]{
		write: s.flush,
		fail:  func(r *redisReq, err error) { r.res <- redisRes{err: appendFailed(r.room, err)} },
		ctx:   func(r *redisReq) context.Context { return r.ctx },
	})
	return s
}

func (s *Redis) keys(room string) (seq, msgs string) {
	base := s.opts.KeyPrefix + ":{" + room + "}:"
	return base + "seq", base + "msgs"
}

// fail wraps a Redis error.
func (s *Redis) fail(op, room string, err error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return fmt.Errorf("history: %s %q on redis %s: %w: %w", op, room, s.url, ErrUnavailable, err)
}

// Append implements Store: it queues the append script's call for the
// writer and waits for the pipeline that carries it.
func (s *Redis) Append(ctx context.Context, m *protocol.Message, dedupKey string) (uint64, bool, error) {
	return s.appendPublish(ctx, m, dedupKey, "")
}

// AppendPublish implements AppendPublisher: the append script also
// PUBLISHes the message's frame on channel when it stores it.
func (s *Redis) AppendPublish(ctx context.Context, m *protocol.Message, dedupKey, channel string) (uint64, bool, error) {
	if channel == "" {
		return 0, false, fmt.Errorf("%w: no channel to publish on", ErrInvalid)
	}
	return s.appendPublish(ctx, m, dedupKey, channel)
}

// appendPublish is Append, publishing on channel unless it is "".
func (s *Redis) appendPublish(ctx context.Context, m *protocol.Message, dedupKey, channel string) (uint64, bool, error) {
	if s.closed.Load() {
		return 0, false, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return 0, false, fmt.Errorf("history: append: %w", err)
	}
	now := time.Now()
	if err := prepare(m, dedupKey, now); err != nil {
		return 0, false, err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return 0, false, fmt.Errorf("history: encode message: %w", err)
	}
	seqKey, msgsKey := s.keys(m.Room)
	// Without a dedup key KEYS[3] is unused but stays in the room's slot,
	// so the script also runs on Redis Cluster.
	dk, hasKey := s.opts.KeyPrefix+":{"+m.Room+"}:cid:"+dedupKey, "0"
	if dedupKey != "" {
		hasKey = "1"
	}
	r := &redisReq{ctx: ctx, room: m.Room, keys: []string{seqKey, msgsKey, dk},
		args: []any{data, m.TS, s.opts.MaxLen, s.opts.MaxAge.Milliseconds(),
			now.Add(-s.opts.MaxAge).UnixMilli(), s.opts.DedupWindow.Milliseconds(), hasKey},
		res: make(chan redisRes, 1)}
	if channel != "" {
		frame, at := protocol.AppendMessageSeqAt(make([]byte, 0, protocol.MessageSizeHint(m)), m)
		r.args = append(r.args, channel, frame, at)
	}
	out, err := call(ctx, s.gc, m.Room, r, r.res)
	if err != nil {
		return 0, false, err
	}
	if out.err != nil {
		return 0, false, out.err
	}
	res := out.reply
	if len(res) < 2 {
		return 0, false, fmt.Errorf("history: append to %q on redis %s: unexpected reply %v", m.Room, s.url, res)
	}
	seq, ok := res[1].(int64)
	if !ok || seq <= 0 {
		return 0, false, fmt.Errorf("history: append to %q on redis %s: unexpected seq %v", m.Room, s.url, res[1])
	}
	if res[0] == int64(1) {
		m.Seq = uint64(seq)
		return m.Seq, false, nil
	}
	// A duplicate: return the original if it is still held.
	if len(res) > 2 {
		if member, ok := res[2].(string); ok {
			if orig, err := decodeMember(member); err == nil {
				*m = orig
			}
		}
	}
	m.Seq = uint64(seq)
	return m.Seq, true, nil
}

// flush sends one batch of appends in one pipeline (EVALSHA each; EVAL for
// those Redis answers NOSCRIPT, after a restart) and answers every request
// in it. The pipeline is bounded by Options.WriteTimeout. On a cluster the
// batch is split by master (flushCluster).
func (s *Redis) flush(live []*redisReq) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	defer cancel()
	if cc, ok := s.client.(*redis.ClusterClient); ok {
		s.flushCluster(ctx, cc, live)
		return
	}
	cmds, _ := s.runScripts(ctx, s.client, live, false)
	s.answer(live, cmds)
}

// Replica acknowledgement on a cluster: WAIT for one replica at most
// replicaWait per batch; a master whose replica does not answer in time
// (or that has none, after a failover) is not waited for during
// noReplicaFor.
const (
	replicaWait  = 100 * time.Millisecond
	noReplicaFor = 5 * time.Second
)

// flushCluster sends each master its appends in one pipeline on its own
// connection (the masters in parallel), followed by WAIT 1: an append is acknowledged once a replica
// has it too (within replicaWait), so a failover (the replica taking over
// from a crashed master) does not lose it and hand its seq out again.
// Redis replication stays asynchronous: this narrows, not closes, the
// window (a replica that timed out is not waited for). An append whose
// slot moved fails (MOVED) and reloads the slot map: the caller retries.
func (s *Redis) flushCluster(ctx context.Context, cc *redis.ClusterClient, live []*redisReq) {
	cmds := make([]*redis.Cmd, len(live))
	byMaster := map[*redis.Client][]int{}
	for i, r := range live {
		c, err := cc.MasterForKey(ctx, r.keys[0])
		if err != nil {
			cmds[i] = redis.NewCmd(ctx)
			cmds[i].SetErr(err)
			continue
		}
		byMaster[c] = append(byMaster[c], i)
	}
	// The masters in parallel: a slow one does not hold up the others.
	var wg sync.WaitGroup
	for c, idx := range byMaster {
		wg.Go(func() {
			reqs := make([]*redisReq, len(idx))
			for j, i := range idx {
				reqs[j] = live[i]
			}
			addr := c.Options().Addr
			wait := true
			if until, ok := s.noReplica.Load(addr); ok && time.Now().Before(until.(time.Time)) {
				wait = false
			}
			out, replicated := s.runScripts(ctx, c, reqs, wait)
			if wait && !replicated {
				s.noReplica.Store(addr, time.Now().Add(noReplicaFor))
				s.opts.Logger.Warn("history: no redis replica acknowledged appends in time; not waiting for one for a while",
					"master", addr, "wait", replicaWait, "pause", noReplicaFor)
			}
			for j, i := range idx {
				cmds[i] = out[j] // each goroutine its own indexes
			}
		})
	}
	wg.Wait()
	if s.answer(live, cmds) {
		// A dead master is only forgotten when the slot map is reloaded.
		cc.ReloadState(ctx)
	}
}

// answer answers every request with its command's reply; it reports
// whether any failed.
func (s *Redis) answer(live []*redisReq, cmds []*redis.Cmd) bool {
	failed := false
	for i, r := range live {
		reply, err := cmds[i].Slice()
		if err != nil {
			failed = true
			r.res <- redisRes{err: s.fail("append to", r.room, err)}
			continue
		}
		r.res <- redisRes{reply: reply}
	}
	return failed
}

// pipeliner is a client that runs pipelines (a server, a cluster, or one
// cluster node).
type pipeliner interface {
	Pipelined(ctx context.Context, fn func(redis.Pipeliner) error) ([]redis.Cmder, error)
}

// runScripts runs the append script for every request through c in one
// pipeline (EVALSHA; then EVAL in a second one for those that got
// NOSCRIPT), each followed by WAIT 1 when wait is set; replicated reports
// whether every WAIT saw a replica acknowledge.
func (s *Redis) runScripts(ctx context.Context, c pipeliner, reqs []*redisReq, wait bool) (cmds []*redis.Cmd, replicated bool) {
	cmds, replicated = s.pipeline(ctx, c, reqs, appendScript.EvalSha, wait)
	var again []*redisReq
	var againAt []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			again, againAt = append(again, reqs[i]), append(againAt, i)
		}
	}
	if len(again) > 0 {
		out, ok := s.pipeline(ctx, c, again, appendScript.Eval, wait)
		replicated = replicated && ok
		for j, c := range out {
			cmds[againAt[j]] = c
		}
	}
	return cmds, replicated
}

// pipeline runs one script call per request (run is the script's EvalSha or
// Eval) in one round trip, then WAIT 1 when wait is set, and returns the
// scripts' commands, errors included, and whether WAIT saw a replica.
func (s *Redis) pipeline(ctx context.Context, c pipeliner, reqs []*redisReq,
	run func(context.Context, redis.Scripter, []string, ...any) *redis.Cmd, wait bool) ([]*redis.Cmd, bool) {
	cmds := make([]*redis.Cmd, len(reqs))
	var w *redis.Cmd
	_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, r := range reqs {
			cmds[i] = run(ctx, p, r.keys, r.args...)
		}
		if wait {
			w = p.Do(ctx, "WAIT", 1, replicaWait.Milliseconds())
		}
		return nil
	})
	if w == nil {
		return cmds, true
	}
	n, err := w.Int64()
	return cmds, err == nil && n >= 1
}

// decodeMember parses "<seq> <ts> <json>".
func decodeMember(member string) (protocol.Message, error) {
	seqStr, rest, ok1 := strings.Cut(member, " ")
	_, body, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return protocol.Message{}, fmt.Errorf("history: malformed redis entry %.40q", member)
	}
	seq, err := strconv.ParseUint(seqStr, 10, 64)
	if err != nil {
		return protocol.Message{}, fmt.Errorf("history: malformed redis entry %.40q: %w", member, err)
	}
	var m protocol.Message
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		return protocol.Message{}, fmt.Errorf("history: malformed redis entry %.40q: %w", member, err)
	}
	m.Seq = seq
	return m, nil
}

// zrange reads members of room's sorted set and decodes them ascending.
func (s *Redis) zrange(ctx context.Context, op, room string, z redis.ZRangeArgs) ([]protocol.Message, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	_, z.Key = s.keys(room)
	members, err := s.client.ZRangeArgs(ctx, z).Result()
	if err != nil {
		return nil, s.fail(op, room, err)
	}
	out := make([]protocol.Message, 0, len(members))
	for _, mem := range members {
		m, err := decodeMember(mem)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	if z.Rev {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

// After implements Store with one ZRANGE BYSCORE.
func (s *Redis) After(ctx context.Context, room string, since uint64, limit int) ([]protocol.Message, error) {
	n, ok, err := checkRead(room, limit)
	if err != nil || !ok {
		return nil, err
	}
	return s.zrange(ctx, "read", room, redis.ZRangeArgs{
		Start: "(" + strconv.FormatUint(since, 10), Stop: "+inf", ByScore: true, Count: int64(n),
	})
}

// Latest implements Store with one ZRANGE REV.
func (s *Redis) Latest(ctx context.Context, room string, n int) ([]protocol.Message, error) {
	n, ok, err := checkRead(room, n)
	if err != nil || !ok {
		return nil, err
	}
	return s.zrange(ctx, "read", room, redis.ZRangeArgs{Start: 0, Stop: n - 1, Rev: true})
}

// Before implements Store with one ZRANGE BYSCORE REV.
func (s *Redis) Before(ctx context.Context, room string, before uint64, n int) ([]protocol.Message, error) {
	n, ok, err := checkRead(room, n)
	if err != nil || !ok || before <= 1 {
		return nil, err
	}
	return s.zrange(ctx, "read", room, redis.ZRangeArgs{
		Start: "(" + strconv.FormatUint(before, 10), Stop: "-inf", ByScore: true, Rev: true, Count: int64(n),
	})
}

// Bounds implements Store with a GET and a ZRANGE in one MULTI.
func (s *Redis) Bounds(ctx context.Context, room string) (Bounds, error) {
	if s.closed.Load() {
		return Bounds{}, ErrClosed
	}
	if _, _, err := checkRead(room, 1); err != nil {
		return Bounds{}, err
	}
	seqKey, msgsKey := s.keys(room)
	var last *redis.StringCmd
	var first *redis.ZSliceCmd
	_, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		last = p.Get(ctx, seqKey)
		first = p.ZRangeWithScores(ctx, msgsKey, 0, 0)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Bounds{}, s.fail("bounds of", room, err)
	}
	var b Bounds
	if v, err := last.Uint64(); err == nil {
		b.Last = v
	}
	if zs := first.Val(); len(zs) > 0 {
		b.First = uint64(zs[0].Score)
	}
	return b, nil
}

// lastSeqsChunk bounds the GETs of one LastSeqs round trip.
const lastSeqsChunk = 512

// lastSeqs reads the rooms' seq counters with pipelined GETs (on a cluster
// go-redis sends each master its own).
func (s *Redis) lastSeqs(ctx context.Context, rooms []string) ([]uint64, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	out := make([]uint64, len(rooms))
	for start := 0; start < len(rooms); start += lastSeqsChunk {
		chunk := rooms[start:min(start+lastSeqsChunk, len(rooms))]
		cmds := make([]*redis.StringCmd, len(chunk))
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, room := range chunk {
				seqKey, _ := s.keys(room)
				cmds[i] = p.Get(ctx, seqKey)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, s.fail("last seq of", chunk[0], err)
		}
		for i, c := range cmds {
			v, err := c.Uint64()
			switch {
			case err == nil:
				out[start+i] = v
			case !errors.Is(err, redis.Nil): // a room with no seq yet is 0
				return nil, s.fail("last seq of", chunk[i], err)
			}
		}
	}
	return out, nil
}

// Close implements Store: queued appends fail with ErrClosed, the batch
// being sent finishes (within Options.WriteTimeout), then the client
// closes.
func (s *Redis) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.gc.close()
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("history: close redis %s: %w", s.url, err)
	}
	return nil
}
