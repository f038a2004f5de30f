# The two commands a newcomer needs:
#   make sandbox   run mailkey against a local OpenID provider and Dovecot (loopback only)
#   make test      install the test stack's packages and run every test, end to end included
GO ?= go
BIN := bin/mailkey

.PHONY: build sandbox test deps fuzz bench clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) ./cmd/mailkey

sandbox: deps build
	$(GO) run ./test/e2e/cmd/sandbox

deps:
	bash test/e2e/install-deps.sh

test: deps
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz FUZZTIME=5s

# Every fuzz target for FUZZTIME each (make fuzz FUZZTIME=10m for a long run).
FUZZTIME ?= 30s
fuzz:
	@set -e; log=$$(mktemp); trap 'rm -f "$$log"' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f ($(FUZZTIME))"; \
	    if ! $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg >"$$log" 2>&1; then \
	      grep -v '^fuzz: elapsed' "$$log"; exit 1; \
	    fi; \
	  done; \
	done

clean:
	rm -rf bin
