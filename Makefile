# The two commands a newcomer needs:
#   make sandbox   run mailkey against a local OpenID provider and Dovecot (loopback only)
#   make test      install the test stack's packages and run every test, end to end included
GO ?= go
BIN := bin/mailkey

.PHONY: build sandbox test deps fuzz bench clean

# The version mailkey version prints: the nearest tag, else the commit, "-dirty" with changes.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-X github.com/mailkey/mailkey/internal/cli.Version=$(VERSION)" -o $(BIN) ./cmd/mailkey

sandbox: deps build
	@echo "sandbox: building the sandbox (go run ./test/e2e/cmd/sandbox)"
	$(GO) run ./test/e2e/cmd/sandbox $(SANDBOX_FLAGS)

deps:
	bash test/e2e/install-deps.sh

test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	# The service code of other platforms (Windows service, launchd) must compile everywhere.
	GOOS=windows $(GO) vet ./cmd/... ./internal/...
	GOOS=darwin $(GO) vet ./cmd/... ./internal/...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

# Every fuzz target for its execution-count budget (test/fuzz.sh sets them). For a long local run:
# make fuzz FUZZTIME=10m (a duration, see docs/development.md for what a bare "context deadline
# exceeded" means then) or FUZZTIME=1000000x; make fuzz FUZZ=FuzzLoad runs only matching targets.
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) bash test/fuzz.sh $(FUZZ)

clean:
	rm -rf bin
