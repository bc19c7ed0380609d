package loadgen

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram geometry: values are microseconds; the first 64 buckets are exact,
// above that every power of two is split into 32 buckets (about 3% relative
// error). Values at or above 2^32 µs (71 minutes) land in the last bucket.
const (
	histSubBits  = 5
	histSubCount = 1 << histSubBits // 32
	histMaxBits  = 32
	histBuckets  = histSubCount*(histMaxBits-histSubBits-1) + 2*histSubCount // 896
)

// histogram is a fixed log-bucketed histogram of durations. It is not safe
// for concurrent use: each goroutine records into its own and the results are
// merged once the goroutines have finished, so recording costs no lock and no
// atomic operation.
type histogram struct {
	counts [histBuckets]uint32
	n      uint64
	max    uint64 // µs
}

func bucketOf(us uint64) int {
	if us < 2*histSubCount {
		return int(us)
	}
	if us >= 1<<histMaxBits {
		return histBuckets - 1
	}
	shift := bits.Len64(us) - histSubBits - 1
	return histSubCount*shift + int(us>>uint(shift))
}

// bucketValue returns the middle of bucket i's value range, in µs.
func bucketValue(i int) uint64 {
	if i < 2*histSubCount {
		return uint64(i)
	}
	shift := i/histSubCount - 1
	m := uint64(i%histSubCount + histSubCount)
	return m<<uint(shift) + (uint64(1)<<uint(shift))/2
}

func (h *histogram) record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[bucketOf(us)]++
	h.n++
	if us > h.max {
		h.max = us
	}
}

// merge adds o's counts into h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	if o.max > h.max {
		h.max = o.max
	}
}

// quantile returns the value at quantile q (0..1), at most the exact maximum.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			if i == histBuckets-1 {
				break // the overflow bucket
			}
			v := bucketValue(i)
			if v > h.max {
				v = h.max
			}
			return time.Duration(v) * time.Microsecond
		}
	}
	return time.Duration(h.max) * time.Microsecond
}

// summary returns the distribution's percentiles.
func (h *histogram) summary() Latency {
	return Latency{
		Count: h.n,
		P50:   ms(h.quantile(0.50)),
		P90:   ms(h.quantile(0.90)),
		P99:   ms(h.quantile(0.99)),
		Max:   ms(time.Duration(h.max) * time.Microsecond),
	}
}

// histShards is how many histShard the connections share.
const histShards = 16

// histShard holds the latency histograms of the connections of one shard
// (connection index % histShards), recorded with atomic adds: a few hundred
// KB in all however many connections, so recording touches memory the
// cache keeps (a histogram per connection, 3.5 KB each, cost a cache miss
// per delivery at thousands of connections).
type histShard struct {
	all    atomicHist // every delivery: send to handled
	sock   atomicHist // every delivery: send to the kernel's receipt at the socket
	accept atomicHist // a publisher's own messages: send to the server's stamp
}

// atomicHist is a histogram safe for concurrent record calls.
type atomicHist struct {
	counts [histBuckets]atomic.Uint32
	max    atomic.Uint64 // µs
}

func (h *atomicHist) record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64(d / time.Microsecond)
	}
	h.counts[bucketOf(us)].Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// addTo adds h's counts into dst.
func (h *atomicHist) addTo(dst *histogram) {
	for i := range h.counts {
		c := h.counts[i].Load()
		dst.counts[i] += c
		dst.n += uint64(c)
	}
	dst.max = max(dst.max, h.max.Load())
}

// count returns how many values h holds.
func (h *atomicHist) count() uint64 {
	var n uint64
	for i := range h.counts {
		n += uint64(h.counts[i].Load())
	}
	return n
}
