# dashcache: make run | test | build | lint | bench
GO ?= go

.PHONY: run test build lint bench

# The whole system on the embedded Redis and the simulated BI platform.
run:
	$(GO) run ./cmd/dashcache

# Unit tests run anywhere; integration tests need DASHCACHE_TEST_REDIS_URL
# (a real Redis; .ci/run starts a private one).
test:
	$(GO) test -race -count=1 ./...

build:
	$(GO) build -o bin/dashcache ./cmd/dashcache

lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
