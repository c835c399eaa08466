package grpcreport

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/naming"
)

// loggedHeaders are the request headers copied into entries: the ones a
// sidecar's access log lists (trace context, request id, peer id).
var loggedHeaders = naming.LoggedRequestHeaders()

// grpcFrameHeader is the length prefix gRPC puts before every message, which
// Envoy counts in body bytes.
const grpcFrameHeader = 5

// call is what an interceptor saw of one RPC.
type call struct {
	method        string
	start         time.Time
	elapsed       time.Duration
	md            metadata.MD // outgoing (client) or incoming (server)
	peer          *peer.Peer  // nil when the call never reached a server
	code          codes.Code
	requestBytes  uint64
	responseBytes uint64
}

// entry is the access log entry common to both sides.
func (c *call) entry() *accesslogdatav3.HTTPAccessLogEntry {
	e := &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{
			StartTime:                  timestamppb.New(c.start),
			TimeToLastDownstreamTxByte: durationpb.New(c.elapsed),
			Duration:                   durationpb.New(c.elapsed),
		},
		ProtocolVersion: accesslogdatav3.HTTPAccessLogEntry_HTTP2,
		Request: &accesslogdatav3.HTTPRequestProperties{
			RequestMethod:    corev3.RequestMethod_POST,
			Scheme:           "http",
			Path:             c.method,
			RequestBodyBytes: c.requestBytes,
			RequestHeaders:   map[string]string{"content-type": "application/grpc"},
		},
		Response: &accesslogdatav3.HTTPResponseProperties{
			ResponseBodyBytes: c.responseBytes,
			ResponseTrailers:  map[string]string{"grpc-status": strconv.Itoa(int(c.code))},
		},
	}
	for _, h := range loggedHeaders {
		if v := c.md.Get(h); len(v) > 0 {
			// The last value: an app forwarding incoming metadata may carry
			// an earlier hop's value before this one's.
			e.Request.RequestHeaders[h] = v[len(v)-1]
		}
	}
	if ua := c.md.Get("user-agent"); len(ua) > 0 {
		e.Request.UserAgent = ua[0]
	}
	if c.peer != nil && c.peer.Addr != nil {
		// The server answered: gRPC carries every status in a 200 response.
		e.Response.ResponseCode = wrapperspb.UInt32(200)
	}
	e.CommonProperties.TlsProperties = tlsProperties(c.peer)
	return e
}

// clientEntry reports an outgoing call as the caller's sidecar would.
func (r *Reporter) clientEntry(c *call, target string) *accesslogdatav3.HTTPAccessLogEntry {
	e := c.entry()
	host, port := targetHost(target, r.cfg.Namespace)
	cp := e.CommonProperties
	if c.peer != nil {
		cp.UpstreamRemoteAddress = address(c.peer.Addr)
		cp.UpstreamLocalAddress = address(c.peer.LocalAddr)
		if port == 0 {
			port = cp.GetUpstreamRemoteAddress().GetSocketAddress().GetPortValue()
		}
	}
	cp.UpstreamCluster = "outbound|" + strconv.FormatUint(uint64(port), 10) + "||" + host
	e.Request.Authority = authority(target)
	switch {
	case c.code == codes.DeadlineExceeded:
		cp.ResponseFlags = &accesslogdatav3.ResponseFlags{UpstreamRequestTimeout: true}
	case c.code == codes.Canceled:
		cp.ResponseFlags = &accesslogdatav3.ResponseFlags{DownstreamConnectionTermination: true}
	case c.code == codes.Unavailable && (c.peer == nil || c.peer.Addr == nil):
		cp.ResponseFlags = &accesslogdatav3.ResponseFlags{UpstreamConnectionFailure: true}
	}
	return e
}

