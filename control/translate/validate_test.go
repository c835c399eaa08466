package translate

import (
	"strings"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestValidateLooksInsideAnys(t *testing.T) {
	t.Run("a connection manager without a stat prefix two Anys deep is caught", func(t *testing.T) {
		bad := httpConnectionManager(hcmConfig{statPrefix: "x", rds: "r"})
		bad.StatPrefix = ""
		l := &listenerv3.Listener{Name: "l", ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(bad)}}
		err := Validate(l)
		if err == nil || !strings.Contains(err.Error(), "StatPrefix") {
			t.Fatalf("err = %v, want a StatPrefix violation", err)
		}
	})
	t.Run("a per-route config in a map is caught", func(t *testing.T) {
		rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
			Name: "vh", Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:                &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action:               &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
				TypedPerFilterConfig: map[string]*anypb.Any{"f": mustAny(&hcmv3.HttpConnectionManager{})},
			}},
		}}}
		err := Validate(rc)
		if err == nil || !strings.Contains(err.Error(), "typed_per_filter_config[f]") {
			t.Fatalf("err = %v, want a violation inside typed_per_filter_config[f]", err)
		}
	})
	t.Run("an Any of an unknown type is caught", func(t *testing.T) {
		l := &listenerv3.Listener{Name: "l", ApiListener: &listenerv3.ApiListener{ApiListener: &anypb.Any{TypeUrl: "type.googleapis.com/no.such.Type"}}}
		if err := Validate(l); err == nil {
			t.Fatal("an unresolvable Any passed")
		}
	})
}
