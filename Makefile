# Build, demo and test sdspawner. The demo and the end-to-end tests boot a throwaway
# systemd with systemd-nspawn and need root.

GO ?= go
PYTHON ?= python3
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
GO_SOURCES := $(shell find cmd internal -name '*.go') go.mod go.sum

.PHONY: deps build bed demo test lint test-go fuzz test-python test-e2e test-uml bench bench-go clean

## deps: install Debian packages, Python packages, Go modules and staticcheck (root)
deps:
	scripts/install-deps.sh

## build: build the daemon and the Go tests that run inside the bed
build: bin/sdspawner bin/systemd-bed.test

bin/sdspawner: $(GO_SOURCES)
	CGO_ENABLED=1 $(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $@ ./cmd/sdspawner

bin/systemd-bed.test: $(GO_SOURCES)
	CGO_ENABLED=1 $(GO) test -c -tags bedtest -o $@ ./internal/systemd

## bed: build the binaries and the cached root tree of the test bed
bed: build
	bed/rootfs.sh >/dev/null

## demo: an unprivileged JupyterHub spawns two servers through sdspawner in a bed
demo: build
	$(PYTHON) bed/demo.py

## test: lint, unit tests, short fuzzing, the end-to-end tests in the bed with
## JupyterHub 6 and 5, and the limit enforcement tests under User-Mode Linux
test: lint test-go fuzz test-python test-e2e test-uml

lint:
	@test -z "$$(gofmt -l cmd internal tools)" || { gofmt -l cmd internal tools; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags bedtest ./internal/systemd
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags bedtest ./internal/systemd
	$(PYTHON) -m ruff check python bed tests bench
	shellcheck bed/*.sh scripts/*.sh .ci/run

test-go:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

FUZZTIME ?= 10s

## fuzz: run each fuzz target for FUZZTIME
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzDecodeStrict -fuzztime=$(FUZZTIME) ./internal/api
	$(GO) test -run=NONE -fuzz=FuzzForServer -fuzztime=$(FUZZTIME) ./internal/unitname
	$(GO) test -run=NONE -fuzz=FuzzParseValue -fuzztime=$(FUZZTIME) ./internal/systemd
	$(GO) test -run=NONE -fuzz=FuzzExpandPath -fuzztime=$(FUZZTIME) ./internal/spawn

test-python:
	cd python && $(PYTHON) -m pytest -q

test-e2e: build
	SDSPAWNER_E2E_VENV=/opt/jupyterhub $(PYTHON) -m pytest -q tests/e2e
	SDSPAWNER_E2E_VENV=/opt/jupyterhub5 $(PYTHON) -m pytest -q tests/e2e

## test-uml: measure memory and CPU limit enforcement in a User-Mode Linux guest (root)
test-uml: build
	$(PYTHON) -m pytest tests/uml

## bench: compare sdspawner with systemd-run and raw D-Bus in a bed (see docs/benchmarks.md)
bench: build bin/sdbench
	$(PYTHON) bench/run.py --json bench/last-run.json

## bench-go: the daemon's own cost of request decoding, planning a start, a status
## lookup and an event, without systemd (Go benchmarks)
bench-go:
	$(GO) test -run=NONE -bench=. -benchtime=20000x ./internal/api ./internal/spawn

bin/sdbench: $(GO_SOURCES) $(shell find tools -name '*.go')
	CGO_ENABLED=1 $(GO) build -o $@ ./tools/sdbench

clean:
	rm -rf bin
