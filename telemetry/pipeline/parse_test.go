package pipeline

import (
	"strings"
	"testing"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

func TestFormatResponseFlags(t *testing.T) {
	tests := []struct {
		name  string
		flags *accesslogdatav3.ResponseFlags
		want  string
	}{
		{"no flags message is a dash", nil, "-"},
		{"an empty flags message is a dash", &accesslogdatav3.ResponseFlags{}, "-"},
		{"one flag is its short code", &accesslogdatav3.ResponseFlags{NoRouteFound: true}, "NR"},
		{"unauthorized is UAEX", &accesslogdatav3.ResponseFlags{UnauthorizedDetails: &accesslogdatav3.ResponseFlags_Unauthorized{}}, "UAEX"},
		{"several flags follow Envoy's order, not the proto's", &accesslogdatav3.ResponseFlags{
			UpstreamRetryLimitExceeded: true, DownstreamConnectionTermination: true, FailedLocalHealthcheck: true, DnsResolutionFailure: true,
		}, "LH,DC,URX,DF"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FormatResponseFlags(tc.flags); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	t.Run("every flag of the proto has a distinct code in Envoy's order", func(t *testing.T) {
		all := &accesslogdatav3.ResponseFlags{}
		m := all.ProtoReflect()
		fields := m.Descriptor().Fields()
		for i := range fields.Len() {
			f := fields.Get(i)
			if f.Kind() == protoreflect.BoolKind {
				m.Set(f, protoreflect.ValueOfBool(true))
			} else {
				m.Set(f, m.NewField(f))
			}
		}
		want := "LH,UH,UT,LR,UR,UF,UC,UO,NR,DI,FI,RL,UAEX,RLSE,DC,URX,SI,IH,DPE,UMSDR,RFCF,NFCF,DT,UPE,NC,OM,DF,DR"
		if got := FormatResponseFlags(all); got != want {
			t.Errorf("got  %s\nwant %s", got, want)
		}
		if n := strings.Count(want, ",") + 1; n != fields.Len() {
			t.Errorf("%d codes for %d proto fields: a new flag needs a code", n, fields.Len())
		}
	})
}

func TestTraceIDFromHeaders(t *testing.T) {
	const id = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"no headers have no trace id", nil, ""},
		{"a W3C traceparent gives its trace id", map[string]string{"traceparent": "00-" + id + "-00f067aa0ba902b7-01"}, id},
		{"a future traceparent version may carry more fields", map[string]string{"traceparent": "01-" + id + "-00f067aa0ba902b7-01-extra"}, id},
		{"version 00 may not carry more fields", map[string]string{"traceparent": "00-" + id + "-00f067aa0ba902b7-01-extra"}, ""},
		{"version ff is invalid", map[string]string{"traceparent": "ff-" + id + "-00f067aa0ba902b7-01"}, ""},
		{"upper-case hex is invalid", map[string]string{"traceparent": "00-" + strings.ToUpper(id) + "-00f067aa0ba902b7-01"}, ""},
		{"an all-zero trace id is invalid", map[string]string{"traceparent": "00-" + strings.Repeat("0", 32) + "-00f067aa0ba902b7-01"}, ""},
		{"an all-zero parent id is invalid", map[string]string{"traceparent": "00-" + id + "-0000000000000000-01"}, ""},
		{"an invalid traceparent falls back to b3", map[string]string{"traceparent": "junk", "b3": id + "-00f067aa0ba902b7"}, id},
		{"b3 single with sampling and parent", map[string]string{"b3": id + "-00f067aa0ba902b7-1-0020000000000001"}, id},
		{"b3 single with a 64-bit id is zero-padded", map[string]string{"b3": "a3ce929d0e0e4736-00f067aa0ba902b7-d"}, "0000000000000000a3ce929d0e0e4736"},
		{"b3 carrying only a sampling decision has no id", map[string]string{"b3": "1"}, ""},
		{"b3 with a bad sampling state is invalid", map[string]string{"b3": id + "-00f067aa0ba902b7-x"}, ""},
		{"b3 with a short span id is invalid", map[string]string{"b3": id + "-00f067aa"}, ""},
		{"x-b3-traceid of 128 bits", map[string]string{"x-b3-traceid": id}, id},
		{"x-b3-traceid of 64 bits is zero-padded", map[string]string{"x-b3-traceid": "a3ce929d0e0e4736"}, "0000000000000000a3ce929d0e0e4736"},
		{"x-b3-traceid of another length is invalid", map[string]string{"x-b3-traceid": "a3ce929d0e0e47"}, ""},
		{"traceparent wins over b3", map[string]string{"traceparent": "00-" + id + "-00f067aa0ba902b7-01", "x-b3-traceid": "a3ce929d0e0e4736"}, id},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := traceIDFromHeaders(tc.headers); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseCluster(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want cluster
	}{
		{"an outbound cluster names the service host and port", "outbound|9080|v2|reviews.default.svc.cluster.local", cluster{port: 9080, host: "reviews.default.svc.cluster.local"}},
		{"an inbound cluster names the workload port", "inbound|19082||", cluster{inbound: true, port: 19082}},
		{"Istio's inbound passthrough is inbound", "InboundPassthroughClusterIpv4", cluster{inbound: true}},
		{"the outbound passthrough is outbound", "PassthroughCluster", cluster{}},
		{"no cluster (no route) is outbound", "", cluster{}},
		{"a bad port is 0", "outbound|x||a.b.svc.cluster.local", cluster{host: "a.b.svc.cluster.local"}},
		{"an unknown direction says nothing", "sideways|1||x", cluster{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseCluster(tc.in); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestAuthorityService(t *testing.T) {
	tests := []struct {
		in       string
		name, ns string
		ok       bool
	}{
		{"reviews", "reviews", "default", true},
		{"reviews:9080", "reviews", "default", true},
		{"reviews.shop", "reviews", "shop", true},
		{"reviews.shop.svc:9080", "reviews", "shop", true},
		{"reviews.shop.svc.cluster.local:9080", "reviews", "shop", true},
		{"10.0.0.3:9080", "", "", false},
		{"[::1]:9080", "", "", false},
		{"www.example.com", "", "", false},
		{"", "", "", false},
		{".shop", "", "", false},
	}
	for _, tc := range tests {
		t.Run("authority "+tc.in, func(t *testing.T) {
			name, ns, ok := authorityService(tc.in, "default")
			if name != tc.name || ns != tc.ns || ok != tc.ok {
				t.Errorf("got %q %q %v, want %q %q %v", name, ns, ok, tc.name, tc.ns, tc.ok)
			}
		})
	}
}

func TestParseSPIFFE(t *testing.T) {
	tests := []struct {
		in     string
		ns, sa string
		ok     bool
	}{
		{"spiffe://cluster.local/ns/default/sa/reviews", "default", "reviews", true},
		{"spiffe://other.domain/ns/shop/sa/default", "shop", "default", true},
		{"spiffe://cluster.local/ns//sa/x", "", "", false},
		{"spiffe://cluster.local/ns/a/b/sa/x", "", "", false},
		{"https://cluster.local/ns/a/sa/x", "", "", false},
		{"spiffe://cluster.local", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			ns, sa, ok := parseSPIFFE(tc.in)
			if ns != tc.ns || sa != tc.sa || ok != tc.ok {
				t.Errorf("got %q %q %v, want %q %q %v", ns, sa, ok, tc.ns, tc.sa, tc.ok)
			}
		})
	}
}
