# dashcache: make run | test | build | lint | bench
GO ?= go

.PHONY: run test build lint bench bench-fairness

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

# The noisy-neighbour figures with and without the per-customer guards, in one
# run (needs DASHCACHE_TEST_REDIS_URL).
bench-fairness:
	$(GO) test -run '^$$' -bench NoisyNeighbour -benchtime 1x ./internal/cli
