package grpcreport

import (
	"strings"
	"testing"

	"github.com/glassmesh/glassmesh/control/naming"
)

func TestTargetHost(t *testing.T) {
	tests := []struct {
		target string
		host   string
		port   uint32
	}{
		{"xds:///reviews.default.svc.cluster.local:9080", "reviews.default.svc.cluster.local", 9080},
		{"xds:///reviews.default:9080", "reviews.default.svc.cluster.local", 9080},
		{"xds://authority.example/reviews.shop.svc:9080", "reviews.shop.svc.cluster.local", 9080},
		{"dns:///reviews:9080", "reviews.app.svc.cluster.local", 9080},
		{"reviews", "reviews.app.svc.cluster.local", 0},
		{"passthrough:///127.0.0.1:19082", "127.0.0.1", 19082},
		{"[::1]:50051", "::1", 50051},
		{"localhost:50051", "localhost", 50051},
		{"api.example.com:443", "api.example.com", 443},
	}
	for _, tc := range tests {
		t.Run("target "+tc.target, func(t *testing.T) {
			host, port := targetHost(tc.target, "app")
			if host != tc.host || port != tc.port {
				t.Errorf("got %q %d, want %q %d", host, port, tc.host, tc.port)
			}
		})
	}
}

func TestConfigValidation(t *testing.T) {
	ok := Config{Target: "127.0.0.1:15010", IP: "127.0.0.1", Instance: "reviews-v1", Namespace: "default"}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"a target is required", func(c *Config) { c.Target = "" }, "no Target"},
		{"an identity is required", func(c *Config) { c.Namespace = "" }, "identity needs"},
		{"sizes may not be negative", func(c *Config) { c.QueueSize = -1 }, "must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mutate(&c)
			if _, err := c.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("defaults fill the rest", func(t *testing.T) {
		c, err := ok.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		if c.Workload != "reviews-v1" || c.BatchSize != DefaultBatchSize || c.QueueSize != DefaultQueueSize || c.FlushInterval != DefaultFlushInterval || len(c.DialOptions) == 0 {
			t.Errorf("defaults not applied: %+v", c)
		}
	})
}

func TestNodeFollowsTheConventions(t *testing.T) {
	n, err := buildNode(Config{IP: "127.0.0.1", Instance: "reviews-v1", Namespace: "default", Workload: "reviews-v1", Labels: map[string]string{"app": "reviews", "version": "v1"}})
	if err != nil {
		t.Fatal(err)
	}
	if n.GetId() != naming.NodeID("127.0.0.1", "reviews-v1", "default") {
		t.Errorf("id %q", n.GetId())
	}
	f := n.GetMetadata().GetFields()
	if f[naming.NodeMetaNamespace].GetStringValue() != "default" || f[naming.NodeMetaWorkloadName].GetStringValue() != "reviews-v1" ||
		f[naming.NodeMetaGenerator].GetStringValue() != naming.GeneratorGRPC ||
		f[naming.NodeMetaLabels].GetStructValue().GetFields()["version"].GetStringValue() != "v1" {
		t.Errorf("metadata %v", n.GetMetadata())
	}
}
