package pipeline

import (
	"strings"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

const (
	headerContentType = "content-type"
	headerGRPCStatus  = "grpc-status"
	grpcContentType   = "application/grpc"
)

// convertHTTP turns one HTTP access log entry into the Request its reporter
// saw. It never fails: what it cannot read becomes unknown, 0 or "".
func convertHTTP(ix *index, rep *reporter, e *accesslogdatav3.HTTPAccessLogEntry, now time.Time, r *record.Request) {
	c := e.GetCommonProperties()
	req, resp := e.GetRequest(), e.GetResponse()
	headers := req.GetRequestHeaders()
	cl := parseCluster(c.GetUpstreamCluster())
	s := resolveSides(ix, rep, c, cl, headers[naming.PeerHeader])
	si, meshProtocol := destService(ix, rep, cl, req.GetAuthority(), s.destWI)

	*r = record.Request{
		Time:                     startTime(c, now),
		Reporter:                 s.reporter,
		Source:                   s.source,
		Dest:                     s.dest,
		ResponseCode:             int(resp.GetResponseCode().GetValue()),
		ResponseFlags:            FormatResponseFlags(c.GetResponseFlags()),
		ConnectionSecurityPolicy: s.policy,
		Duration:                 requestDuration(c),
		// Istio's request and response sizes count headers and body.
		RequestBytes:  req.GetRequestHeadersBytes() + req.GetRequestBodyBytes(),
		ResponseBytes: resp.GetResponseHeadersBytes() + resp.GetResponseBodyBytes(),
		TraceID:       traceIDFromHeaders(headers),
	}
	setDestService(r, si, cl)
	status, hasStatus := grpcStatusHeader(resp)
	if hasStatus || isGRPC(headers[headerContentType]) || isGRPC(resp.GetResponseHeaders()[headerContentType]) || meshProtocol == model.ProtocolGRPC {
		r.Protocol = record.ProtocolGRPC
		if !hasStatus {
			status = grpcStatusFromHTTP(r.ResponseCode)
		}
		r.GRPCStatus = status
	} else {
		r.Protocol = record.ProtocolHTTP
	}
}

func isGRPC(contentType string) bool { return strings.HasPrefix(contentType, grpcContentType) }

// grpcStatusHeader reads grpc-status from the trailers, or from the headers
// of a trailers-only response.
func grpcStatusHeader(resp *accesslogdatav3.HTTPResponseProperties) (string, bool) {
	if v, ok := resp.GetResponseTrailers()[headerGRPCStatus]; ok && isStatusCode(v) {
		return v, true
	}
	if v, ok := resp.GetResponseHeaders()[headerGRPCStatus]; ok && isStatusCode(v) {
		return v, true
	}
	return "", false
}

func isStatusCode(v string) bool {
	if v == "" || len(v) > 3 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return true
}

// grpcStatusFromHTTP is Envoy's Grpc::Utility::httpToGrpcStatus, which it
// applies to a gRPC response without grpc-status (e.g. a local 503 reply).
// No response at all has no status: "".
func grpcStatusFromHTTP(code int) string {
	switch code {
	case 0:
		return ""
	case 400:
		return "13" // INTERNAL
	case 401:
		return "16" // UNAUTHENTICATED
	case 403:
		return "7" // PERMISSION_DENIED
	case 404:
		return "12" // UNIMPLEMENTED
	case 429, 502, 503, 504:
		return "14" // UNAVAILABLE
	}
	return "2" // UNKNOWN
}

// requestDuration is Istio's request duration: first byte received to last
// byte sent downstream, else to the last byte received from upstream, else
// the whole stream's lifetime.
func requestDuration(c *accesslogdatav3.AccessLogCommon) time.Duration {
	for _, d := range []*durationpb.Duration{c.GetTimeToLastDownstreamTxByte(), c.GetTimeToLastUpstreamRxByte(), c.GetDuration()} {
		if d != nil {
			if v := d.AsDuration(); v > 0 {
				return v
			}
		}
	}
	return 0
}

// startTime is when the request started, or now when Envoy did not say.
func startTime(c *accesslogdatav3.AccessLogCommon, now time.Time) time.Time {
	if t := c.GetStartTime(); t != nil && t.IsValid() {
		return t.AsTime()
	}
	return now
}
