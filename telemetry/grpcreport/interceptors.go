package grpcreport

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/glassmesh/glassmesh/control/naming"
)

// outgoing sets x-glassmesh-peer to the reporter's node id (replacing any
// value forwarded from an incoming call) and returns the metadata the call
// will carry.
func (r *Reporter) outgoing(ctx context.Context) (context.Context, metadata.MD) {
	md, ok := metadata.FromOutgoingContext(ctx) // a copy
	if !ok {
		md = metadata.MD{}
	}
	md.Set(naming.PeerHeader, r.node.GetId())
	return metadata.NewOutgoingContext(ctx, md), md
}

// UnaryClientInterceptor reports unary calls as their caller and tells the
// callee who called.
func (r *Reporter) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, md := r.outgoing(ctx)
		p := &peer.Peer{}
		start := time.Now()
		err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Peer(p))...)
		c := &call{method: method, start: start, elapsed: time.Since(start), md: md, peer: p, code: status.Code(err), requestBytes: messageSize(req)}
		if err == nil {
			c.responseBytes = messageSize(reply)
		}
		r.report(r.clientEntry(c, cc.Target()))
		return err
	}
}

// StreamClientInterceptor reports streaming calls as their caller when
// they end, however they end (grpc.OnFinish), and tells the callee who
// called.
func (r *Reporter) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		ctx, md := r.outgoing(ctx)
		s := &clientStream{r: r, target: cc.Target(), call: call{method: method, start: time.Now(), md: md, peer: &peer.Peer{}}}
		// grpc-go fills the peer, then calls OnFinish, in the goroutine that
		// ends the stream; OnFinish also runs when the stream never started.
		cs, err := streamer(ctx, desc, cc, method, append(opts, grpc.Peer(s.call.peer), grpc.OnFinish(s.finished))...)
		if err != nil {
			return nil, err
		}
		s.ClientStream = cs
		return s, nil
	}
}

// clientStream counts a stream's bytes and reports it once when it ends.
type clientStream struct {
	grpc.ClientStream
	r      *Reporter
	target string
	call   call
	sent   atomic.Uint64
	recvd  atomic.Uint64

	mu        sync.Mutex
	receiving bool  // in RecvMsg: its message is not counted yet
	done      bool  // the stream ended, with err
	err       error // the stream's final status
	once      sync.Once
}

// SendMsg counts the message's bytes.
func (s *clientStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil {
		s.sent.Add(messageSize(m))
	}
	return err
}

// RecvMsg counts the message's bytes. grpc-go ends a stream inside the
// RecvMsg that sees its end, before this wrapper counts the last message,
// so a stream that ended during RecvMsg is reported here.
func (s *clientStream) RecvMsg(m any) error {
	s.mu.Lock()
	s.receiving = true
	s.mu.Unlock()
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.recvd.Add(messageSize(m))
	}
	s.mu.Lock()
	s.receiving = false
	done := s.done
	s.mu.Unlock()
	if done {
		s.report()
	}
	return err
}

// finished is the OnFinish callback.
func (s *clientStream) finished(err error) {
	s.mu.Lock()
	s.done, s.err = true, err
	receiving := s.receiving
	s.mu.Unlock()
	if !receiving {
		s.report()
	}
}

func (s *clientStream) report() {
	s.once.Do(func() {
		c := s.call
		c.elapsed = time.Since(c.start)
		c.code = status.Code(s.err)
		c.requestBytes, c.responseBytes = s.sent.Load(), s.recvd.Load()
		s.r.report(s.r.clientEntry(&c, s.target))
	})
}

// UnaryServerInterceptor reports unary calls as their callee, naming the
// caller from x-glassmesh-peer.
func (r *Reporter) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		c := r.serverCall(ctx, info.FullMethod, start, err)
		c.requestBytes = messageSize(req)
		if err == nil {
			c.responseBytes = messageSize(resp)
		}
		r.report(serverEntry(c))
		return resp, err
	}
}

// StreamServerInterceptor reports streaming calls as their callee when the
// handler returns.
func (r *Reporter) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		counted := &serverStream{ServerStream: ss}
		err := handler(srv, counted)
		c := r.serverCall(ss.Context(), info.FullMethod, start, err)
		c.requestBytes, c.responseBytes = counted.recvd.Load(), counted.sent.Load()
		r.report(serverEntry(c))
		return err
	}
}

func (r *Reporter) serverCall(ctx context.Context, method string, start time.Time, err error) *call {
	md, _ := metadata.FromIncomingContext(ctx)
	p, _ := peer.FromContext(ctx)
	return &call{method: method, start: start, elapsed: time.Since(start), md: md, peer: p, code: status.Code(err)}
}

// serverStream counts a handler's bytes.
type serverStream struct {
	grpc.ServerStream
	sent, recvd atomic.Uint64
}

// SendMsg counts the message's bytes.
func (s *serverStream) SendMsg(m any) error {
	err := s.ServerStream.SendMsg(m)
	if err == nil {
		s.sent.Add(messageSize(m))
	}
	return err
}

// RecvMsg counts the message's bytes.
func (s *serverStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.recvd.Add(messageSize(m))
	}
	return err
}
