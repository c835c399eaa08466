package xds

import (
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// keys lists a JSON object's keys, sorted.
func keys(t *testing.T, v any) []string {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%v is not an object", v)
	}
	return slices.Sorted(maps.Keys(m))
}

func getProxies(t *testing.T, s *Server) []any {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/xds/proxies", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, content type %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if got := keys(t, body); !slices.Equal(got, []string{"proxies"}) {
		t.Fatalf("top-level keys %v", got)
	}
	list, ok := body["proxies"].([]any)
	if !ok {
		t.Fatalf("proxies is %T, want a list", body["proxies"])
	}
	return list
}

func TestProxiesJSONMatchesTheContract(t *testing.T) {
	m := mesh{Services: 1, Endpoints: 1, Port: 8080}
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	if got := getProxies(t, s); len(got) != 0 {
		t.Fatalf("proxies %v before any connected", got)
	}
	cc := dial(t, addr)
	b := newADSClient(t, cc, proxylessNode("b"))
	a := newADSClient(t, cc, envoyNode("default", "reviews-v1"))
	b.subscribe(resource.ListenerType, m.names(resource.ListenerType)...)
	b.ack(b.recv())
	a.subscribe(resource.RouteType, m.names(resource.RouteType)...)
	a.nack(a.recv(), "bad")
	waitFor(t, func() bool {
		p := s.Proxies()
		return len(p) == 2 && p[0].Types[resource.ListenerType].Acked != "" && p[1].Types[resource.RouteType].NACK != nil
	})

	list := getProxies(t, s)
	proxyless, envoy := list[0].(map[string]any), list[1].(map[string]any)
	if proxyless["id"] != "b" || envoy["id"] != envoyNode("default", "reviews-v1").GetId() {
		t.Fatalf("ids %v, %v: want sorted by id", envoy["id"], proxyless["id"])
	}
	for _, p := range list {
		if got := keys(t, p); !slices.Equal(got, []string{"connectedAt", "flavour", "id", "namespace", "types", "workload"}) {
			t.Fatalf("proxy keys %v", got)
		}
		if _, err := time.Parse(time.RFC3339, p.(map[string]any)["connectedAt"].(string)); err != nil {
			t.Fatal(err)
		}
	}
	if envoy["flavour"] != "envoy" || envoy["namespace"] != "default" || envoy["workload"] != "reviews-v1" || proxyless["flavour"] != "proxyless" {
		t.Fatalf("identity wrong: %v / %v", envoy, proxyless)
	}
	lds := proxyless["types"].(map[string]any)[resource.ListenerType]
	if got := keys(t, lds); !slices.Equal(got, []string{"acked", "sent"}) {
		t.Fatalf("type keys without a NACK %v", got)
	}
	rds := envoy["types"].(map[string]any)[resource.RouteType]
	if got := keys(t, rds); !slices.Equal(got, []string{"acked", "nack", "sent"}) {
		t.Fatalf("type keys with a NACK %v", got)
	}
	nack := rds.(map[string]any)["nack"]
	if got := keys(t, nack); !slices.Equal(got, []string{"at", "error", "nonce", "version"}) {
		t.Fatalf("nack keys %v", got)
	}
	if nack.(map[string]any)["error"] != "bad" {
		t.Fatalf("nack %v", nack)
	}
}
