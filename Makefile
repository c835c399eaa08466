# glassmesh: `make demo` runs the all-in-one demo, `make test` the tests.
GO        ?= go
BIN       := bin/glassmesh
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 15s
# -count=1: e2e tests build and exec the binary, which the test cache cannot see.
TESTFLAGS ?= -race

.PHONY: build demo run test test-k8s test-jaeger test-deploy lint fuzz faults bench ui clean

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/glassmesh

demo: build
	./$(BIN) demo $(ARGS)

run: build
	./$(BIN) run $(ARGS)

test: lint
	$(GO) test $(TESTFLAGS) -count=1 -timeout 15m ./...
	$(MAKE) test-deploy

# Tests against a real kube-apiserver (in-process) and etcd (Debian's
# etcd-server on PATH); their own module, so the main build stays light.
# Not part of `test`: a cold build takes over 14 minutes on 2 cores; CI runs both.
test-k8s:
	cd e2e/k8s && $(GO) vet ./... && $(GO) test -count=1 -timeout 15m ./...

# Two glassmesh replicas sharing a real Jaeger v2 (--traces.export-otlp,
# --traces.query-url); Jaeger is a tool dependency of that module, built by
# the test, so the main module never depends on it. Not part of `test`: a
# cold build of Jaeger takes ~12 minutes on 2 cores; CI runs it after test-k8s.
test-jaeger:
	cd e2e/jaeger && $(GO) vet ./... && $(GO) test -count=1 -timeout 30m ./...

# The Helm chart, plain manifests and Dockerfile (deploy/helmtest, its own
# module: helm's packages take minutes to build cold).
test-deploy:
	cd deploy/helmtest && $(GO) vet ./... && $(GO) test -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# A short run of every fuzz target (FUZZTIME each).
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# The fault suite (issue 21): the real binary under faults, each case a few
# minutes on 2 cores; figures in RELIABILITY.md. Not part of `test`.
faults:
	$(GO) vet -tags faults ./faults/
	$(GO) test -tags faults -count=1 -timeout 30m -v ./faults/
	# The API-server restart and partition case needs a real kube-apiserver: e2e/k8s.
	cd e2e/k8s && $(GO) vet -tags faults ./... && $(GO) test -tags faults -count=1 -timeout 30m -v -run 'Fault' ./...

# Benchmarks and side-by-side comparisons; writes BENCHMARKS.md.
bench:
	$(GO) run ./bench -out BENCHMARKS.md

# Rebuild the web UI into dashboards/dist (commit the result; go build needs no npm).
ui:
	cd dashboards/web && npm ci && npm run build

clean:
	rm -rf bin
