package brokertest

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ClusterNode is one redis-server of a test cluster (StartRedisCluster).
type ClusterNode struct {
	// Addr is its "127.0.0.1:port".
	Addr string
	// Kill stops it with SIGKILL, as a crash would, and waits for the exit.
	Kill func()
	// Restart starts it again on the same port with the same cluster
	// configuration file, and waits until it answers PING.
	Restart func()
}

// RedisCluster is a Redis Cluster of its own, run by StartRedisCluster:
// three masters and three replicas on loopback ports.
type RedisCluster struct {
	// URL is "redis+cluster://" followed by every node's address.
	URL string
	// Nodes are the six servers, in the order of their ports.
	Nodes []*ClusterNode

	t    testing.TB
	mu   sync.Mutex
	dead map[string]bool
}

// clusterNodeTimeout is the servers' cluster-node-timeout: a dead master's
// replica takes over about two of these after the crash.
const clusterNodeTimeout = 1000 * time.Millisecond

// StartRedisCluster runs six redis-servers with cluster mode on, no
// persistence and a cluster-node-timeout of 1 s, in a temporary directory,
// joins them with `redis-cli --cluster create --cluster-replicas 1` and
// waits until every node reports cluster_state:ok and all agree on who
// serves which slot. The servers are killed when the test ends. Without
// redis-server or redis-cli the test fails under CI=true and is skipped
// otherwise.
func StartRedisCluster(t testing.TB) *RedisCluster {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		skipOrFail(t, "brokertest: redis-server not installed: %v", err)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		skipOrFail(t, "brokertest: redis-cli not installed: %v", err)
	}
	dir := t.TempDir()
	c := &RedisCluster{t: t, dead: map[string]bool{}}
	var addrs []string
	used := map[int]bool{}
	free := func() string {
		for {
			if p := freePort(t); !used[p] {
				used[p] = true
				return strconv.Itoa(p)
			}
		}
	}
	for range 6 {
		port, busPort := free(), free()
		addr := net.JoinHostPort("127.0.0.1", port)
		stop, restart := serverProcess(t, "redis-server", addr, dir+"/redis-"+port+".log", pingRaw, func() *exec.Cmd {
			return exec.Command(bin, "--port", port, "--cluster-port", busPort, "--bind", "127.0.0.1",
				"--cluster-enabled", "yes", "--cluster-config-file", "nodes-"+port+".conf",
				"--cluster-node-timeout", strconv.Itoa(int(clusterNodeTimeout.Milliseconds())),
				"--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0",
				"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "redis-"+port+".log")
		})
		n := &ClusterNode{Addr: addr}
		n.Kill = func() {
			c.mu.Lock()
			c.dead[addr] = true
			c.mu.Unlock()
			stop()
		}
		n.Restart = func() {
			restart()
			c.mu.Lock()
			delete(c.dead, addr)
			c.mu.Unlock()
		}
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, addr)
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("brokertest: redis-cli --cluster create: %v\n%s", err, out)
	}
	c.URL = "redis+cluster://" + strings.Join(addrs, ",")
	c.WaitHealthy(30 * time.Second)
	return c
}

func clusterAdmin(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, DialerRetries: 1, MaxRetries: -1,
		DialTimeout: 500 * time.Millisecond, ReadTimeout: time.Second,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
}

// Stop kills every node (they are killed when the test ends anyway).
func (c *RedisCluster) Stop() {
	for _, n := range c.Nodes {
		n.Kill()
	}
}

// live returns the addresses of the nodes not killed.
func (c *RedisCluster) live() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, n := range c.Nodes {
		if !c.dead[n.Addr] {
			out = append(out, n.Addr)
		}
	}
	return out
}

// slotMap asks addr for its view: "start-end=master" lines, sorted, and
// whether it reports cluster_state:ok.
func slotMap(ctx context.Context, addr string) (string, bool, error) {
	a := clusterAdmin(addr)
	defer func() { _ = a.Close() }()
	info, err := a.ClusterInfo(ctx).Result()
	if err != nil {
		return "", false, err
	}
	repl, err := a.Info(ctx, "replication").Result()
	if err != nil {
		return "", false, err
	}
	if strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up") {
		return "", false, nil // a replica still syncing
	}
	slots, err := clusterMasters(ctx, a)
	if err != nil {
		return "", false, err
	}
	var lines []string
	covered := 0
	for _, s := range slots {
		covered += s.end - s.start + 1
		lines = append(lines, fmt.Sprintf("%05d-%05d=%s", s.start, s.end, s.master))
	}
	slices.Sort(lines)
	ok := strings.Contains(info, "cluster_state:ok") && covered == 16384
	return strings.Join(lines, "\n"), ok, nil
}

// slotMaster is a slot range and its online master.
type slotMaster struct {
	start, end int
	master     string
}

// clusterMasters reads CLUSTER SHARDS from a: the ranges with an online
// master.
func clusterMasters(ctx context.Context, a *redis.Client) ([]slotMaster, error) {
	shards, err := a.ClusterShards(ctx).Result()
	if err != nil {
		return nil, err
	}
	var out []slotMaster
	for _, sh := range shards {
		for _, n := range sh.Nodes {
			if n.Role != "master" || n.Health != "online" {
				continue
			}
			addr := net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10))
			for _, r := range sh.Slots {
				out = append(out, slotMaster{start: int(r.Start), end: int(r.End), master: addr})
			}
		}
	}
	return out, nil
}

// WaitHealthy waits until every live node reports cluster_state:ok, every
// live replica is in sync with its master, all live nodes report the same
// slot map and every slot's master is live;
// it fails the test after timeout.
func (c *RedisCluster) WaitHealthy(timeout time.Duration) {
	c.t.Helper()
	var last string
	healthy := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		live := c.live()
		var first string
		for i, addr := range live {
			m, ok, err := slotMap(ctx, addr)
			if err != nil || !ok {
				last = fmt.Sprintf("%s: ok=%v err=%v\n%s", addr, ok, err, m)
				return false
			}
			if i == 0 {
				first = m
			} else if m != first {
				last = fmt.Sprintf("%s disagrees:\n%s\nvs\n%s", addr, m, first)
				return false
			}
		}
		for _, line := range strings.Split(first, "\n") {
			_, master, _ := strings.Cut(line, "=")
			if !slices.Contains(live, master) {
				last = "slot master " + master + " is dead"
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(timeout)
	for !healthy() {
		if time.Now().After(deadline) {
			c.t.Fatalf("brokertest: redis cluster not healthy after %v: %s", timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MasterOf returns the node serving key's slot, as a live node sees it.
func (c *RedisCluster) MasterOf(key string) *ClusterNode {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, addr := range c.live() {
		a := clusterAdmin(addr)
		slot, err := a.ClusterKeySlot(ctx, key).Result()
		var slots []slotMaster
		if err == nil {
			slots, err = clusterMasters(ctx, a)
		}
		_ = a.Close()
		if err != nil {
			continue
		}
		for _, s := range slots {
			if int(slot) >= s.start && int(slot) <= s.end {
				return c.Node(s.master)
			}
		}
	}
	c.t.Fatalf("brokertest: no live node knows the master of %q", key)
	return nil
}

// Node returns the node at addr, or fails the test.
func (c *RedisCluster) Node(addr string) *ClusterNode {
	c.t.Helper()
	for _, n := range c.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	c.t.Fatalf("brokertest: no cluster node at %s", addr)
	return nil
}

// Client returns a client of the whole cluster, closed when the test ends.
func (c *RedisCluster) Client() *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.live(),
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	c.t.Cleanup(func() { _ = cc.Close() })
	return cc
}
