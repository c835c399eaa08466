// Package demo is the Bookinfo-like demo mesh that `glassmesh demo` runs:
// proxyless gRPC apps, each its own xDS node in its own process, and a
// traffic generator, all routed through glassmesh.
package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// App is one demo workload: a service version in its own process.
type App struct {
	Service string // bookinfo service it serves, e.g. "reviews"
	Version string // "v1", "v2", ...
	Port    int    // where it listens on 127.0.0.1; 0 for the traffic generator
}

// Name is the workload name, e.g. "reviews-v2".
func (a App) Name() string { return a.Service + "-" + a.Version }

// Namespace of every demo workload.
const Namespace = "default"

// ServicePort is the port every demo service is addressed by.
const ServicePort = 9080

// TrafficGenerator is the workload that sends the demo's traffic.
const TrafficGenerator = "traffic-generator"

// Apps returns the demo's workloads with the given listen ports, in start
// order (leaves first).
func Apps(ports []int) []App {
	apps := []App{
		{Service: "ratings", Version: "v1"},
		{Service: "details", Version: "v1"},
		{Service: "reviews", Version: "v1"},
		{Service: "reviews", Version: "v2"},
		{Service: "reviews", Version: "v3"},
		{Service: "productpage", Version: "v1"},
	}
	for i := range apps {
		apps[i].Port = ports[i]
	}
	return apps
}

// Target is the xds:/// target a demo client dials for a service.
func Target(service string) string {
	return fmt.Sprintf("xds:///%s.%s.svc.cluster.local:%d", service, Namespace, ServicePort)
}

const servicesYAML = `# The demo's services. Edit freely: glassmesh watches this directory.
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: productpage, namespace: default}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: productpage}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: details, namespace: default}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: details}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: reviews}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: ratings}
`

const routesYAML = `# How reviews traffic is split. Edit a weight and save: within a second the
# traffic generator's log shows the new split. Requests with the header
# x-user: tester always go to v2. The canary in canary.yaml moves v1's share
# of the last rule to v3 step by step; /api/mesh/config shows its overrides.
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews, namespace: default}
spec:
  service: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
    - {name: v3, labels: {version: v3}}
  rules:
    - match: {headers: {x-user: {exact: tester}}}
      destinations: [{subset: v2, weight: 100}]
    - destinations: [{subset: v1, weight: 75}, {subset: v2, weight: 25}]
      timeout: 5s
      retries: {attempts: 2, perTryTimeout: 2s, retryOn: "unavailable"}
`

// CanaryInterval is the demo canary's step interval.
const CanaryInterval = 10 * time.Second

const canaryYAML = `# An SLO for reviews, and a canary of reviews v3 that it gates: every 10 s
# the canary's own requests are checked against the SLO; healthy, v3 gets
# the next step of v1's share; burning the error budget 14.4x or faster, all
# of it goes back to v1 at once. Watch: glassmesh canary status default/reviews
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: reviews-availability, namespace: default}
spec:
  service: reviews
  objective: 99.5
  window: 30d
  indicator: {availability: {}}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: productpage-latency, namespace: default}
spec:
  service: productpage
  objective: 99
  window: 30d
  indicator: {latency: {thresholdMs: 250}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Canary
metadata: {name: reviews, namespace: default}
spec:
  route: reviews
  stable: v1
  canary: v3
  steps: [10, 25, 50, 100]
  interval: 10s
  minRequests: 10
  maxInconclusive: 6
  gates:
    - slo: reviews-availability
    - query: 'histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="source",destination_service_name="reviews",destination_version="$canary"}[$interval])))'
      max: 500
`

// securityYAML makes the demo namespace mutual-TLS only and lets only
// reviews call ratings: every call carries SPIFFE identities, which the
// graph's security view and the metrics' principals show.
const securityYAML = `apiVersion: glassmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: STRICT}
---
apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  action: ALLOW
  rules:
    - from: [{principals: ["cluster.local/ns/default/sa/reviews"]}]
`

// workloadsFile is rewritten at every start: the apps get free ports.
const workloadsFile = "workloads.yaml"

// WriteConfig writes the demo mesh into dir. services.yaml and routes.yaml are
// written only when missing (or with reset), so a user's edits survive
// restarts; workloads.yaml is rewritten every time because the apps' ports
// are picked anew.
func WriteConfig(dir string, apps []App, reset bool) error {
	if reset {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, body := range map[string]string{"services.yaml": servicesYAML, "routes.yaml": routesYAML, "canary.yaml": canaryYAML, "security.yaml": securityYAML} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return err
		}
	}
	return writeAtomic(filepath.Join(dir, workloadsFile), []byte(workloadsYAML(apps)))
}

func workloadsYAML(apps []App) string {
	var b strings.Builder
	b.WriteString("# Generated by `glassmesh demo` at every start (the apps get free ports); edits here are lost.\n")
	for _, a := range apps {
		fmt.Fprintf(&b, `---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: %s, namespace: %s, labels: {app: %s, version: %s}}
spec:
  serviceAccount: %s
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]
`, a.Name(), Namespace, a.Service, a.Version, a.Service, a.Port)
	}
	fmt.Fprintf(&b, `---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: %s, namespace: %s, labels: {app: %s, version: v1}}
spec:
  serviceAccount: %s
`, TrafficGenerator, Namespace, TrafficGenerator, TrafficGenerator)
	return b.String()
}

// writeAtomic replaces a file in one rename, so the watcher never reads half of it.
func writeAtomic(path string, data []byte) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
