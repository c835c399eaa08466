package grpcreport

import (
	"strings"
	"testing"
)

// FuzzTargetHost derives cluster hosts from arbitrary dial targets: never a
// panic, never a host that breaks the cluster name's | separators.
func FuzzTargetHost(f *testing.F) {
	for _, s := range []string{"xds:///reviews.default.svc.cluster.local:9080", "dns:///reviews:9080", "[::1]:1", "unix:///tmp/x", "reviews"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		host, _ := targetHost(target, "default")
		if strings.Contains(host, "|") && !strings.Contains(target, "|") {
			t.Fatalf("%q gave host %q", target, host)
		}
	})
}
