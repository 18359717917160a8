# Build, demo and test sdspawner. The demo and the end-to-end tests boot a throwaway
# systemd with systemd-nspawn and need root.

GO ?= go
PYTHON ?= python3
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
NFPM ?= $(shell $(GO) env GOPATH)/bin/nfpm
# The package version follows the Python package's, because Debian versions must start
# with a digit and `git describe` may give a bare commit hash.
PACKAGE_VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' python/pyproject.toml)
DEB_ARCH ?= $(shell $(GO) env GOARCH)
DEB := dist/sdspawner_$(PACKAGE_VERSION)_$(DEB_ARCH).deb

# Install locations of `make install`. DESTDIR is prepended to each, for staged installs.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
DOCDIR ?= $(PREFIX)/share/doc/sdspawner
GO_SOURCES := $(shell find cmd internal -name '*.go') go.mod go.sum

.PHONY: deps build bed demo test lint test-go fuzz test-python test-e2e test-install test-uml bench \
	bench-go install deb python-dist clean

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
test: lint test-go fuzz test-python test-e2e test-install test-uml

lint:
	@test -z "$$(gofmt -l cmd internal tools)" || { gofmt -l cmd internal tools; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags bedtest ./internal/systemd
	$(STATICCHECK) ./...
	$(STATICCHECK) -tags bedtest ./internal/systemd
	$(PYTHON) -m ruff check python bed tests bench
	shellcheck bed/*.sh scripts/*.sh .ci/run packaging/deb/*

test-go:
	CGO_ENABLED=1 $(GO) test -race -count=1 ./...

# Each fuzz target runs a fixed number of inputs, about 10 seconds each on the project's
# 2-core machines. A time limit (-fuzztime=10s) can fail a run with "context deadline
# exceeded" and no crasher, from a race in Go 1.26's fuzzing coordinator
# (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline. FUZZSCALE multiplies
# the counts, for example FUZZSCALE=10 for a longer run.
FUZZSCALE ?= 1

## fuzz: run each fuzz target for a fixed number of inputs
fuzz:
	$(GO) test -run=NONE -fuzz=FuzzDecodeStrict -fuzztime=$$((250000 * $(FUZZSCALE)))x ./internal/api
	$(GO) test -run=NONE -fuzz=FuzzForServer -fuzztime=$$((600000 * $(FUZZSCALE)))x ./internal/unitname
	$(GO) test -run=NONE -fuzz=FuzzParseValue -fuzztime=$$((600000 * $(FUZZSCALE)))x ./internal/systemd
	$(GO) test -run=NONE -fuzz=FuzzExpandPath -fuzztime=$$((400000 * $(FUZZSCALE)))x ./internal/spawn

test-python:
	cd python && $(PYTHON) -m pytest -q

test-e2e: build
	SDSPAWNER_E2E_VENV=/opt/jupyterhub $(PYTHON) -m pytest -q tests/e2e
	SDSPAWNER_E2E_VENV=/opt/jupyterhub5 $(PYTHON) -m pytest -q tests/e2e

## test-install: install the .deb and the wheel in a bed, run the example hub unit,
## and restart the daemon under a running server and an in-flight start (root)
test-install: build deb python-dist
	$(PYTHON) -m pytest -q tests/install

## install: install the binary, the systemd units, the default configuration (unless
## one exists) and the docs under PREFIX, staged in DESTDIR
install: bin/sdspawner
	install -D -m 0755 bin/sdspawner $(DESTDIR)$(BINDIR)/sdspawner
	install -d $(DESTDIR)$(SYSTEMDUNITDIR)
	sed 's|/usr/bin/sdspawner|$(BINDIR)/sdspawner|' packaging/systemd/sdspawner.service \
		>$(DESTDIR)$(SYSTEMDUNITDIR)/sdspawner.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/sdspawner.service
	install -m 0644 packaging/systemd/sdspawner.socket $(DESTDIR)$(SYSTEMDUNITDIR)/sdspawner.socket
	test -e $(DESTDIR)$(SYSCONFDIR)/sdspawner/config.toml || \
		install -D -m 0644 packaging/config.toml $(DESTDIR)$(SYSCONFDIR)/sdspawner/config.toml
	install -d $(DESTDIR)$(DOCDIR)/docs $(DESTDIR)$(DOCDIR)/examples
	install -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/
	install -m 0644 packaging/examples/* $(DESTDIR)$(DOCDIR)/examples/

## deb: build the Debian package in dist/ with nfpm
deb: $(DEB)

$(DEB): bin/sdspawner packaging/nfpm.yaml $(wildcard packaging/*/*) README.md $(wildcard docs/*.md)
	mkdir -p dist
	VERSION=$(PACKAGE_VERSION) ARCH=$(DEB_ARCH) $(NFPM) package --config packaging/nfpm.yaml \
		--packager deb --target $@

## python-dist: build the Python package's sdist and wheel in dist/python
python-dist:
	$(PYTHON) -m build --outdir dist/python python

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
	rm -rf bin dist
