package pipeline

import (
	"sync"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// convertTCP turns one TCP access log entry into the Request (connection
// event) its reporter saw. Envoy logs cumulative byte counts per connection
// (periodic entries, then a final one); the tracker turns them into the
// bytes since the last report and says whether the connection is new.
func convertTCP(ix *index, rep *reporter, conns *connTracker, e *accesslogdatav3.TCPAccessLogEntry, now time.Time, r *record.Request) {
	c := e.GetCommonProperties()
	cl := parseCluster(c.GetUpstreamCluster())
	s := resolveSides(ix, rep, c, cl, "")
	si, _ := destService(ix, rep, cl, "", s.destWI)
	closed := isFinal(c)
	sent, received, opened := conns.observe(rep.id, c.GetStreamId(), e.GetConnectionProperties(), closed, now)
	*r = record.Request{
		Time:                     startTime(c, now),
		Reporter:                 s.reporter,
		Source:                   s.source,
		Dest:                     s.dest,
		Protocol:                 record.ProtocolTCP,
		ResponseFlags:            FormatResponseFlags(c.GetResponseFlags()),
		ConnectionSecurityPolicy: s.policy,
		TCPSentBytes:             sent,
		TCPReceivedBytes:         received,
		TCPOpened:                opened,
		TCPClosed:                closed,
	}
	setDestService(r, si, cl)
}

// isFinal says whether an entry is the last one of its connection.
func isFinal(c *accesslogdatav3.AccessLogCommon) bool {
	switch c.GetAccessLogType() {
	case accesslogdatav3.AccessLogType_TcpConnectionEnd:
		return true
	case accesslogdatav3.AccessLogType_NotSet:
		// Envoys before access_log_type set only this (now deprecated) field.
		return !c.GetIntermediateLogEntry()
	}
	return false
}

// connKey is one connection of one reporter.
type connKey struct{ node, stream string }

// connCounts are the cumulative byte counts last seen for a connection.
type connCounts struct {
	sent, received uint64
	at             time.Time
}

// staleConnection is how long a connection may go without an entry before
// the tracker forgets it to make room (its proxy died without a final
// entry, or the entry was lost with an overloaded batch).
const staleConnection = 10 * time.Minute

// connTracker remembers the open connections' byte counts so periodic
// entries become deltas. It holds at most max connections; when full it
// forgets stale ones, and failing that reports a connection as if each entry
// were its first (its bytes may then be counted twice), calling untracked.
type connTracker struct {
	mu        sync.Mutex
	max       int
	open      map[connKey]connCounts
	swept     time.Time
	untracked func()
}

func newConnTracker(max int, untracked func()) *connTracker {
	return &connTracker{max: max, open: map[connKey]connCounts{}, untracked: untracked}
}

// observe returns the bytes sent and received since the connection's last
// entry and whether this is its first entry. An entry without a stream id
// cannot be matched with others and counts as a whole connection.
func (t *connTracker) observe(node, stream string, p *accesslogdatav3.ConnectionProperties, final bool, now time.Time) (sent, received uint64, opened bool) {
	cur := connCounts{sent: p.GetSentBytes(), received: p.GetReceivedBytes(), at: now}
	if stream == "" {
		return cur.sent, cur.received, true
	}
	k := connKey{node, stream}
	t.mu.Lock()
	defer t.mu.Unlock()
	last, seen := t.open[k]
	if !seen && !final && len(t.open) >= t.max && now.Sub(t.swept) > time.Minute {
		// At most one sweep a minute, so a full table costs no O(n) per entry.
		t.swept = now
		t.forgetStale(now)
	}
	switch {
	case final:
		delete(t.open, k)
	case seen || len(t.open) < t.max:
		t.open[k] = cur
	default:
		t.untracked()
	}
	return delta(cur.sent, last.sent), delta(cur.received, last.received), !seen
}

// forgetStale drops the connections not heard of for staleConnection.
func (t *connTracker) forgetStale(now time.Time) {
	for k, c := range t.open {
		if now.Sub(c.at) > staleConnection {
			delete(t.open, k)
		}
	}
}

// delta guards against counters that went backwards (a restarted proxy
// reusing a stream id).
func delta(cur, last uint64) uint64 {
	if cur < last {
		return cur
	}
	return cur - last
}
