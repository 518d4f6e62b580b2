# dashcache: make run | test | build | lint | bench | bench-fairness | fuzz
GO ?= go

.PHONY: run test build lint bench bench-fairness fuzz

# The whole system on the embedded Redis and the simulated BI platform.
run:
	$(GO) run ./cmd/dashcache

# go test -race -count=1 ./... with the integration tests: on the Redis of
# DASHCACHE_TEST_REDIS_URL when set, else on a private redis-server that
# .ci/test starts and stops when redis-server is on the PATH; else they are
# skipped, and one line says so and how to run them.
test:
	@GO="$(GO)" bash .ci/test

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

# Each fuzz target for FUZZTIME executions (a count, not a duration: Go
# 1.26's fuzzer may fail a duration-bounded run with "context deadline
# exceeded" as the time runs out, go.dev/issue/75804); a crasher it finds is
# written to the package's testdata/fuzz and fails the run: commit it, fix
# it, and it stays a regression test of make test.
FUZZTIME ?= 20000x
FUZZ_TARGETS = FuzzQuickDate:. FuzzParseQuery:./api FuzzParseAPIKeys:./api FuzzParseEntry:./store FuzzLoadConfig:./internal/cli FuzzParse:./scheduler FuzzJSONString:./provider FuzzJSONNumber:./provider
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  echo "fuzz $${t%%:*} ($(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:}; \
	done
