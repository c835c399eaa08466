package kubetest

import (
	"fmt"
	"net"
	"sync"
	"time"
)

// Link is a TCP forwarder a test controls, between one client and the API
// server: a network path that can fail. Bytes pass through untouched (TLS
// and HTTP/2 end to end), so to the client it is the API server's address.
//
//   - Blackhole stops forwarding without closing anything, in both
//     directions: what a partition looks like to both ends. Bytes sent
//     meanwhile wait in the sockets' buffers (as TCP retransmits them), and
//     Heal delivers them, late and in order.
//   - Cut closes every connection (as a partition ends once either side's
//     timeouts gave up, or a middlebox resets them): nothing queued arrives.
//   - Down closes the listener and every connection, so new connections are
//     refused; Up listens again on the same port (an API server restart).
type Link struct {
	addr string

	mu       sync.Mutex
	upstream string
	lis      net.Listener
	open     chan struct{} // closed while bytes flow; replaced by Blackhole
	conns    map[*linkConn]struct{}
	accepted int
}

type linkConn struct{ client, server net.Conn }

func (c *linkConn) close() {
	c.client.Close()
	if c.server != nil {
		c.server.Close()
	}
}

// NewLink listens on a free loopback port and forwards to upstream.
func NewLink(upstream string) (*Link, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	open := make(chan struct{})
	close(open)
	l := &Link{addr: lis.Addr().String(), upstream: upstream, lis: lis, open: open, conns: map[*linkConn]struct{}{}}
	go l.serve(lis)
	return l, nil
}

// Addr is the link's address (host:port), stable across Down and Up.
func (l *Link) Addr() string { return l.addr }

// Accepted is how many connections the link has accepted so far.
func (l *Link) Accepted() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.accepted
}

// SetUpstream points new connections at addr.
func (l *Link) SetUpstream(addr string) {
	l.mu.Lock()
	l.upstream = addr
	l.mu.Unlock()
}

// Blackhole stops forwarding bytes; connections stay open, and new ones are
// accepted but carry nothing until Heal.
func (l *Link) Blackhole() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.open:
		l.open = make(chan struct{})
	default:
	}
}

// Heal forwards again, first what waited.
func (l *Link) Heal() {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.open:
	default:
		close(l.open)
	}
}

// Cut closes every connection (the listener stays).
func (l *Link) Cut() {
	l.mu.Lock()
	conns := l.conns
	l.conns = map[*linkConn]struct{}{}
	l.mu.Unlock()
	for c := range conns {
		c.close()
	}
}

// Down closes the listener and every connection: connecting is refused
// until Up.
func (l *Link) Down() {
	l.mu.Lock()
	lis := l.lis
	l.lis = nil
	l.mu.Unlock()
	if lis != nil {
		lis.Close()
	}
	l.Cut()
}

// Up listens on the link's port again, trying for a few seconds in case
// the port is briefly taken.
func (l *Link) Up() error {
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if lis, err = net.Listen("tcp", l.addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("link %s up again: %w", l.addr, err)
	}
	l.mu.Lock()
	l.lis = lis
	l.mu.Unlock()
	go l.serve(lis)
	return nil
}

// Close stops the link for good.
func (l *Link) Close() {
	l.Down()
	l.Heal() // lets the goroutines of cut connections see them closed
}

func (l *Link) serve(lis net.Listener) {
	for {
		c, err := lis.Accept()
		if err != nil {
			return
		}
		go l.forward(c)
	}
}

// gate returns the channel that is closed while bytes may flow.
func (l *Link) gate() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

func (l *Link) forward(client net.Conn) {
	lc := &linkConn{client: client}
	l.mu.Lock()
	l.accepted++
	l.conns[lc] = struct{}{}
	upstream := l.upstream
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.conns, lc)
		l.mu.Unlock()
		lc.close()
	}()
	<-l.gate() // a connection made during a partition goes nowhere until it heals
	server, err := net.DialTimeout("tcp", upstream, 5*time.Second)
	if err != nil {
		return // refused upstream: the client sees its connection closed
	}
	l.mu.Lock()
	lc.server = server
	_, live := l.conns[lc]
	l.mu.Unlock()
	if !live { // cut meanwhile
		server.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { l.pipe(server, client); done <- struct{}{} }()
	go func() { l.pipe(client, server); done <- struct{}{} }()
	<-done // either side closed: close both, as a forwarder does
}

// pipe copies src to dst, holding each chunk (and reading no more) while
// the link is blackholed.
func (l *Link) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		<-l.gate()
		n, err := src.Read(buf)
		if n > 0 {
			<-l.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or closed: forward closes both sides
		}
	}
}