// serverEntry reports an incoming call as the callee's sidecar would.
func serverEntry(c *call) *accesslogdatav3.HTTPAccessLogEntry {
	e := c.entry()
	cp := e.CommonProperties
	var port uint32
	if c.peer != nil {
		cp.DownstreamRemoteAddress = address(c.peer.Addr)
		cp.DownstreamDirectRemoteAddress = cp.DownstreamRemoteAddress
		cp.DownstreamLocalAddress = address(c.peer.LocalAddr)
		port = cp.GetDownstreamLocalAddress().GetSocketAddress().GetPortValue()
	}
	cp.UpstreamCluster = "inbound|" + strconv.FormatUint(uint64(port), 10) + "||"
	if a := c.md.Get(":authority"); len(a) > 0 {
		e.Request.Authority = a[0]
	}
	if c.code == codes.Canceled {
		cp.ResponseFlags = &accesslogdatav3.ResponseFlags{DownstreamConnectionTermination: true}
	}
	return e
}

// targetHost derives the service host and port a client dialled from its
// target: xds:///reviews.default.svc.cluster.local:9080, xds:///reviews.default:9080,
// dns:///reviews:9080 or reviews:9080. Names are completed the way mesh DNS
// does (name → name.<own namespace>.svc.cluster.local, name.namespace →
// name.namespace.svc.cluster.local); addresses and localhost stay as they
// are. Port 0 means the target named none.
func targetHost(target, namespace string) (string, uint32) {
	host, portText, err := net.SplitHostPort(authority(target))
	if err != nil {
		host, portText = authority(target), ""
	}
	port, _ := strconv.ParseUint(portText, 10, 32)
	if host == "" || host == "localhost" || net.ParseIP(host) != nil {
		return host, uint32(port)
	}
	host = strings.TrimSuffix(host, ".")
	switch {
	case strings.HasSuffix(host, ".svc.cluster.local"):
	case strings.HasSuffix(host, ".svc"):
		host += ".cluster.local"
	case strings.Count(host, ".") == 1:
		host += ".svc.cluster.local"
	case !strings.Contains(host, "."):
		host += "." + namespace + ".svc.cluster.local"
	}
	return host, uint32(port)
}

// authority is the endpoint part of a grpc-go target (after scheme://authority/).
func authority(target string) string {
	if _, rest, ok := strings.Cut(target, "://"); ok {
		if _, endpoint, ok := strings.Cut(rest, "/"); ok {
			return endpoint
		}
		return rest
	}
	return target
}

// address converts a net.Addr of an IP connection; nil for others.
func address(a net.Addr) *corev3.Address {
	if a == nil {
		return nil
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return nil
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       ap.Addr().Unmap().String(),
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(ap.Port())},
	}}}
}

// tlsProperties describes a TLS connection as Envoy would: the peer's
// certificate SANs, and a local certificate whenever the peer presented
// one. In a mesh both sides hold SVIDs from the same CA, so a peer
// certificate means mutual TLS; the local SAN is left to glassmesh's
// registry (grpc-go does not expose the certificate it presented).
func tlsProperties(p *peer.Peer) *accesslogdatav3.TLSProperties {
	if p == nil {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	props := &accesslogdatav3.TLSProperties{TlsSniHostname: info.State.ServerName}
	if len(info.State.PeerCertificates) == 0 {
		return props
	}
	peerCert := &accesslogdatav3.TLSProperties_CertificateProperties{Subject: info.State.PeerCertificates[0].Subject.String()}
	for _, u := range info.State.PeerCertificates[0].URIs {
		peerCert.SubjectAltName = append(peerCert.SubjectAltName, &accesslogdatav3.TLSProperties_CertificateProperties_SubjectAltName{
			San: &accesslogdatav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: u.String()},
		})
	}
	props.PeerCertificateProperties = peerCert
	props.LocalCertificateProperties = &accesslogdatav3.TLSProperties_CertificateProperties{}
	return props
}

// messageSize is a message's size on the wire, 0 for non-protobuf values.
func messageSize(m any) uint64 {
	if pm, ok := m.(proto.Message); ok {
		return uint64(proto.Size(pm)) + grpcFrameHeader
	}
	return 0
}
