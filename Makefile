# glassmesh: `make demo` runs the all-in-one demo, `make test` the tests.
GO        ?= go
BIN       := bin/glassmesh
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
FUZZTIME  ?= 15s
FUZZTIME_LONG ?= 10m
# The soak's length (faults/soak_test.go); `make faults SOAK=5m` for a short one.
SOAK      ?= 1h
SOAK_OUT  ?=
# -count=1: e2e tests build and exec the binary, which the test cache cannot see.
TESTFLAGS ?= -race

.PHONY: build demo run test test-k8s test-jaeger test-deploy lint fuzz fuzz-long faults soak bench ui clean

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

# Every fuzz target for FUZZTIME_LONG each, in every module (found by
# grep first: listing a package's tests compiles them, which for e2e/k8s
# takes many minutes). FUZZFLAGS=-parallel=1 leaves cores to others. A
# crasher does not stop the run: go test saves it under the package's
# testdata/fuzz/FuzzX/, where it becomes a seed corpus entry to commit with
# the fix; the targets that wrote one are listed at the end. A failure that
# wrote none is Go 1.26's race at the end of -fuzztime ("context deadline
# exceeded", golang/go#75804), listed apart. -timeout: go test's default
# (10m) would end a 10m fuzz run as it finishes. FUZZMINIMIZE: Go minimizes
# every new interesting input too, 60 s by default, counting none of those
# execs: a target with KB-long seeds (FuzzContain) spent whole minutes so.
FUZZ_TIMEOUT ?= 1h
FUZZMINIMIZE ?= 10s
fuzz-long:
	@failed=""; flaked=""; for dir in $$(git grep -l '^func Fuzz' -- '*_test.go' | xargs -n1 dirname | sort -u); do \
	  for f in $$(cd $$dir && $(GO) test -list '^Fuzz' . | grep '^Fuzz' || true); do \
	    echo "== $$dir $$f ($(FUZZTIME_LONG))"; \
	    before=$$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l); \
	    if ! (cd $$dir && $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME_LONG) -fuzzminimizetime $(FUZZMINIMIZE) -timeout $(FUZZ_TIMEOUT) $(FUZZFLAGS) .); then \
	      if [ $$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l) -gt $$before ]; then failed="$$failed $$dir:$$f"; else flaked="$$flaked $$dir:$$f"; fi; \
	    fi; \
	  done; \
	done; \
	if [ -n "$$flaked" ]; then echo "fuzz-long: failed without a crasher (golang/go#75804?):$$flaked"; fi; \
	if [ -n "$$failed" ]; then echo "fuzz-long: crashers (in testdata/fuzz/ of each package):$$failed"; exit 1; fi

# The fault suite (issue 21): the real binary under faults, each case a few
# minutes on 2 cores but the soak, which runs SOAK; figures in RELIABILITY.md.
# Not part of `test`.
faults:
	$(GO) vet -tags faults ./faults/
	GLASSMESH_SOAK=$(SOAK) GLASSMESH_SOAK_OUT=$(SOAK_OUT) $(GO) test -tags faults -count=1 -timeout 3h -v ./faults/
	# The API-server restart and partition case needs a real kube-apiserver: e2e/k8s.
	cd e2e/k8s && $(GO) vet -tags faults ./... && $(GO) test -tags faults -count=1 -timeout 30m -v -run 'Fault' ./...

# The soak alone (SOAK [1h] of demo traffic with retentions of minutes);
# SOAK_OUT=dir keeps its CSV and SVG there (else a logged temporary dir).
soak:
	$(GO) vet -tags faults ./faults/
	GLASSMESH_SOAK=$(SOAK) GLASSMESH_SOAK_OUT=$(SOAK_OUT) $(GO) test -tags faults -count=1 -timeout 3h -run '^TestSoak' -v ./faults/

# Benchmarks and side-by-side comparisons; writes BENCHMARKS.md.
bench:
	$(GO) run ./bench -out BENCHMARKS.md

# Rebuild the web UI into dashboards/dist (commit the result; go build needs no npm).
ui:
	cd dashboards/web && npm ci && npm run build

clean:
	rm -rf bin
