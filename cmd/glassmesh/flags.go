package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/glassmesh/glassmesh/telemetry/admission"
)

// runFlags are the flags shared by run and demo.
type runFlags struct {
	configPath   string
	source       string
	kubeconfig   string
	namespaces   []string
	dataDir      string
	httpAddr     string
	grpcAddr     string
	apiTokenFile string
	logLevel     string
	logFormat    string
	memoryLimit  bytesFlag
	telemetry    telemetryFlags
	ca           caFlags
	grpcTLS      grpcTLSFlags
	webhook      webhookFlags
	leader       leaderFlags
	policy       policyFlags
}

func (f *runFlags) register(fs *pflag.FlagSet, defaultConfig string) {
	fs.StringVar(&f.configPath, "config", defaultConfig, "mesh config: a directory of YAML files or one file, watched for changes; absent means an empty mesh")
	fs.StringVar(&f.source, "source", "file", "where the mesh config comes from: file (--config) or kubernetes (Services, Pods, EndpointSlices and the glassmesh.io custom resources)")
	fs.StringSliceVar(&f.namespaces, "kubernetes.namespaces", nil, "with --source kubernetes: only these namespaces (and glassmesh-system) make the mesh; empty: all")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "with --source kubernetes: kubeconfig file; empty means in-cluster, else $KUBECONFIG or ~/.kube/config")
	fs.StringVar(&f.dataDir, "data-dir", "./data", "where glassmesh keeps its state")
	fs.StringVar(&f.httpAddr, "http-addr", ":20001", "address of the UI and every HTTP API; a port of 0 picks a free one (logged)")
	fs.StringVar(&f.grpcAddr, "grpc-addr", ":15010", "gRPC address for everything a sidecar or app sends: xDS (ADS state-of-the-world and delta, per-type services), Envoy access logs and metrics, OTLP traces and metrics, Jaeger remote storage; a port of 0 picks a free one (logged)")
	fs.StringVar(&f.apiTokenFile, "api-token-file", "", "file holding the bearer token that mutating API calls must present; empty means no token is needed")
	fs.StringVar(&f.logLevel, "log.level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log.format", "text", "log format: text or json")
	f.memoryLimit = bytesFlag(admission.DefaultLimit)
	fs.Var(&f.memoryLimit, "memory.limit", "memory budget: every ingest path answers RESOURCE_EXHAUSTED / 429 with a retry delay rather than take the process past it, and Go's soft limit (GOMEMLIMIT) is 80% of it; mmapped TSDB chunks and the page cache are not counted (see RELIABILITY.md). 0 turns it off")
	f.telemetry.register(fs)
	f.ca.register(fs)
	f.grpcTLS.register(fs)
	f.webhook.register(fs)
	f.leader.register(fs)
	f.policy.register(fs)
}

func (f *runFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("--log.level: %q is not one of debug, info, warn, error", f.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.logFormat) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log.format: %q is not text or json", f.logFormat)
}

func (f *runFlags) apiToken() (string, error) {
	if f.apiTokenFile == "" {
		return "", nil
	}
	b, err := os.ReadFile(f.apiTokenFile)
	if err != nil {
		return "", fmt.Errorf("--api-token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--api-token-file: %s is empty", f.apiTokenFile)
	}
	return tok, nil
}
