package topology

import (
	"sort"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// counts are a series' cumulative totals. Histogram counts are uint32 and
// wrap: a window's difference stays right while one series takes fewer
// than 2^32 requests per window.
type counts struct {
	Requests  uint64
	DurSum    float64 // ms
	Hist      [numBuckets]uint32
	ReqBytes  uint64
	RespBytes uint64
	TCPSent   uint64
	TCPRecv   uint64
}

// add counts one request.
func (c *counts) add(r *record.Request) {
	if r.Protocol == record.ProtocolTCP {
		c.TCPSent += r.TCPSentBytes
		c.TCPRecv += r.TCPReceivedBytes
		return
	}
	ms := float64(r.Duration) / 1e6
	c.Requests++
	c.DurSum += ms
	c.Hist[bucketIndex(ms)]++
	c.ReqBytes += r.RequestBytes
	c.RespBytes += r.ResponseBytes
}

// rates is (c - before) as per-second rates over secs.
func (c *counts) rates(before *counts, secs float64) rowVals {
	f := 1 / secs
	v := rowVals{
		Requests:  float64(c.Requests-before.Requests) * f,
		DurSum:    (c.DurSum - before.DurSum) * f,
		ReqBytes:  float64(c.ReqBytes-before.ReqBytes) * f,
		RespBytes: float64(c.RespBytes-before.RespBytes) * f,
		TCPSent:   float64(c.TCPSent-before.TCPSent) * f,
		TCPRecv:   float64(c.TCPRecv-before.TCPRecv) * f,
	}
	for i := range v.Hist {
		v.Hist[i] = float64(c.Hist[i]-before.Hist[i]) * f
	}
	return v
}

// snap is a series' cumulative counts at the start of bucket b (before
// the first request in it): the difference of two snaps is the traffic
// between them, so a window costs two binary searches per series however
// long the history, and dropping a snap only coarsens the time resolution.
type snap struct {
	b   int64 // bucket index: unix nanos / BucketWidth
	cum counts
}

// series is the in-memory history of one row key.
type series struct {
	cum   counts
	snaps []snap // ascending b
}

// record counts r in bucket b, dropping snaps older than oldest.
func (s *series) record(r *record.Request, b, oldest int64) {
	if n := len(s.snaps); n == 0 || s.snaps[n-1].b < b {
		drop := 0
		for drop < n && s.snaps[drop].b < oldest {
			drop++
		}
		if drop > 0 {
			s.snaps = append(s.snaps[:0], s.snaps[drop:]...)
		}
		s.snaps = append(s.snaps, snap{b: b, cum: s.cum})
	}
	s.cum.add(r)
}

// at is the cumulative counts at the start of bucket b.
func (s *series) at(b int64) *counts {
	i := sort.Search(len(s.snaps), func(i int) bool { return s.snaps[i].b >= b })
	if i == len(s.snaps) {
		return &s.cum
	}
	return &s.snaps[i].cum
}

// thin keeps, of the snaps before fineFrom, the first of each coarse
// period, and drops those before oldest; it reports whether the series
// has no history left.
func (s *series) thin(oldest, fineFrom, coarse int64) bool {
	out := s.snaps[:0]
	lastPeriod := int64(-1)
	for _, sn := range s.snaps {
		switch {
		case sn.b < oldest:
			continue
		case sn.b < fineFrom:
			if p := sn.b / coarse; p == lastPeriod {
				continue
			} else {
				lastPeriod = p
			}
		}
		out = append(out, sn)
	}
	clear(s.snaps[len(out):])
	s.snaps = out
	return len(s.snaps) == 0
}
