# Kaiten: make help lists the targets.
SHELL := /bin/bash
GO ?= go
# Build and test with Go 1.27.3: it has the standard-library security fixes
# that the 1.26 releases on Debian's and our machines lack. The go command
# fetches it from the Go module proxy on first use (about 76 MB, once).
export GOTOOLCHAIN ?= go1.27.3
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/kaiten-edge/kaiten/gateway/app.Version=$(VERSION)
RUN_ARGS ?=
TEST_TIMEOUT ?= 28m
export PATH := $(PATH):$(shell $(GO) env GOPATH)/bin

.PHONY: help build run test test-deps test-unit test-long bench bench-peers lint cross clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build the host binary at bin/kaiten
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kaiten ./gateway/cmd/kaiten

run: build ## run the gateway with the embedded demo (broker, simulator, local store and delivery)
	./bin/kaiten run $(RUN_ARGS)

test-deps: ## install what the tests need (Debian packages, Go tools), only where missing
	./scripts/test-deps.sh

test: test-deps lint vuln-gate ## install test dependencies, then run every test with the race detector
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...

test-unit: ## the fast loop (-short, under a minute warm): skips daemon, browser, qemu, external-server and kill-loop tests
	$(GO) test -short -count=1 ./...

test-long: test-deps ## long soaks and fault loops (minutes each; see README "Reliability")
	./scripts/test-deps.sh scripts/test-deps-boot.txt
	KAITEN_LONG=1 $(GO) test -count=1 -timeout 120m ./...

lint: ## gofmt, go vet, go mod tidy check, and the ARM cross builds
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(MAKE) --no-print-directory cross

cross: ## CGO_ENABLED=0 builds for linux/arm64 and linux/arm (GOARM=7), -trimpath as firmware/build.sh, so the firmware tests reuse the compiled packages
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -o /dev/null ./...
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -o /dev/null ./...

bench: ## side-by-side benchmarks: prints BENCH and RATIO lines
	@set -o pipefail; KAITEN_BENCH=1 $(GO) test -run 'TestBenchReport' -count=1 -timeout 60m -v ./... 2>&1 \
	  | grep -E '^(BENCH|RATIO|FAIL|---)' || true

clean: ## remove build output and the demo data
	rm -rf bin kaiten-data

.PHONY: firmware package test-boot

firmware: ## cross-build linux/arm64 and linux/arm (GOARM=7) binaries and a .deb for each into dist/
	VERSION=$(VERSION) GO=$(GO) ARCHES="arm64 armhf" ./firmware/build.sh dist

package: ## build the .deb for this machine's architecture into dist/ (for an x86 test box or VM)
	VERSION=$(VERSION) GO=$(GO) ARCHES="$$($(GO) env GOARCH)" ./firmware/build.sh dist

test-boot: test-deps ## the moonshot: boot Debian arm64 under qemu-system-aarch64, install the .deb, check systemd runs the gateway (first run builds a cached Debian image)
	./scripts/test-deps.sh scripts/test-deps-boot.txt
	KAITEN_LONG=1 $(GO) test -count=1 -timeout 90m -run TestBootVM -v ./firmware/

# ---- issue 8 part 2: peer benchmark and vulnerability scan ----------------

VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
VULN_DB ?=

.PHONY: vuln vuln-gate

bench-peers: test-deps ## Kaiten vs raw Badger, NATS JetStream, kinesalite, mosquitto: BENCH/RATIO lines (minutes; not in make test)
	@command -v node >/dev/null && command -v npm >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends nodejs npm; }
	@set -o pipefail; cd bench && GOFLAGS=-mod=mod KAITEN_BENCH_PEERS=1 $(GO) test -run '^TestBenchPeers$$' -count=1 -timeout 60m -v ./peers 2>&1 \
	  | grep -E '^(BENCH|RATIO|FAIL|--- |ok|    peers_test)'

vuln: ## govulncheck over every package; offline database built from golang.org/x/vulndb unless VULN_DB=https://vuln.go.dev
	@set -e -o pipefail; db="$(VULN_DB)"; \
	if [ -z "$$db" ]; then \
	  cache="$${XDG_CACHE_HOME:-$$HOME/.cache}/kaiten/vulndb-$(VULNDB_VERSION)"; \
	  if [ ! -f "$$cache/index/db.json" ]; then \
	    src=$$(cd "$$(mktemp -d)" && $(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p'); \
	    rm -rf "$$cache.tmp"; mkdir -p "$$(dirname "$$cache")"; \
	    $(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns "$$src/data/osv" -out "$$cache.tmp"; \
	    rm -rf "$$cache"; mv "$$cache.tmp" "$$cache"; \
	  fi; \
	  db="file://$$cache"; \
	fi; \
	echo "govulncheck database: $$db"; \
	if [ -n "$(VULN_GATE)" ]; then \
	  $(GO) run golang.org/x/vuln/cmd/govulncheck@v1.9.0 -db "$$db" -format json ./... | $(GO) run ./internal/vulngate; \
	else \
	  $(GO) run golang.org/x/vuln/cmd/govulncheck@v1.9.0 -db "$$db" ./...; \
	fi

vuln-gate: ## govulncheck as make test runs it: fails on vulnerable code reached in a module, lists standard-library findings
	@$(MAKE) --no-print-directory vuln VULN_GATE=1
