# The two commands a newcomer needs:
#   make sandbox   run mailkey against a local OpenID provider and Dovecot (loopback only)
#   make test      install the test stack's packages and run every test, end to end included
GO ?= go
BIN := bin/mailkey

.PHONY: build release cross man sandbox test deps fuzz bench clean

# What mailkey version prints: the nearest tag (else the commit, "-dirty" with changes) and
# the commit itself.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)

# Static (no cgo), with no trace of the machine that built it (-trimpath, an empty build id):
# two builds of one commit give the same bytes (TestReproducibleRelease checks it).
CLI := github.com/mailkey/mailkey/internal/cli
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath \
	-ldflags "-s -w -buildid= -X $(CLI).Version=$(VERSION) -X $(CLI).Commit=$(COMMIT)"

# The platforms make release ships a binary for, and CI builds on every run (make cross).
PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64 freebsd/amd64
DIST ?= dist

build:
	$(GOBUILD) -o $(BIN) ./cmd/mailkey

# dist/mailkey-OS-ARCH[.exe] for each of PLATFORMS, and dist/SHA256SUMS. See docs/development.md.
release:
	rm -rf $(DIST)
	mkdir -p $(DIST)
	@set -e; for p in $(PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os != windows ] || ext=.exe; \
	  echo "$(DIST)/mailkey-$$os-$$arch$$ext"; \
	  GOOS=$$os GOARCH=$$arch $(GOBUILD) -o $(DIST)/mailkey-$$os-$$arch$$ext ./cmd/mailkey; \
	done
	cd $(DIST) && sha256sum mailkey-* > SHA256SUMS

# mailkey.1, the manual page, written from the command definitions: man ./mailkey.1
man: build
	$(BIN) man > mailkey.1

# Build every release platform (into nothing) and vet the code for Windows and macOS. bench/ and
# test/e2e/ drive Linux processes and daemons and are vetted on Linux only.
cross:
	@set -e; for p in $(PLATFORMS); do \
	  echo "build $$p"; GOOS=$${p%/*} GOARCH=$${p#*/} $(GOBUILD) -o /dev/null ./cmd/mailkey; \
	done
	@set -e; for os in windows darwin; do \
	  echo "vet $$os"; GOOS=$$os $(GO) vet $$(GOOS=$$os $(GO) list ./... | grep -v -e /bench -e /test/e2e); \
	done

sandbox: deps build
	@echo "sandbox: building the sandbox (go run ./test/e2e/cmd/sandbox)"
	$(GO) run ./test/e2e/cmd/sandbox $(SANDBOX_FLAGS)

deps:
	bash test/e2e/install-deps.sh

test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(MAKE) cross
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

# Every fuzz target for its execution-count budget (test/fuzz.sh sets them). For a long local run:
# make fuzz FUZZTIME=10m (a duration, see docs/development.md for what a bare "context deadline
# exceeded" means then) or FUZZTIME=1000000x; make fuzz FUZZ=FuzzLoad runs only matching targets.
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash test/fuzz.sh $(FUZZ)

clean:
	rm -rf bin $(DIST)
