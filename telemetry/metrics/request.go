// Package metrics turns the requests the mesh sees into Istio-standard
// metrics, stores them in an embedded Prometheus TSDB, and serves them with
// Prometheus's PromQL engine, rules manager and remote-write. What others
// push in (remote-write, OTLP metrics) comes through telemetry/receiver's
// MetricsReceiver, which appends to this package's storage.
package metrics
